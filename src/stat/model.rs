//! What queue-stat found, as plain data: the output formats and the
//! `--check` verdict are pure functions of a [`Snapshot`].

use crate::queue::health::Health;
use crate::queue::scheduler::QueueLoad;
use std::path::PathBuf;

/// Upper bounds (seconds, inclusive) of the age buckets, qshape's doubling
/// minutes: 0–5, 5–10, 10–20, 20–40, 40–80, 80–160 minutes, then older.
pub const AGE_BOUNDS: [u64; 6] = [300, 600, 1200, 2400, 4800, 9600];
/// One bucket per bound plus "older".
pub const AGE_BUCKETS: usize = AGE_BOUNDS.len() + 1;

/// The figures of one queue's directories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Files in `mess/`.
    pub messages: u64,
    /// Messages with a `todo` or `intd` file: not yet preprocessed.
    pub preprocess: u64,
    /// Of those, the ones whose `todo`/`intd` file lies in the shape
    /// `BIGTODO` does not choose (split while it says flat, or the other
    /// way): qmail-send never preprocesses them until queue-fix converts
    /// the queue.
    pub misplaced: u64,
    /// Files in `local/` and `remote/`: messages with pending deliveries.
    pub local: u64,
    pub remote: u64,
    /// Files in `bounce/`.
    pub bounces: u64,
    /// Total size of the files in `mess/`.
    pub bytes: u64,
    /// Age of the oldest message in seconds since its injection (the
    /// `mess` file's mtime); `None` without messages.
    pub oldest: Option<u64>,
    /// Messages per age bucket (see [`AGE_BOUNDS`]).
    pub ages: [u64; AGE_BUCKETS],
    /// Sum of all message ages in seconds (Prometheus histogram `_sum`).
    pub age_sum: u64,
}

impl Counts {
    /// One `mess` file: its size and its age (seconds since injection).
    pub fn add_message(&mut self, bytes: u64, age: u64) {
        self.messages += 1;
        self.bytes += bytes;
        self.oldest = Some(self.oldest.map_or(age, |o| o.max(age)));
        self.ages[age_bucket(age)] += 1;
        self.age_sum += age;
    }

    pub fn merge(&mut self, o: &Counts) {
        self.messages += o.messages;
        self.preprocess += o.preprocess;
        self.misplaced += o.misplaced;
        self.local += o.local;
        self.remote += o.remote;
        self.bounces += o.bounces;
        self.bytes += o.bytes;
        self.oldest = match (self.oldest, o.oldest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (a, b) in self.ages.iter_mut().zip(o.ages) {
            *a += b;
        }
        self.age_sum += o.age_sum;
    }
}

/// The bucket of a message `age` seconds old.
pub fn age_bucket(age: u64) -> usize {
    AGE_BOUNDS
        .iter()
        .position(|&b| age <= b)
        .unwrap_or(AGE_BOUNDS.len())
}

/// Free space of a queue's filesystem, as unprivileged writers see it
/// (`f_bavail × f_frsize`, `f_favail`): what qmail-queue can still use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    pub free_bytes: u64,
    /// `None` when the filesystem does not count inodes (btrfs).
    pub free_inodes: Option<u64>,
}

/// One queue of the range (or named on the command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStat {
    /// `queueN` under a base, else the path as given, escaped
    /// ([`crate::fsx::escape`]) like every text of a snapshot, so the views print
    /// it as it is.
    pub label: String,
    pub path: PathBuf,
    /// qmail-multi's own judgement of the queue.
    pub health: Health,
    /// qmail-send holds `lock/sendmutex`; `None` when that cannot be told.
    pub live: Option<bool>,
    pub space: Option<Space>,
    /// `None` when the queue could not be read (see `error`) or is absent.
    pub counts: Option<Counts>,
    /// Why the queue could not be read.
    pub error: Option<String>,
    /// qscheduler's figures for it (`DYNAMIC_QUEUE`), when its segments
    /// exist and are trusted.
    pub sched: Option<QueueLoad>,
}

/// A `queueN` outside the range that still holds mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub label: String,
    pub messages: u64,
}

/// Everything one run found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// What was looked at, for the heading: the base and range, or "queues".
    pub title: String,
    pub queues: Vec<QueueStat>,
    pub orphans: Vec<Orphan>,
    /// Why the orphan search failed, when it did (its path escaped).
    pub orphan_error: Option<String>,
    /// `BIGTODO` as read: `todo`/`intd` split (true) or flat.
    pub big_todo: bool,
    /// Classic qmail's queues (`--classic`): `todo`/`intd` flat, no
    /// `BIGTODO` read.
    pub classic: bool,
    /// Why qscheduler's segments exist but were not used (untrusted,
    /// short, a bad count), escaped.
    pub sched_note: Option<String>,
}

impl Snapshot {
    /// The sum over every queue that could be read.
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.queues.iter().filter_map(|q| q.counts.as_ref()) {
            t.merge(c);
        }
        t
    }

    /// Something could not be read: the figures are incomplete.
    pub fn incomplete(&self) -> bool {
        self.orphan_error.is_some() || self.queues.iter().any(|q| q.error.is_some())
    }
}

/// The words for messages waiting in the `todo`/`intd` shape `BIGTODO`
/// (or classic qmail) does not choose.
pub fn misplaced_note(label: &str, n: u64, big_todo: bool, classic: bool) -> String {
    let (there, setting) = match (big_todo, classic) {
        (_, true) => ("split", "classic qmail reads it flat"),
        (true, false) => ("flat", "BIGTODO=1"),
        (false, false) => ("split", "BIGTODO=0"),
    };
    format!(
        "{label}: {n} message{} waiting in a {there} todo/intd although {setting}: \
         qmail-send does not see {} (queue-fix converts the queue)",
        if n == 1 { "" } else { "s" },
        if n == 1 { "it" } else { "them" }
    )
}

/// Every state word, in the order monitoring lists them. A new [`Health`]
/// variant gets a word in [`health_word`] (the compiler points there) and
/// a place in this list.
pub const HEALTH_WORDS: &[&str] = &[
    "usable",
    "missing",
    "not-dir",
    "low-space",
    "low-inodes",
    "disabled",
    "error",
];

/// A short word for qmail-multi's judgement of a queue.
pub fn health_word(h: Health) -> &'static str {
    // No wildcard: a new state must be given its word here.
    match h {
        Health::Usable => "usable",
        Health::Missing => "missing",
        Health::NotADirectory => "not-dir",
        Health::ShortOfSpace { .. } => "low-space",
        Health::ShortOfInodes { .. } => "low-inodes",
        Health::Disabled => "disabled",
        Health::Unreachable(_) => "error",
    }
}

/// A queue qmail-multi would not inject into because of its filesystem or
/// its absence (as opposed to one an administrator took out of service).
pub fn health_is_fault(h: Health) -> bool {
    match h {
        Health::Usable | Health::Disabled => false,
        Health::Missing
        | Health::NotADirectory
        | Health::ShortOfSpace { .. }
        | Health::ShortOfInodes { .. }
        | Health::Unreachable(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        assert_eq!(age_bucket(0), 0);
        assert_eq!(age_bucket(300), 0);
        assert_eq!(age_bucket(301), 1);
        assert_eq!(age_bucket(9600), 5);
        assert_eq!(age_bucket(9601), 6);
        assert_eq!(age_bucket(u64::MAX), 6);
    }

    #[test]
    fn merging_keeps_the_oldest_and_sums_the_rest() {
        let mut a = Counts::default();
        a.add_message(10, 400);
        let mut b = Counts::default();
        b.add_message(5, 20);
        b.add_message(5, 10_000);
        b.local = 2;
        a.merge(&b);
        assert_eq!(a.messages, 3);
        assert_eq!(a.bytes, 20);
        assert_eq!(a.oldest, Some(10_000));
        assert_eq!(a.ages, [1, 1, 0, 0, 0, 0, 1]);
        assert_eq!(a.age_sum, 10_420);
        assert_eq!(a.local, 2);
        let mut empty = Counts::default();
        empty.merge(&Counts::default());
        assert_eq!(empty.oldest, None);
    }

    #[test]
    fn every_word_is_listed() {
        use nix::errno::Errno;
        for h in [
            Health::Usable,
            Health::Missing,
            Health::NotADirectory,
            Health::ShortOfSpace {
                available: 1,
                min_free: 2,
            },
            Health::ShortOfInodes {
                available: 1,
                needed: 24,
            },
            Health::Disabled,
            Health::Unreachable(Errno::EACCES),
        ] {
            assert!(HEALTH_WORDS.contains(&health_word(h)), "{h:?}");
        }
    }
}
