//! qmail-multi: IndiMail's multi-queue mechanism.
//!
//! Two programs share this library:
//! - `qmail-multi` ([`multi`]) is a drop-in `qmail-queue` replacement that
//!   picks one of N queues `QUEUE_BASE/queue<START>..` for each injection,
//!   optionally pipes the message through a filter, sets `QUEUEDIR` and
//!   execs the real queue program.
//! - `queue-fix` ([`fix`]) creates, checks, repairs and retires those
//!   queues against the one layout table in [`queue::layout`].

pub mod escape;
pub mod exit;
pub mod fix;
pub mod multi;
pub mod queue;
