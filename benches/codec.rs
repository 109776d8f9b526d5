//! Frame codec throughput: encoding and decoding block frames (1 KiB and 256 KiB payloads) and
//! a full `Headers` frame (2000 headers), next to a plain copy of the same bytes (`to_vec`) as
//! the same-run baseline. `cargo bench --bench codec`; criterion reports bytes per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hashgrad::net::frame::{self, MAX_HEADERS, Message};

fn messages() -> Vec<(&'static str, Message)> {
    let block = |len: usize| Message::Block((0..len).map(|i| (i * 31 + 7) as u8).collect());
    let headers = Message::Headers(
        (0..MAX_HEADERS)
            .map(|i| std::array::from_fn(|j| (i + j) as u8))
            .collect(),
    );
    vec![
        ("block_1k", block(1024)),
        ("block_256k", block(256 * 1024)),
        ("headers_2000", headers),
    ]
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for (name, message) in messages() {
        let bytes = frame::encode(&message).expect("encode");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("{name}/encode"), |b| {
            b.iter(|| frame::encode(std::hint::black_box(&message)).expect("encode"))
        });
        group.bench_function(format!("{name}/decode"), |b| {
            b.iter(|| frame::decode(std::hint::black_box(&bytes)).expect("decode"))
        });
        group.bench_function(format!("{name}/copy_baseline"), |b| {
            b.iter(|| std::hint::black_box(&bytes).to_vec())
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
