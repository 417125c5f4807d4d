//! The bottom floor: primitives for directories that other users can
//! write. They know nothing of queues and import nothing of this crate.

pub mod beneath;
pub mod dir;
pub mod entry;
pub mod escape;
pub mod locks;
pub mod trusted;
