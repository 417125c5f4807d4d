//! The on-disk qmail queue, shared by both programs and the tests.

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
