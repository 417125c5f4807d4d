//! What a queue-fix run was asked to do (the parsed command line), what
//! came of it, and the exit status that says so.

use super::apply::RunMode;
use crate::queue::found;
use crate::queue::layout::Layout;
use crate::queue::users::Owners;
use std::path::{Path, PathBuf};

/// Exit statuses (also in `queue-fix --help`, queue-fix(8) and the
/// README).
///
/// One rule: the status is the number of problems the queue still has
/// when queue-fix ends. With `-N` nothing changes, so that is every
/// problem found; a repair that left the queue correct exits 0, which is
/// what IndiMail 3.x's callers require (qscheduler grows the queue count
/// by running `queue-fix -s SPLIT BASE/queue<N+1>` and stops every
/// qmail-send it supervises on any other status: qscheduler.c,
/// `queue_fix()`, indimail/indimail-mta). Upstream's own repair returns 0
/// even when it only warned (`return (flag_doit ? 0 : queueError)`,
/// indimail-mta-x/queue-fix.c revision 1.32 of 2024-02-08, commit
/// fcca1020fc8d934896bcc4b5080aea2e1267b5b7); here what a repair saw but did not change
/// (a file with foreign hard links, a `lock/tcpto` of the wrong size, an
/// answer "no" to `-i`) still counts, so 0 always means a correct queue.
pub mod status {
    /// Usage error.
    pub const USAGE: i32 = 100;
    /// Cannot read a queue, cannot change it, or the qmail users are missing.
    pub const FATAL: i32 = 111;
    /// A live queue needed changes and `--force` was not given.
    pub const LIVE: i32 = 112;
    /// Problem counts are capped here so they never reach 100 (nor wrap
    /// to 0 modulo 256, as upstream's do).
    pub const MAX_PROBLEMS: i32 = 99;
}

/// The parsed command line.
#[derive(Clone, Debug)]
pub struct Options {
    pub mode: RunMode,
    pub verbose: bool,
    /// The shape every queue of the run must have.
    pub layout: Layout,
    pub force: bool,
    pub delete_strays: bool,
    pub owners: Owners,
    pub target: Target,
    /// The parts of `layout` no setting chose: each queue keeps its own.
    pub as_found: found::AsFound,
    /// Worker threads for the message check.
    pub threads: usize,
}

#[derive(Clone, Debug)]
pub enum Target {
    Queue(PathBuf),
    Base {
        base: PathBuf,
        count: u32,
        start: u32,
        retire: bool,
    },
}

/// What happened to one queue or a whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Problems found.
    pub problems: u64,
    /// Of those, the ones this run did not change (reported only, or
    /// declined at `-i`); with `-N` every problem stays, and this is not
    /// used.
    pub left: u64,
    pub fatal: bool,
    pub live_refused: bool,
}

impl Outcome {
    pub fn add(&mut self, o: Outcome) {
        self.problems += o.problems;
        self.left += o.left;
        self.fatal |= o.fatal;
        self.live_refused |= o.live_refused;
    }

    /// The exit status (see [`status`]): fatal beats live beats the count
    /// of problems the queue still has, capped — all of them when nothing
    /// was changed (`-N`), those left unrepaired otherwise.
    pub fn status(&self, mode: RunMode) -> i32 {
        let remaining = match mode {
            RunMode::DryRun | RunMode::CountOnly => self.problems,
            RunMode::Apply | RunMode::Ask => self.left.min(self.problems),
        };
        if self.fatal {
            status::FATAL
        } else if self.live_refused {
            status::LIVE
        } else {
            remaining.min(status::MAX_PROBLEMS as u64) as i32
        }
    }
}

pub(crate) fn fatal(path: &Path, what: &str, e: impl std::fmt::Display) -> Outcome {
    eprintln!(
        "queue-fix: fatal: {}: {what}: {e}",
        crate::fsx::escape::path(path)
    );
    Outcome {
        fatal: true,
        ..Outcome::default()
    }
}
