//! Choosing the queue for one injection.
//!
//! The policy is stateless (qmail-multi runs as any user and must keep no
//! shared writable state) and random: every injection picks a queue
//! uniformly, so a burst spreads as evenly as a trickle. A queue the probe
//! finds unusable is skipped and the rest are tried in a fresh random
//! order, so its share falls evenly on the healthy queues instead of all on
//! its neighbour. The policy is pure over [`Probe`] and [`Random`]; the
//! system-touching probe is [`FsProbe`].

use nix::errno::Errno;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};

use super::config::queue_path;
use crate::exit::QueueExit;

/// What the probe found out about one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Usable,
    /// The queue directory does not exist.
    Missing,
    /// Something other than a directory has the queue's name.
    NotADirectory,
    /// Fewer than `MIN_FREE` bytes are available to unprivileged writers.
    ShortOfSpace {
        available: u64,
        min_free: u64,
    },
    /// The filesystem's inode table is full: no new file can be made.
    NoFreeInodes,
    /// stat or statvfs failed for another reason.
    Unreachable(Errno),
}

impl Health {
    fn is_short(self) -> bool {
        matches!(self, Health::ShortOfSpace { .. } | Health::NoFreeInodes)
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Usable => f.write_str("usable"),
            Health::Missing => f.write_str("does not exist"),
            Health::NotADirectory => f.write_str("is not a directory"),
            Health::ShortOfSpace {
                available,
                min_free,
            } => write!(
                f,
                "has {available} bytes available, below MIN_FREE={min_free}"
            ),
            Health::NoFreeInodes => f.write_str("has no free inodes on its filesystem"),
            Health::Unreachable(e) => write!(f, "cannot be examined: {}", e.desc()),
        }
    }
}

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

/// A filesystem's free-space figures as statvfs reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsFigures {
    pub blocks_available: u64,
    pub fragment_size: u64,
    /// Total inodes; 0 when the filesystem does not count inodes.
    pub files: u64,
    pub files_available: u64,
}

/// Judges a directory's filesystem; `MIN_FREE` is compared in bytes.
pub fn judge(fs: FsFigures, min_free: Option<u64>) -> Health {
    if fs.files != 0 && fs.files_available == 0 {
        return Health::NoFreeInodes;
    }
    if let Some(min_free) = min_free {
        let bytes = u128::from(fs.blocks_available) * u128::from(fs.fragment_size);
        if bytes < u128::from(min_free) {
            return Health::ShortOfSpace {
                available: bytes as u64, // below min_free, so it fits
                min_free,
            };
        }
    }
    Health::Usable
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

    pub fn examine(path: &Path, min_free: Option<u64>) -> Health {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Health::NotADirectory,
            Err(e) => return health_of_error(&e),
        }
        match nix::sys::statvfs::statvfs(path) {
            Ok(s) => judge(
                FsFigures {
                    blocks_available: s.blocks_available(),
                    fragment_size: s.fragment_size(),
                    files: s.files(),
                    files_available: s.files_available(),
                },
                min_free,
            ),
            Err(Errno::ENOENT) => Health::Missing,
            Err(e) => Health::Unreachable(e),
        }
    }
}

fn health_of_error(e: &io::Error) -> Health {
    match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
        Errno::ENOENT => Health::Missing,
        Errno::ENOTDIR => Health::NotADirectory,
        errno => Health::Unreachable(errno),
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
        health[2] = Health::NoFreeInodes;
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
        let all_short = run(vec![short, Health::NoFreeInodes, short]);
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
    fn judging_free_space_in_bytes_without_overflow() {
        let fs = |bavail, frsize, files, favail| FsFigures {
            blocks_available: bavail,
            fragment_size: frsize,
            files,
            files_available: favail,
        };
        // 1.5 MiB free: upstream's megabyte truncation calls this 1 MB.
        let f = fs(384, 4096, 100, 50);
        assert_eq!(judge(f, Some(1_572_864)), Health::Usable);
        assert!(matches!(
            judge(f, Some(1_572_865)),
            Health::ShortOfSpace {
                available: 1_572_864,
                ..
            }
        ));
        assert_eq!(judge(f, None), Health::Usable);
        // The product overflows 64 bits: plenty of space.
        assert_eq!(
            judge(fs(u64::MAX, 4096, 0, 0), Some(u64::MAX)),
            Health::Usable
        );
        // No free inodes refuses a new file even with no MIN_FREE.
        assert_eq!(judge(fs(1000, 4096, 100, 0), None), Health::NoFreeInodes);
        // A filesystem that counts no inodes (files == 0) is not full.
        assert_eq!(judge(fs(1000, 4096, 0, 0), None), Health::Usable);
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
