//! queue-stat's command line: the one clap definition that the binary
//! parses with, `build.rs` writes the shell completions from and
//! `tests/doc_options.rs` holds the man page to. Only clap here: build.rs
//! includes this file (`#[path]`) without the library.

use clap::{value_parser, Arg, ArgAction, ArgGroup, Command, ValueHint};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Without QUEUE arguments the queues are qmail-multi's: QUEUE_BASE (else the
first line of $CONTROLDIR/queue_base, else $QMAILHOME/queue), QUEUE_COUNT
(10), QUEUE_START (1), or QUEUEDIR alone; --base, --count and --start
override them. Health is judged as qmail-multi judges it (MIN_FREE too).
BIGTODO says whether todo/intd are split or flat (set nowhere: each queue's
as laid out). BIGTODO and QUEUE_BASE/COUNT/START not in the environment are
read from the host's files as queue-fix reads them ($HOME/.defaultqueue,
$CONTROLDIR/defaultqueue and its .envdir chain); every run names the
BIGTODO used and its source (under the table's title, a '#' comment with
--prometheus, stderr with --check). Ages are
counted since injection (the mess file's time). Nothing is changed,
locked or waited for.

--classic: classic qmail's one queue (qmail-1.03, netqmail, notqmail), todo
and intd flat whatever BIGTODO says; without QUEUE arguments,
/var/qmail/queue (conf-qmail's default home).

Exit status: 0 every queue read; 100 usage; 111 bad configuration, or a
queue or the orphan search could not be read (the output says which).
With --check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (monitoring-plugins).";

pub fn command() -> Command {
    let value = |id: &'static str, name: &'static str, help: &'static str| {
        Arg::new(id)
            .long(id)
            .value_name(name)
            .value_hint(ValueHint::Other)
            .requires("check")
            .help(help)
    };
    Command::new("queue-stat")
        .about("Every qmail queue at a glance: depth, backlog, age, space, health")
        .override_usage(
            "queue-stat [--prometheus | --check [THRESHOLDS]] [--base BASE] [--count N] [--start N]\n       \
             queue-stat [--prometheus | --check [THRESHOLDS]] QUEUE...\n       \
             queue-stat --classic [--prometheus | --check [THRESHOLDS]] [QUEUE...]",
        )
        .after_help(AFTER_HELP)
        .arg(Arg::new("base").long("base").value_name("BASE").value_parser(value_parser!(PathBuf)).value_hint(ValueHint::DirPath).help("Directory holding queue<N> [default: as qmail-multi]"))
        .arg(Arg::new("count").long("count").value_name("N").value_parser(value_parser!(u32).range(1..=100_000)).value_hint(ValueHint::Other).help("Number of queues [default: $QUEUE_COUNT, else 10]"))
        .arg(Arg::new("start").long("start").value_name("N").value_parser(value_parser!(u64)).value_hint(ValueHint::Other).help("First queue number [default: $QUEUE_START, else 1]"))
        .arg(Arg::new("queue").value_name("QUEUE").num_args(1..).value_parser(value_parser!(PathBuf)).value_hint(ValueHint::DirPath).conflicts_with_all(["base", "count", "start"]).help("Queue directories to show instead of a range"))
        .arg(Arg::new("classic").long("classic").action(ArgAction::SetTrue).conflicts_with_all(["base", "count", "start"]).help("Classic qmail's queue (netqmail, notqmail): todo/intd flat; default QUEUE /var/qmail/queue"))
        .arg(Arg::new("prometheus").long("prometheus").action(ArgAction::SetTrue).help("Prometheus text format (node_exporter textfile collector)"))
        .arg(Arg::new("check").long("check").action(ArgAction::SetTrue).help("One monitoring-plugins status line and exit code"))
        .arg(value("warn-age", "AGE", "WARNING when a message is older (seconds, or with s, m, h, d)"))
        .arg(value("crit-age", "AGE", "CRITICAL when a message is older"))
        .arg(value("warn-depth", "N", "WARNING when a queue holds more messages"))
        .arg(value("crit-depth", "N", "CRITICAL when a queue holds more messages"))
        .arg(value("warn-free", "BYTES", "WARNING when a queue's filesystem has less free (K, M, G, T)"))
        .arg(value("crit-free", "BYTES", "CRITICAL when a queue's filesystem has less free"))
        .arg(value("warn-inodes", "N", "WARNING when a queue's filesystem has fewer free inodes"))
        .arg(value("crit-inodes", "N", "CRITICAL when a queue's filesystem has fewer free inodes"))
        .arg(Arg::new("need-live").long("need-live").action(ArgAction::SetTrue).requires("check").help("CRITICAL when qmail-send is not running on a queue"))
        .group(ArgGroup::new("format").args(["prometheus", "check"]))
}
