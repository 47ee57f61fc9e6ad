//! Topic matching in a `SubscriptionTrie` with 100k subscriptions (mixed exact and wildcard) and
//! retained lookup in a `TopicTree` with 100k topics: `cargo bench --bench trie`. Inputs come from a
//! seeded xorshift, so every run measures the same data.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use shardmq::topic::{SubscriptionTrie, TopicTree};

const N: usize = 100_000;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A topic of 4 levels from a space of 20 sites × 100 devices × 50 kinds × 4 metrics (400k names).
fn topic(rng: &mut XorShift) -> String {
    format!(
        "site{}/dev{}/kind{}/m{}",
        rng.below(20),
        rng.below(100),
        rng.below(50),
        rng.below(4)
    )
}

/// 90% exact filters, 10% wildcard (`+` at one level, or a `#` tail).
fn filter(rng: &mut XorShift) -> String {
    let t = topic(rng);
    if rng.below(10) != 0 {
        return t;
    }
    let mut levels: Vec<&str> = t.split('/').collect();
    match rng.below(3) {
        0 => {
            let i = rng.below(4) as usize;
            levels[i] = "+";
            levels.join("/")
        }
        1 => format!("{}/{}/#", levels[0], levels[1]),
        _ => format!("{}/+/{}/#", levels[0], levels[2]),
    }
}

fn trie(c: &mut Criterion) {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut trie: SubscriptionTrie<u32, u8> = SubscriptionTrie::new();
    for key in 0..N as u32 {
        trie.insert(&filter(&mut rng), key, 1);
    }
    let topics: Vec<String> = (0..1024).map(|_| topic(&mut rng)).collect();
    let mut i = 0;
    c.bench_function("trie_match_100k_subs", |b| {
        b.iter(|| {
            i = (i + 1) % topics.len();
            let mut hits = 0u32;
            trie.for_each_match(black_box(&topics[i]), |_, _| hits += 1);
            black_box(hits)
        })
    });
}

fn retained(c: &mut Criterion) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut tree: TopicTree<u32> = TopicTree::new();
    let mut names = Vec::with_capacity(N);
    while tree.len() < N {
        let t = topic(&mut rng);
        if tree.insert(&t, tree.len() as u32).is_none() {
            names.push(t);
        }
    }
    let mut g = c.benchmark_group("retained_100k_topics");
    let mut i = 0;
    g.bench_function("get_exact", |b| {
        b.iter(|| {
            i = (i + 7919) % names.len();
            black_box(tree.get(black_box(&names[i])))
        })
    });
    let filters: Vec<String> = (0..256)
        .map(|k| format!("site{}/dev{}/+/#", k % 20, k % 100))
        .collect();
    g.bench_function("match_wildcard", |b| {
        b.iter(|| {
            i = (i + 1) % filters.len();
            let mut hits = 0u32;
            tree.for_each_match(black_box(&filters[i]), |_, _| hits += 1);
            black_box(hits)
        })
    });
    g.finish();
}

criterion_group!(benches, trie, retained);
criterion_main!(benches);
