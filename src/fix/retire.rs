//! Retiring queues outside the configured range: every message, with all
//! its files, moves into the queues of the range.

use super::messages::count_messages;
use super::observe::open_dir_at;
use super::{Options, Outcome};
use crate::queue::users::Ids;
use std::io;
use std::ops::Range;
use std::path::Path;

/// Names in a destination's `pid/` that belong to an unfinished retirement.
pub const MARKER_PREFIX: &str = "retire.";

/// Every `queueN` under `base` outside `range` that holds mail, with its
/// message count, sorted by N.
pub fn find_orphans(base: &Path, range: &Range<u32>) -> io::Result<Vec<(u32, u64)>> {
    let fd = open_dir_at(nix::fcntl::AT_FDCWD, base)?
        .ok_or_else(|| io::Error::other("not a directory"))?;
    let mut found = Vec::new();
    super::observe::for_each_name(&fd, |name| {
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("queue"))
            .and_then(|d| crate::queue::name::parse_subdir(d.as_bytes()))
        else {
            return Ok(());
        };
        if range.contains(&n) {
            return Ok(());
        }
        if let Some(q) = open_dir_at(&fd, name)? {
            let held = count_messages(&q).map_err(|e| {
                io::Error::new(e.kind(), format!("{}: {e}", base.join(name).display()))
            })?;
            if held > 0 {
                found.push((n, held));
            }
        }
        Ok(())
    })?;
    found.sort_unstable();
    Ok(found)
}

/// Moves every message of `queue` into the queues of `range`.
pub fn retire_queue(
    queue: &Path,
    _base: &Path,
    _range: &Range<u32>,
    _opts: &Options,
    _ids: &Ids,
) -> Outcome {
    eprintln!("queue-fix: {}: retiring is not built yet", queue.display());
    Outcome {
        fatal: true,
        ..Outcome::default()
    }
}
