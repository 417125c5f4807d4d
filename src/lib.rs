//! qmail-multi: IndiMail's multi-queue mechanism.
//!
//! Two programs share this library:
//! - `qmail-multi` ([`multi`]) is a drop-in `qmail-queue` replacement that
//!   picks one of N queues `QUEUE_BASE/queue<START>..` for each injection,
//!   optionally pipes the message through a filter, sets `QUEUEDIR` and
//!   execs the real queue program.
//! - `queue-fix` ([`fix`]) creates, checks, repairs and retires those
//!   queues against the one layout table in [`queue::layout`].
//! - `queue-stat` ([`stat`]) shows every queue at a glance (depth, ages,
//!   space, health) for people and for monitoring, changing nothing.
//!
//! The modules stand on floors; each imports only from the floors below
//! it (`tests/house.rs` checks): [`fsx`] and [`exit`], primitives that know
//! nothing of queues; [`queue`], what a queue is and which are in service;
//! the programs [`multi`], [`fix`] and [`stat`], which never import each
//! other.

pub mod exit;
pub mod fix;
pub mod fsx;
pub mod multi;
pub mod queue;
pub mod stat;

/// Kept at the crate root for the front ends' existing paths.
pub use fsx::escape;
