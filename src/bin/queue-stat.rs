//! queue-stat: every qmail queue at a glance, for people (a table),
//! Prometheus (`--prometheus`) and Nagios/Icinga (`--check`).

use qmail_multi::stat::check::{parse_age, parse_bytes, parse_count, Status, Thresholds};
use qmail_multi::stat::{run, status, Options, Output, Range, Target};
use std::path::PathBuf;

/// Classic qmail's one queue: `conf-qmail`'s default home `/var/qmail`
/// (qmail-1.03, netqmail, notqmail), whose qmail-queue `chdir`s to
/// `auto_qmail` then `queue` (qmail-queue.c `main`).
const CLASSIC_QUEUE: &str = "/var/qmail/queue";

/// The definition shared with build.rs (completions) and the man-page test.
#[path = "../cli/queue_stat.rs"]
mod definition;

fn main() {
    // monitoring-plugins: a usage error under --check is UNKNOWN.
    let checking = std::env::args_os().any(|a| a == "--check");
    let usage_code = if checking {
        Status::Unknown.code()
    } else {
        status::USAGE
    };
    let m = definition::command().try_get_matches().unwrap_or_else(|e| {
        let code = if e.use_stderr() { usage_code } else { 0 };
        let _ = e.print();
        std::process::exit(code);
    });
    let classic = m.get_flag("classic");
    let target = match m.get_many::<PathBuf>("queue") {
        Some(qs) => Target::Queues(qs.cloned().collect()),
        None if classic => Target::Queues(vec![CLASSIC_QUEUE.into()]),
        None => Target::Range(Range {
            base: m.get_one::<PathBuf>("base").cloned(),
            count: m.get_one::<u32>("count").copied(),
            start: m.get_one::<u64>("start").copied(),
        }),
    };
    let get = |id: &str, parse: fn(&str) -> Result<u64, String>| {
        m.get_one::<String>(id).map(|v| {
            parse(v).unwrap_or_else(|e| {
                eprintln!("queue-stat: --{id}: {e}");
                std::process::exit(usage_code)
            })
        })
    };
    let output = if m.get_flag("check") {
        Output::Check(Thresholds {
            warn_age: get("warn-age", parse_age),
            crit_age: get("crit-age", parse_age),
            warn_depth: get("warn-depth", parse_count),
            crit_depth: get("crit-depth", parse_count),
            warn_free: get("warn-free", parse_bytes),
            crit_free: get("crit-free", parse_bytes),
            warn_inodes: get("warn-inodes", parse_count),
            crit_inodes: get("crit-inodes", parse_count),
            need_live: m.get_flag("need-live"),
        })
    } else if m.get_flag("prometheus") {
        Output::Prometheus
    } else {
        Output::Table
    };
    // Two walkers, as queue-fix: the scan is bound by the kernel's
    // directory and inode work, which two threads already overlap.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(2));
    std::process::exit(run(&Options {
        target,
        output,
        threads,
        classic,
    }));
}
