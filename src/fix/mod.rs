//! queue-fix, one file per operation, each observing, planning (pure) and
//! applying: [`check`] one queue, [`create`] one, convert its layout
//! ([`messages`], [`plan`]), [`retire`] the queues outside the range;
//! [`base`] runs them over a whole base.
//!
//! Below them: [`plan`] turns findings into actions, [`apply`] prints,
//! asks or runs them, [`messages`] streams the message check bucket by
//! bucket over two threads, [`lock`] tells a live queue, [`options`] holds
//! what the run was asked and what came of it.

pub mod apply;
pub mod base;
pub mod bucket;
pub mod check;
pub mod convert;
pub mod create;
pub mod index;
pub mod lock;
pub mod messages;
pub mod mover;
pub mod ops;
pub mod options;
pub mod plan;
pub mod retire;

pub use base::run;
pub use check::fix_queue;
pub use options::{status, Options, Outcome, Target};
