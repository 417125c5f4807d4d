//! qmail-multi: a drop-in qmail-queue that picks one of several queues,
//! optionally filters the message, and execs the real queue program with
//! `QUEUEDIR` set. Message on descriptor 0, envelope on descriptor 1;
//! configuration in the environment (see the README).
//!
//! `no_main`: it runs once per message, so it skips std's runtime set-up
//! (reading /proc/self/maps for a stack guard, an alternate signal stack)
//! that a run this short never needs; [`qmail_multi::multi::guard::install`]
//! does the part that matters here (descriptors 0-2 open, SIGPIPE ignored).
//! Under `cargo test` the harness brings its own `main`, so ours is left out
//! there (otherwise the test binary would run an injection and exit 61).
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    qmail_multi::multi::guard::install();
    let args = std::env::args_os().skip(1).collect();
    std::process::exit(qmail_multi::multi::inject(args));
}
