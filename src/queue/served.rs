//! Which queues are in service: the one rule that `queue-fix --base`,
//! queue-stat and the provisioning use to tell a queue that something
//! delivers from an orphan.
//!
//! The configured range is `QUEUE_START .. QUEUE_START+QUEUE_COUNT`. In
//! IndiMail 3.x's dynamic mode qscheduler grows the number of queues under
//! load (creating `queue<N+1>` with queue-fix and starting a qmail-send for
//! it, up to `QUEUE_MAX`) and writes the number in use as the first `int`
//! of `/dev/shm/qscheduler`; segment N describes queue `QUEUE_START+N-1`.
//! So while a trusted `/qscheduler` says more queues are in use than the
//! configured count, those queues are served, not orphans.

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
