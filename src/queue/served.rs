//! Which queues are in service: the one rule that `queue-fix --base`,
//! queue-stat and the provisioning use to tell a queue that something
//! delivers from an orphan.
//!
//! The configured range is `QUEUE_START .. QUEUE_START+QUEUE_COUNT`. In
//! IndiMail 3.x's dynamic mode (`indimail-mta-x/qscheduler.c`, commit
//! 015694f155f0945c497354b4c2da42925e00969b, `dynamic_queue`) qscheduler
//! writes two `int`s to `/dev/shm/qscheduler`:
//! - `q[0]`, `qcount`: the queues in use, each with a qmail-send running.
//!   It starts at qscheduler's own `QUEUE_COUNT` and grows by one whenever
//!   the total load passes `QUEUE_COUNT × QUEUE_LOAD` while below
//!   `QUEUE_MAX` (creating `queue<qcount+1>` with queue-fix when missing,
//!   then starting its qmail-send). It never shrinks while qscheduler runs;
//!   a restart starts again from `QUEUE_COUNT`.
//! - `q[1]`, `qconf`: how many queue directories `queue1, queue2, …` exist
//!   (counted at start, up to `QUEUE_MAX`, raised as the count grows past
//!   it). A directory counted here but beyond `q[0]` has no qmail-send: it
//!   is not served, and mail left in it is an orphan's.
//!
//! So the queues in service are the configured range extended to `q[0]`
//! when that is larger; segment N describes queue `QUEUE_START+N-1`
//! (qscheduler numbers from 1: with it, `QUEUE_START` is 1). qscheduler
//! unlinks no segment when it stops, so a count left by a dead qscheduler
//! still extends the range: the safe direction, as queues it grew are then
//! only left alone, never retired while something might deliver them.

use std::ops::Range;

/// The queue numbers in service: the configured range, extended to the
/// count qscheduler has in use when that is larger.
pub fn served_range(start: u32, count: u32, scheduler_in_use: Option<u32>) -> Range<u32> {
    let n = count.max(scheduler_in_use.unwrap_or(0));
    start..start.saturating_add(n)
}

/// qscheduler's count of queues in use, when its segment exists and is
/// trusted (see [`crate::multi::dynamic`]); `None` otherwise.
pub fn scheduler_in_use() -> Option<u32> {
    crate::multi::dynamic::read_in_use().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qscheduler_only_ever_extends_the_configured_range() {
        assert_eq!(served_range(1, 5, None), 1..6);
        assert_eq!(served_range(1, 5, Some(3)), 1..6);
        assert_eq!(served_range(1, 5, Some(8)), 1..9);
        assert_eq!(served_range(0, 2, Some(4)), 0..4);
        assert_eq!(served_range(u32::MAX - 1, 5, None), u32::MAX - 1..u32::MAX);
    }
}
