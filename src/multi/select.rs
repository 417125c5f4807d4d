//! Choosing the queue for one injection.
//!
//! The policy is stateless (qmail-multi runs as any user and must keep no
//! shared writable state) and random: every injection picks a queue
//! uniformly, so a burst spreads as evenly as a trickle. A queue the probe
//! finds unusable is skipped and the rest are tried in a fresh random
//! order, so its share falls evenly on the healthy queues instead of all on
//! its neighbour. The policy is pure over [`Probe`] and [`Random`]; the
//! system-touching probe is [`FsProbe`].

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use crate::exit::QueueExit;
use crate::queue::config::queue_path;

pub use crate::queue::health::{judge, FsFigures, Health};

/// Examines queue number `n`.
pub trait Probe {
    fn health(&mut self, n: u64) -> Health;
}

/// A source of uniform random numbers.
pub trait Random {
    /// Uniform in `0..n`; `n` is at least 1.
    fn below(&mut self, n: u64) -> u64;
}

/// A queue that was skipped, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub queue: u64,
    pub health: Health,
}

/// The chosen queue number and the unusable ones met on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub queue: u64,
    pub skipped: Vec<Skipped>,
}

/// No queue of the range is usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoQueue {
    /// Every queue of the range, each with its fault.
    pub skipped: Vec<Skipped>,
}

impl NoQueue {
    /// 62 when no queue exists at all. When at least one exists, every one
    /// that exists is short of space (or could not be examined) and the
    /// condition heals as qmail-send delivers: 53, provided one is short.
    pub fn exit(&self) -> QueueExit {
        if self.skipped.iter().any(|s| s.health.is_short()) {
            QueueExit::WriteFailed
        } else {
            QueueExit::QueueDir
        }
    }
}

/// Picks one of the queues `start .. start+count-1`.
pub fn choose(
    start: u64,
    count: u32,
    probe: &mut impl Probe,
    rng: &mut impl Random,
) -> Result<Choice, NoQueue> {
    assert!(
        count >= 1,
        "the configuration guarantees at least one queue"
    );
    let first = rng.below(u64::from(count)) as u32;
    let health = probe.health(start + u64::from(first));
    let mut skipped = Vec::new();
    if health == Health::Usable {
        return Ok(Choice {
            queue: start + u64::from(first),
            skipped,
        });
    }
    skipped.push(Skipped {
        queue: start + u64::from(first),
        health,
    });
    // A uniformly random order of the others (drawing without
    // replacement), so each healthy queue is equally likely to stand in.
    let mut rest: Vec<u32> = (0..count).filter(|&i| i != first).collect();
    while !rest.is_empty() {
        let i = rest.swap_remove(rng.below(rest.len() as u64) as usize);
        let queue = start + u64::from(i);
        match probe.health(queue) {
            Health::Usable => return Ok(Choice { queue, skipped }),
            health => skipped.push(Skipped { queue, health }),
        }
    }
    skipped.sort_by_key(|s| s.queue);
    Err(NoQueue { skipped })
}

/// The real probe: stat and statvfs of `base/queue<n>`.
pub struct FsProbe {
    pub base: PathBuf,
    pub min_free: Option<u64>,
}

impl FsProbe {
    pub fn path(&self, n: u64) -> PathBuf {
        queue_path(&self.base, n)
    }

    /// See [`crate::queue::health::probe`].
    pub fn examine(path: &Path, min_free: Option<u64>) -> Health {
        crate::queue::health::probe(path, min_free)
    }
}

impl Probe for FsProbe {
    fn health(&mut self, n: u64) -> Health {
        FsProbe::examine(&self.path(n), self.min_free)
    }
}

/// SplitMix64: small, fast, and statistically sound for picking queues.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn seeded(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// Seeded from the OS (std's per-process random hash keys), the pid and
    /// the clock, so concurrent injections draw independently.
    pub fn from_os() -> SplitMix {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        h.write_u128(now);
        SplitMix(h.finish())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Random for SplitMix {
    /// Lemire's multiply-and-reject: exactly uniform, no modulo bias.
    fn below(&mut self, n: u64) -> u64 {
        let wide = |x: u64| u128::from(x) * u128::from(n);
        let mut m = wide(self.next_u64());
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = wide(self.next_u64());
            }
        }
        (m >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    /// Queues with fixed health, counting how often each is probed.
    struct Fixed {
        start: u64,
        health: Vec<Health>,
    }

    impl Probe for Fixed {
        fn health(&mut self, n: u64) -> Health {
            self.health[(n - self.start) as usize]
        }
    }

    fn tally(start: u64, health: Vec<Health>, picks: usize, seed: u64) -> Vec<usize> {
        let count = health.len();
        let mut probe = Fixed { start, health };
        let mut rng = SplitMix::seeded(seed);
        let mut counts = vec![0; count];
        for _ in 0..picks {
            let c = choose(start, count as u32, &mut probe, &mut rng).unwrap();
            counts[(c.queue - start) as usize] += 1;
        }
        counts
    }

    fn max_over_mean(counts: &[usize]) -> f64 {
        let used: Vec<usize> = counts.iter().copied().filter(|&c| c > 0).collect();
        let mean = used.iter().sum::<usize>() as f64 / used.len() as f64;
        *used.iter().max().unwrap() as f64 / mean
    }

    #[test]
    fn ten_thousand_picks_over_ten_queues_stay_within_ten_percent() {
        for seed in 0..20 {
            let counts = tally(1, vec![Health::Usable; 10], 10_000, seed);
            assert_eq!(counts.iter().sum::<usize>(), 10_000);
            let r = max_over_mean(&counts);
            assert!(r <= 1.10, "seed {seed}: {counts:?} max/mean {r}");
        }
    }

    #[test]
    fn a_missing_queues_share_spreads_evenly_over_the_rest() {
        let mut health = vec![Health::Usable; 10];
        health[3] = Health::Missing;
        let counts = tally(5, health, 90_000, 7);
        assert_eq!(counts[3], 0);
        // Each of the 9 healthy queues expects 10,000 (sd ≈ 95); a policy
        // that hands the missing queue's share to one neighbour would put
        // ≈20,000 there.
        for (i, &c) in counts.iter().enumerate().filter(|(i, _)| *i != 3) {
            assert!((9_500..=10_500).contains(&c), "queue {i}: {counts:?}");
        }
    }

    #[test]
    fn only_the_usable_queue_is_chosen() {
        let mut health = vec![Health::Missing; 10];
        health[9] = Health::Usable;
        health[2] = Health::ShortOfInodes {
            available: 0,
            needed: 24,
        };
        let counts = tally(0, health, 200, 1);
        assert_eq!(counts[9], 200);
    }

    #[test]
    fn failure_codes() {
        let run = |health: Vec<Health>| {
            let n = health.len() as u32;
            let mut probe = Fixed { start: 1, health };
            choose(1, n, &mut probe, &mut SplitMix::seeded(3)).unwrap_err()
        };
        let short = Health::ShortOfSpace {
            available: 1,
            min_free: 2,
        };
        let all_short = run(vec![
            short,
            Health::ShortOfInodes {
                available: 0,
                needed: 24,
            },
            short,
        ]);
        assert_eq!(all_short.exit(), QueueExit::WriteFailed);
        assert_eq!(all_short.skipped.len(), 3);
        assert_eq!(
            all_short
                .skipped
                .iter()
                .map(|s| s.queue)
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let none = run(vec![Health::Missing, Health::NotADirectory]);
        assert_eq!(none.exit(), QueueExit::QueueDir);
        let mixed = run(vec![Health::Missing, short]);
        assert_eq!(mixed.exit(), QueueExit::WriteFailed);
        let unreachable = run(vec![Health::Unreachable(Errno::EACCES)]);
        assert_eq!(unreachable.exit(), QueueExit::QueueDir);
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut r = SplitMix::seeded(42);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let x = r.below(7);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(r.below(1), 0);
        assert!(r.below(u64::MAX) < u64::MAX);
        let a = SplitMix::from_os().next_u64();
        let b = SplitMix::from_os().next_u64();
        assert_ne!(a, b, "two OS seeds in one process should differ");
    }
}
