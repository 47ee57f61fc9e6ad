//! The summary: per scenario and metric, the median with min and max over the runs of each broker and
//! the ratio shardmq / Mosquitto, as a text table and as JSON (hand-written: no serde_json needed).

use std::fmt::Write as _;

use crate::broker::Kind;
use crate::scenarios::{RunResult, Scenario};

/// Everything the report states about where and how it was measured.
pub struct Meta {
    pub date_utc: String,
    pub unix_time: u64,
    pub machine: String,
    pub shardmq_version: String,
    pub mosquitto_version: Option<String>,
    pub runs: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub threads: usize,
    pub gen_threads: usize,
    pub notes: Vec<String>,
}

/// Statistics of one metric of one broker over the runs.
#[derive(Default)]
pub struct Stats {
    pub values: Vec<f64>,
    pub failures: Vec<String>,
    pub runs: usize,
}

impl Stats {
    pub fn median(&self) -> Option<f64> {
        let mut v = self.values.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let m = v.len() / 2;
        Some(if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2.0
        })
    }
    pub fn min(&self) -> Option<f64> {
        self.values.iter().copied().reduce(f64::min)
    }
    pub fn max(&self) -> Option<f64> {
        self.values.iter().copied().reduce(f64::max)
    }
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }
}

pub struct Row {
    pub scenario: String,
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    pub shardmq: Stats,
    pub mosquitto: Stats,
    /// Medians of the context values (CPU use) per broker.
    pub notes: String,
}

impl Row {
    /// shardmq median / Mosquitto median, when both brokers have numbers and neither failed.
    pub fn ratio(&self) -> Option<f64> {
        if self.shardmq.failed() || self.mosquitto.failed() {
            return None;
        }
        let (s, m) = (self.shardmq.median()?, self.mosquitto.median()?);
        (m != 0.0).then(|| s / m)
    }
}

fn stats_for(results: &[&RunResult], broker: Kind, metric: &str, unit: &str) -> Stats {
    let mut st = Stats::default();
    for r in results.iter().filter(|r| r.broker == broker) {
        st.runs += 1;
        if let Some(f) = &r.failure {
            st.failures.push(format!("run {}: {f}", r.run + 1));
            continue;
        }
        if let Some(m) = r
            .metrics
            .iter()
            .find(|m| m.name == metric && m.unit == unit)
        {
            st.values.push(m.value);
        }
    }
    st
}

fn info_median(results: &[&RunResult], broker: Kind, key: &str) -> Option<f64> {
    let st = Stats {
        values: results
            .iter()
            .filter(|r| r.broker == broker)
            .filter_map(|r| r.info.iter().find(|(k, _)| *k == key).map(|(_, v)| *v))
            .collect(),
        ..Stats::default()
    };
    st.median()
}

/// One row per (scenario, metric), in scenario order.
pub fn rows(scenarios: &[Scenario], results: &[RunResult]) -> Vec<Row> {
    let mut rows = Vec::new();
    for scn in scenarios {
        let rs: Vec<&RunResult> = results.iter().filter(|r| r.scenario == scn.name).collect();
        if rs.is_empty() {
            continue;
        }
        // Metric names in first-seen order over all runs (a failed run may have none).
        let mut names: Vec<(&'static str, &'static str, bool)> = Vec::new();
        for r in &rs {
            for m in &r.metrics {
                if !names.iter().any(|(n, u, _)| *n == m.name && *u == m.unit) {
                    names.push((m.name, m.unit, m.higher_is_better));
                }
            }
        }
        if names.is_empty() {
            names.push(("(no result)", "", true));
        }
        let mut notes = Vec::new();
        for key in ["gen CPU %", "broker CPU %", "host steal %"] {
            let s = info_median(&rs, Kind::Shardmq, key);
            let m = info_median(&rs, Kind::Mosquitto, key);
            if s.is_some() || m.is_some() {
                let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}%"));
                notes.push(format!("{} {}/{}", key.trim_end_matches(" %"), f(s), f(m)));
            }
        }
        for (i, (name, unit, hib)) in names.into_iter().enumerate() {
            rows.push(Row {
                scenario: scn.name.clone(),
                metric: name.to_string(),
                unit: unit.to_string(),
                higher_is_better: hib,
                shardmq: stats_for(&rs, Kind::Shardmq, name, unit),
                mosquitto: stats_for(&rs, Kind::Mosquitto, name, unit),
                notes: if i == 0 {
                    notes.join(", ")
                } else {
                    String::new()
                },
            });
        }
    }
    rows
}

/// A number with 3 significant digits and a k/M suffix when large.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(s: &Stats) -> String {
    if s.runs == 0 {
        return "-".into();
    }
    if s.failed() {
        return format!("FAILED {}/{}", s.failures.len(), s.runs);
    }
    match (s.median(), s.min(), s.max()) {
        (Some(m), Some(lo), Some(hi)) if s.values.len() > 1 => {
            format!("{} [{}–{}]", num(m), num(lo), num(hi))
        }
        (Some(m), _, _) => num(m),
        _ => "-".into(),
    }
}

/// The table as text (Markdown-compatible), followed by the failure reasons.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "scenario",
        "metric",
        "shardmq median [min–max]",
        "mosquitto median [min–max]",
        "shardmq/mosquitto",
        "CPU shardmq/mosquitto runs (generator, broker, host steal)",
    ];
    let mut lines: Vec<[String; 6]> = Vec::new();
    for r in rows {
        let metric = if r.unit.is_empty() {
            r.metric.clone()
        } else {
            format!(
                "{} ({}{})",
                r.metric,
                r.unit,
                if r.higher_is_better {
                    ""
                } else {
                    ", lower is better"
                }
            )
        };
        lines.push([
            r.scenario.clone(),
            metric,
            cell(&r.shardmq),
            cell(&r.mosquitto),
            r.ratio().map_or("-".into(), |x| format!("{x:.2}")),
            r.notes.clone(),
        ]);
    }
    let mut w = header.map(|h| h.chars().count());
    for l in &lines {
        for (i, c) in l.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let fmt_line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            let _ = write!(s, " {c}{} |", " ".repeat(pad));
        }
        s
    };
    let mut out = String::new();
    out.push_str(&fmt_line(&header.map(String::from)));
    out.push('\n');
    out.push('|');
    for wi in w {
        out.push_str(&"-".repeat(wi + 2));
        out.push('|');
    }
    out.push('\n');
    for l in &lines {
        out.push_str(&fmt_line(l));
        out.push('\n');
    }
    let mut seen = Vec::new();
    for r in rows {
        for (b, s) in [("shardmq", &r.shardmq), ("mosquitto", &r.mosquitto)] {
            for f in &s.failures {
                let line = format!("FAILED {} on {b}, {f}", r.scenario);
                if !seen.contains(&line) {
                    seen.push(line);
                }
            }
        }
    }
    for l in seen {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn jn(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".into(),
    }
}

fn jstats(s: &Stats) -> String {
    let fails: Vec<String> = s.failures.iter().map(|f| js(f)).collect();
    let vals: Vec<String> = s.values.iter().map(|v| jn(Some(*v))).collect();
    format!(
        "{{\"median\": {}, \"min\": {}, \"max\": {}, \"values\": [{}], \"runs\": {}, \"failures\": [{}]}}",
        jn(s.median()),
        jn(s.min()),
        jn(s.max()),
        vals.join(", "),
        s.runs,
        fails.join(", ")
    )
}

pub fn json(meta: &Meta, scenarios: &[Scenario], rows: &[Row], results: &[RunResult]) -> String {
    let mut o = String::from("{\n");
    let _ = writeln!(o, "  \"bench\": \"vs_mosquitto\",");
    let _ = writeln!(o, "  \"date_utc\": {},", js(&meta.date_utc));
    let _ = writeln!(o, "  \"unix_time\": {},", meta.unix_time);
    let _ = writeln!(o, "  \"machine\": {},", js(&meta.machine));
    let _ = writeln!(o, "  \"shardmq\": {},", js(&meta.shardmq_version));
    let _ = writeln!(
        o,
        "  \"mosquitto\": {},",
        meta.mosquitto_version.as_deref().map_or("null".into(), js)
    );
    let _ = writeln!(
        o,
        "  \"options\": {{\"runs\": {}, \"duration_s\": {}, \"warmup_s\": {}, \"shardmq_threads\": {}, \"generator_threads\": {}}},",
        meta.runs, meta.duration_s, meta.warmup_s, meta.threads, meta.gen_threads
    );
    let notes: Vec<String> = meta.notes.iter().map(|n| js(n)).collect();
    let _ = writeln!(o, "  \"notes\": [{}],", notes.join(", "));
    let scns: Vec<String> = scenarios
        .iter()
        .map(|s| {
            format!(
                "    {{\"name\": {}, \"about\": {}}}",
                js(&s.name),
                js(&s.about)
            )
        })
        .collect();
    let _ = writeln!(o, "  \"scenarios\": [\n{}\n  ],", scns.join(",\n"));
    let summary: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "    {{\"scenario\": {}, \"metric\": {}, \"unit\": {}, \"higher_is_better\": {}, \"shardmq\": {}, \"mosquitto\": {}, \"ratio\": {}}}",
                js(&r.scenario),
                js(&r.metric),
                js(&r.unit),
                r.higher_is_better,
                jstats(&r.shardmq),
                jstats(&r.mosquitto),
                jn(r.ratio())
            )
        })
        .collect();
    let _ = writeln!(o, "  \"summary\": [\n{}\n  ],", summary.join(",\n"));
    let runs: Vec<String> = results
        .iter()
        .map(|r| {
            let metrics: Vec<String> = r
                .metrics
                .iter()
                .map(|m| format!("{}: {}", js(&format!("{} ({})", m.name, m.unit)), jn(Some(m.value))))
                .collect();
            let info: Vec<String> = r
                .info
                .iter()
                .map(|(k, v)| format!("{}: {}", js(k), jn(Some(*v))))
                .collect();
            format!(
                "    {{\"scenario\": {}, \"broker\": {}, \"run\": {}, \"failure\": {}, \"metrics\": {{{}}}, \"info\": {{{}}}}}",
                js(&r.scenario),
                js(r.broker.name()),
                r.run + 1,
                r.failure.as_deref().map_or("null".into(), js),
                metrics.join(", "),
                info.join(", ")
            )
        })
        .collect();
    let _ = writeln!(o, "  \"runs\": [\n{}\n  ]", runs.join(",\n"));
    o.push_str("}\n");
    o
}
