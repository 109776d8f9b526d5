//! Proposals committed per second by a 3-node Raft cluster, driven like a real driver (persist,
//! send, apply, advance) with instant in-process delivery: once with in-memory storage (the
//! protocol's own cost) and once with `RedbStorage` files (one fsync'd transaction per `Ready`
//! per node), for batches of 1, 16 and 256 proposals.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hashgrad::raft::{Config, MemStorage, Message, Raft, RedbStorage, Role, Storage};

struct LocalCluster<S: Storage> {
    nodes: Vec<(Raft, S)>,
    queue: VecDeque<Message>,
}

impl<S: Storage> LocalCluster<S> {
    fn new(mut storage: impl FnMut(u64) -> S) -> Self {
        let voters = vec![1, 2, 3];
        let nodes = voters
            .iter()
            .map(|&id| {
                let mut cfg = Config::new(id, voters.clone());
                cfg.max_entries_per_message = 4096;
                let s = storage(id);
                let state = s.recover().expect("recover");
                (Raft::new(cfg, state).expect("config"), s)
            })
            .collect();
        let mut cluster = LocalCluster {
            nodes,
            queue: VecDeque::new(),
        };
        cluster.nodes[0].0.campaign_now();
        cluster.drive();
        assert_eq!(cluster.nodes[0].0.role(), Role::Leader);
        cluster
    }

    /// Persists, sends and applies until every node is idle; returns entries applied.
    fn drive(&mut self) -> usize {
        let mut applied = 0;
        loop {
            let mut busy = false;
            for (raft, storage) in &mut self.nodes {
                while let Some(ready) = raft.ready() {
                    busy = true;
                    storage.persist(&ready.persist).expect("persist");
                    self.queue.extend(ready.messages);
                    applied += black_box(ready.committed_entries).len();
                    raft.advance();
                }
            }
            while let Some(msg) = self.queue.pop_front() {
                busy = true;
                let to = (msg.to - 1) as usize;
                self.nodes[to].0.step(msg).expect("step");
            }
            if !busy {
                return applied;
            }
        }
    }

    /// Proposes `batch` commands at the leader and drives until they are committed everywhere.
    fn commit_batch(&mut self, batch: usize, payload: &[u8]) {
        let mut last = 0;
        for _ in 0..batch {
            last = self.nodes[0].0.propose(payload.to_vec()).expect("leader");
        }
        self.drive();
        assert!(self.nodes.iter().all(|(r, _)| r.commit_index() >= last));
    }
}

fn bench(c: &mut Criterion) {
    let payload = vec![7u8; 64];
    let mut group = c.benchmark_group("raft_commit");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for batch in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("memory", batch), &batch, |b, &batch| {
            let mut cluster = LocalCluster::new(|_| MemStorage::new());
            b.iter(|| cluster.commit_batch(batch, &payload));
        });
        group.bench_with_input(BenchmarkId::new("redb", batch), &batch, |b, &batch| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut cluster = LocalCluster::new(|id| {
                RedbStorage::open(dir.path().join(format!("node{id}.redb"))).expect("open")
            });
            b.iter(|| cluster.commit_batch(batch, &payload));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
