//! `DYNAMIC_QUEUE`: the least-loaded queue from qscheduler's POSIX shared
//! memory (IndiMail 3.x). The layout, as qscheduler writes it: segment
//! `/qscheduler` holds C `int`s, the first being the number of queues in use
//! (qscheduler grows it under load); segment `/queueN`, N from 1, holds five
//! `int`s: local and remote concurrency in use, local and remote maximum,
//! and a flag that is non-zero while the queue is disabled.
//!
//! [`parse_count`], [`parse_load`] and [`order`] are pure; [`read`] is the
//! thin reader. Anything unexpected is a [`Fallback`] (the caller then
//! chooses at random and logs one warning), never a failed injection.
//! Segment `N` describes queue number `QUEUE_START + N - 1` (with the default
//! `QUEUE_START=1`, `/queueN` is `queueN`).

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use std::fmt;
use std::os::fd::OwnedFd;

use super::config::MAX_COUNT;
use super::select::{Choice, Health, NoQueue, Probe, Random, Skipped};

/// Where Linux keeps POSIX shared memory (`shm_open("/x")` is this dir's `x`).
pub const SHM_DIR: &str = "/dev/shm";
/// qscheduler's segment holding the queue count.
pub const SCHEDULER: &str = "qscheduler";
const INT: usize = std::mem::size_of::<nix::libc::c_int>();
/// Bytes of one `/queueN` segment that are read.
pub const QUEUE_SEGMENT_BYTES: usize = 5 * INT;

/// One queue's figures from `/queueN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLoad {
    pub local_used: i32,
    pub remote_used: i32,
    pub local_max: i32,
    pub remote_max: i32,
    pub disabled: i32,
}

impl QueueLoad {
    /// Never chosen: disabled by qscheduler, or no concurrency to deliver.
    pub fn eligible(&self) -> bool {
        self.disabled == 0 && self.local_max > 0 && self.remote_max > 0
    }

    /// The larger of used/maximum for local and remote, as a fraction
    /// (numerator, denominator), exact. Only for eligible queues.
    fn load(&self) -> (i64, i64) {
        let local = (i64::from(self.local_used.max(0)), i64::from(self.local_max));
        let remote = (
            i64::from(self.remote_used.max(0)),
            i64::from(self.remote_max),
        );
        if less(local, remote) {
            remote
        } else {
            local
        }
    }
}

/// a/b < c/d for positive denominators, without rounding.
fn less(a: (i64, i64), c: (i64, i64)) -> bool {
    i128::from(a.0) * i128::from(c.1) < i128::from(c.0) * i128::from(a.1)
}

/// Why the shared memory was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fallback {
    Absent(String),
    Unreadable(String, Errno),
    /// Not a regular file owned by root and writable by its owner only
    /// (qscheduler makes them root-owned, mode 0644): anyone could have
    /// planted it in the world-writable /dev/shm.
    Untrusted(String),
    Short {
        segment: String,
        bytes: usize,
    },
    BadCount(i64),
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::Absent(s) => {
                write!(f, "{SHM_DIR}/{s} does not exist (qscheduler not running?)")
            }
            Fallback::Unreadable(s, e) => write!(f, "cannot read {SHM_DIR}/{s}: {}", e.desc()),
            Fallback::Untrusted(s) => write!(
                f,
                "{SHM_DIR}/{s} is not a regular file owned by root and writable by root only"
            ),
            Fallback::Short { segment, bytes } => {
                write!(f, "{SHM_DIR}/{segment} is too short ({bytes} bytes)")
            }
            Fallback::BadCount(n) => {
                write!(
                    f,
                    "{SHM_DIR}/{SCHEDULER} gives {n} queues, not 1 to {MAX_COUNT}"
                )
            }
        }
    }
}

fn int_at(bytes: &[u8], i: usize) -> i32 {
    let mut b = [0u8; INT];
    b.copy_from_slice(&bytes[i * INT..(i + 1) * INT]);
    i32::from_ne_bytes(b)
}

/// The queue count from `/qscheduler`'s bytes.
pub fn parse_count(bytes: &[u8]) -> Result<u32, Fallback> {
    if bytes.len() < INT {
        return Err(Fallback::Short {
            segment: SCHEDULER.into(),
            bytes: bytes.len(),
        });
    }
    let n = int_at(bytes, 0);
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(Fallback::BadCount(i64::from(n))),
    }
}

/// One `/queueN` segment's figures from its bytes.
pub fn parse_load(segment: &str, bytes: &[u8]) -> Result<QueueLoad, Fallback> {
    if bytes.len() < QUEUE_SEGMENT_BYTES {
        return Err(Fallback::Short {
            segment: segment.into(),
            bytes: bytes.len(),
        });
    }
    Ok(QueueLoad {
        local_used: int_at(bytes, 0),
        remote_used: int_at(bytes, 1),
        local_max: int_at(bytes, 2),
        remote_max: int_at(bytes, 3),
        disabled: int_at(bytes, 4),
    })
}

/// Indexes of the eligible queues, least loaded first, ties in random order.
pub fn order(loads: &[QueueLoad], rng: &mut impl Random) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..loads.len()).filter(|&i| loads[i].eligible()).collect();
    // Shuffle, then a stable sort: equal loads keep their random order.
    for i in (1..idx.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        idx.swap(i, j);
    }
    idx.sort_by(|&a, &b| {
        let (x, y) = (loads[a].load(), loads[b].load());
        if less(x, y) {
            std::cmp::Ordering::Less
        } else if less(y, x) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    idx
}

/// The segment name of the `n`th queue (from 1).
pub fn queue_segment(n: u32) -> String {
    format!("queue{n}")
}

fn read_segment(dir: &OwnedFd, name: &str, buf: &mut [u8]) -> Result<usize, Fallback> {
    let fd = match openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Err(Fallback::Absent(name.into())),
        Err(e) => return Err(Fallback::Unreadable(name.into(), e)),
    };
    let st = fstat(&fd).map_err(|e| Fallback::Unreadable(name.into(), e))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG
        || st.st_uid != 0
        || st.st_mode & 0o022 != 0
    {
        return Err(Fallback::Untrusted(name.into()));
    }
    // One read of at most buf.len() bytes: never past the segment's end.
    loop {
        match nix::unistd::read(&fd, buf) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Fallback::Unreadable(name.into(), e)),
        }
    }
}

fn open_shm() -> Result<OwnedFd, Fallback> {
    open(
        SHM_DIR,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ENOENT => Fallback::Absent(String::new()),
        e => Fallback::Unreadable(String::new(), e),
    })
}

/// The number of queues qscheduler has in use (the first `int` of
/// `/qscheduler`), under the same trust rule as every segment.
pub fn read_in_use() -> Result<u32, Fallback> {
    let mut buf = [0u8; INT];
    let n = read_segment(&open_shm()?, SCHEDULER, &mut buf)?;
    parse_count(&buf[..n])
}

/// Reads qscheduler's segments: every queue's figures, `/queue1` first.
pub fn read() -> Result<Vec<QueueLoad>, Fallback> {
    let dir = open_shm()?;
    let mut buf = [0u8; QUEUE_SEGMENT_BYTES];
    let n = read_segment(&dir, SCHEDULER, &mut buf[..INT])?;
    let count = parse_count(&buf[..n])?;
    let mut loads = Vec::with_capacity(count as usize);
    for i in 1..=count {
        let name = queue_segment(i);
        let n = read_segment(&dir, &name, &mut buf)?;
        loads.push(parse_load(&name, &buf[..n])?);
    }
    Ok(loads)
}

/// The least-loaded usable queue: segment `i` (from 1) is queue
/// `start + i - 1`; the health probe still has the last word, so a
/// least-loaded queue that is full on disk gives way to the next.
pub fn choose(
    start: u64,
    loads: &[QueueLoad],
    probe: &mut impl Probe,
    rng: &mut impl Random,
) -> Result<Choice, NoQueue> {
    let mut skipped = Vec::new();
    for i in order(loads, rng) {
        let Some(queue) = start.checked_add(i as u64) else {
            continue;
        };
        match probe.health(queue) {
            Health::Usable => return Ok(Choice { queue, skipped }),
            health => skipped.push(Skipped { queue, health }),
        }
    }
    // Only now, for the diagnostic: the queues qscheduler ruled out.
    for (i, l) in loads.iter().enumerate() {
        if !l.eligible() {
            if let Some(queue) = start.checked_add(i as u64) {
                skipped.push(Skipped {
                    queue,
                    health: Health::Disabled,
                });
            }
        }
    }
    skipped.sort_by_key(|s| s.queue);
    Err(NoQueue { skipped })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multi::select::SplitMix;

    fn bytes(ints: &[i32]) -> Vec<u8> {
        ints.iter().flat_map(|i| i.to_ne_bytes()).collect()
    }

    fn load(lu: i32, ru: i32, lm: i32, rm: i32, off: i32) -> QueueLoad {
        parse_load("queueX", &bytes(&[lu, ru, lm, rm, off])).unwrap()
    }

    #[test]
    fn counts_and_their_bounds() {
        assert_eq!(parse_count(&bytes(&[3])), Ok(3));
        assert_eq!(parse_count(&bytes(&[3, 10])), Ok(3));
        assert!(matches!(
            parse_count(&[1, 0]),
            Err(Fallback::Short { bytes: 2, .. })
        ));
        assert_eq!(parse_count(&bytes(&[0])), Err(Fallback::BadCount(0)));
        assert_eq!(parse_count(&bytes(&[-1])), Err(Fallback::BadCount(-1)));
        assert_eq!(
            parse_count(&bytes(&[MAX_COUNT as i32 + 1])),
            Err(Fallback::BadCount(i64::from(MAX_COUNT) + 1))
        );
        assert!(matches!(
            parse_load("queue2", &bytes(&[1, 2, 3, 4])),
            Err(Fallback::Short { bytes: 16, .. })
        ));
    }

    #[test]
    fn least_loaded_first_disabled_and_zero_maximums_never() {
        let loads = [
            load(5, 0, 10, 10, 0), // 0.5
            load(1, 9, 10, 10, 0), // 0.9 (remote decides)
            load(0, 0, 10, 10, 1), // disabled
            load(0, 0, 0, 10, 0),  // no local concurrency
            load(1, 1, 10, 20, 0), // 0.1
            load(2, 2, 10, 10, 0), // 0.2
        ];
        let mut rng = SplitMix::seeded(1);
        assert_eq!(order(&loads, &mut rng), [4, 5, 0, 1]);
    }

    #[test]
    fn ties_are_broken_at_random() {
        let loads = [
            load(1, 1, 4, 4, 0),
            load(2, 2, 8, 8, 0),
            load(0, 0, 4, 4, 0),
        ];
        let mut firsts = [0; 3];
        let mut rng = SplitMix::seeded(9);
        for _ in 0..1000 {
            let o = order(&loads, &mut rng);
            assert_eq!(o[0], 2);
            firsts[o[1]] += 1;
        }
        assert!(firsts[0] > 400 && firsts[1] > 400, "{firsts:?}");
    }
}
