//! The second floor: what a queue is (layout, names, users, markers, the
//! special queues) and which queues are in service; imports only [`crate::fsx`].

pub mod config;
pub mod deposit;
pub mod disable;
pub mod found;
pub mod health;
pub mod layout;
pub mod name;
pub mod orphans;
pub mod scheduler;
pub mod served;
pub mod settings;
pub mod special;
pub mod users;
