//! Cost of the event log per event: the real writer (bounded channel + writer thread + JSONL
//! file) next to a disabled (no-op) handle, in the same run.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hashgrad::events::{EventKind, EventLog, LogLimits};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = LogLimits {
        file_bytes: 64 << 20,
        files: 2,
        queue: 1 << 20,
        flush_every: Duration::from_millis(200),
    };
    let on = EventLog::open(dir.path(), "n0", limits).expect("event log");
    let off = EventLog::disabled();
    let mut group = c.benchmark_group("event_log");
    for (name, log) in [("disabled", &off), ("writer", &on)] {
        group.bench_function(format!("{name}/send+receive"), |b| {
            b.iter(|| {
                if let Some(stamp) = log.sent("n1", "block", 300) {
                    log.received("n1", "block", 300, &stamp);
                } else {
                    log.received(
                        "n1",
                        "block",
                        300,
                        &hashgrad::events::Stamp {
                            id: String::new(),
                            clock: Default::default(),
                        },
                    );
                }
            })
        });
        group.bench_function(format!("{name}/block_found"), |b| {
            b.iter(|| {
                log.record(EventKind::BlockFound {
                    hash: "00ab".repeat(16),
                    height: 7,
                    parent: "00cd".repeat(16),
                })
            })
        });
        log.flush();
    }
    group.finish();
    let stats = on.stats();
    eprintln!(
        "writer: {} written, {} dropped",
        stats.written, stats.dropped
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
