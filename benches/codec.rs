//! PUBLISH encode and decode, 64 B and 64 KiB payloads: `cargo bench --bench codec`.

use std::hint::black_box;
use std::num::NonZeroU16;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardmq::protocol::{decode, encode, encode_publish, frame, Packet, Publish, QoS};

/// Deterministic payload bytes (xorshift64, fixed seed).
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn publish(len: usize) -> Publish {
    Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "bench/sensors/kitchen/temperature".into(),
        pkid: NonZeroU16::new(4242),
        payload: Arc::from(payload(len)),
    }
}

fn codec(c: &mut Criterion) {
    for (name, len) in [("64B", 64usize), ("64KiB", 64 * 1024)] {
        let p = publish(len);
        let packet = Packet::Publish(p.clone());
        let mut bytes = Vec::new();
        encode(&packet, &mut bytes);

        let mut g = c.benchmark_group(format!("publish_{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("decode", |b| {
            b.iter(|| {
                let buf = black_box(bytes.as_slice());
                let f = frame(buf, usize::MAX).unwrap().unwrap();
                black_box(decode(&f, buf).unwrap())
            })
        });
        let mut out = Vec::with_capacity(bytes.len());
        g.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                encode(black_box(&packet), &mut out);
                black_box(out.len())
            })
        });
        g.bench_function("encode_publish_borrowed", |b| {
            b.iter(|| {
                out.clear();
                encode_publish(
                    &mut out,
                    false,
                    p.qos,
                    false,
                    black_box(&p.topic),
                    p.pkid,
                    black_box(&p.payload),
                );
                black_box(out.len())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
