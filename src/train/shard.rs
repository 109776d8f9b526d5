//! Deterministic row orders from a seed: shuffles, per-worker shards, and the mini-batch
//! sampler a worker draws from its shard (epochs of a seeded permutation).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// 0..len in a seeded random order.
pub fn shuffled_indices(len: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order
}

/// Splits 0..len into `workers` disjoint shards of near-equal size (sizes differ by at most
/// one) after a seeded shuffle. Every row is in exactly one shard.
pub fn shards(len: usize, workers: usize, seed: u64) -> Vec<Vec<usize>> {
    let order = shuffled_indices(len, seed);
    let workers = workers.max(1);
    let base = len / workers;
    let extra = len % workers;
    let mut out = Vec::with_capacity(workers);
    let mut start = 0;
    for w in 0..workers {
        let size = base + usize::from(w < extra);
        out.push(order[start..start + size].to_vec());
        start += size;
    }
    out
}

/// Draws mini-batches from a shard: a seeded permutation per epoch, batches taken in order,
/// reshuffled when the epoch runs out.
#[derive(Debug, Clone)]
pub struct BatchSampler {
    rows: Vec<usize>,
    cursor: usize,
    rng: ChaCha8Rng,
}

impl BatchSampler {
    /// A sampler over `rows` seeded with `seed`.
    pub fn new(rows: Vec<usize>, seed: u64) -> BatchSampler {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows = rows;
        rows.shuffle(&mut rng);
        BatchSampler {
            rows,
            cursor: 0,
            rng,
        }
    }

    /// The next `size` row indices (fewer only if the shard is smaller than `size`).
    pub fn next_batch(&mut self, size: usize) -> Vec<usize> {
        let size = size.min(self.rows.len());
        let mut batch = Vec::with_capacity(size);
        while batch.len() < size {
            if self.cursor == self.rows.len() {
                self.rows.shuffle(&mut self.rng);
                self.cursor = 0;
            }
            let take = (size - batch.len()).min(self.rows.len() - self.cursor);
            batch.extend_from_slice(&self.rows[self.cursor..self.cursor + take]);
            self.cursor += take;
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_rows_deterministically() {
        let parts = shards(103, 4, 9);
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![26, 26, 26, 25]);
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        assert_eq!(shards(103, 4, 9), parts);
        assert_ne!(shards(103, 4, 10), parts);
    }

    #[test]
    fn sampler_covers_an_epoch_before_repeating() {
        let mut sampler = BatchSampler::new((0..10).collect(), 3);
        let mut epoch: Vec<usize> = sampler.next_batch(4);
        epoch.extend(sampler.next_batch(4));
        epoch.extend(sampler.next_batch(2));
        epoch.sort_unstable();
        assert_eq!(epoch, (0..10).collect::<Vec<_>>());
        assert_eq!(sampler.next_batch(50).len(), 10);
    }
}
