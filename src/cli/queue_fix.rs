//! queue-fix's command line: the one clap definition that the binary
//! parses with, `build.rs` writes the shell completions from and
//! `tests/doc_options.rs` holds the man page to. Only clap here: build.rs
//! includes this file (`#[path]`) without the library.

use clap::{value_parser, Arg, ArgAction, ArgGroup, Command, ValueHint};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Quarantine: strays (files in info, local, remote, todo, intd or bounce with no
mess file) and entries of the wrong type are moved into QUEUE/quarantine/,
which qmail-send never reads; --delete-strays deletes strays instead.
A file whose mess exists is never a stray (intd without todo is an injection
in progress). Files in pid/ are reported, never touched. A file with more hard
links than the layout allows is never changed: set aside (info, local, remote,
bounce, lock files) or reported (mess, an unpaired todo/intd). Printed names
are escaped (\\xNN).

--classic: the queue of classic qmail (qmail-1.03, netqmail, notqmail:
/var/qmail/queue), as its build makes it: split 23, todo and intd flat,
lock/tcpto 1024 bytes, no trash, and mess, todo and intd files of any group
(its qmail-queue is setuid qmailq, not setgid: they keep the injecting user's
group). BIGTODO and CONFSPLIT, which classic qmail never reads, are ignored;
-s, -b, -S and -t still override. Not with -m, -r or --base (IndiMail's).

--disable QUEUE_DIR: qmail-multi sends the queue no new mail while qmail-send
keeps delivering what it holds (marker QUEUE_DIR/disabled plus the sticky bit
on QUEUE_DIR, which injecting users can see); checks report it as disabled,
not as a problem; --retire moves mail into a disabled queue only when every
queue of the range is disabled. --enable QUEUE_DIR undoes it.

IndiMail 3.x's command line is accepted as it is, getopt style (-Nv, -s23,
-b0): -b 0|1 overrides $BIGTODO (0: todo and intd flat, as IndiMail 3.x's
installer makes them); -S sets the size lock/tcpto must have; -t creates and
checks the trash directory (a queue without one is complete, as IndiMail
3.x's queue-fix makes it; one that exists is always checked). --base also
checks the special queues BASE/nqueue, BASE/slowq (as with -r) and
BASE/qmta (as with -m) when present, and the queues beyond the range
that qscheduler says it has in use (/dev/shm/qscheduler); neither kind is
ever an orphan or retired. A todo/intd laid out otherwise than BIGTODO says
(the setting was changed) is one problem naming it; a repair converts it,
every file moved durably, and refuses a live queue without --force.

Settings: -s, -b, --count and --start, else $CONFSPLIT, $BIGTODO,
$QUEUE_COUNT, $QUEUE_START, else the host's files as IndiMail's queue-fix
reads them: $HOME/.defaultqueue (unless SKIP_LOCAL_ENVIRONMENT is set), then,
while QUEUE_BASE is unset, $CONTROLDIR/defaultqueue (default
/etc/indimail/control/defaultqueue) with its .envdir chain (global_vars).
Every run prints on its first line the split and BIGTODO it uses and where
each came from. Set nowhere: every queue keeps the split and todo layout it
has on disk; only a new queue gets 151 and split todo. An unreadable setting
is fatal (111).

Exit status: the number of problems the queue still has when queue-fix ends.
  0        the queue is correct: it was, or this run made it so (creating a
           queue included)
  1..99    with -N: the number of problems found (nothing changed); without
           -N: the number this run found and did not repair (left as they
           were and reported: a file with foreign hard links, a lock/tcpto of
           the wrong size, an orphan without --retire, a no to -i); capped
           at 99
  100      usage error (the option at fault is named)
  111      fatal: a queue cannot be read or changed (the path is named), or
           the qmail users or group are missing (named)
  112      a live queue (lock/sendmutex locked by another process) needed
           changes and --force was not given; it was left unchanged";

/// The largest `-S`: qmail-remote reads `lock/tcpto` into a buffer of its
/// compile-time size (`TCPTO_BUFSIZ`, 2048 in IndiMail's tcpto.h), so a
/// bigger file is never read past that; 1 MiB leaves room for a rebuilt
/// qmail-remote while a typo (`-S 20480000`) cannot fill the disk with
/// zeros, once per queue.
const MAX_TCPTO_SIZE: u64 = 1 << 20;

/// The split option (`-s`) gets its value parser from the library
/// (`queue::name::parse_split`) in the binary.
pub fn command() -> Command {
    let flag =
        |id: &'static str, help: &'static str| Arg::new(id).action(ArgAction::SetTrue).help(help);
    Command::new("queue-fix")
        .about("Create, check, repair and retire qmail queues")
        .override_usage(
            "queue-fix [-b 0|1] [-S SIZE] [-s SPLIT] [-i | -N] [-m] [-r] [-t] [-v] [--force] [--delete-strays] [--as-invoker] QUEUE_DIR\n       \
             queue-fix --classic [-b 0|1] [-S SIZE] [-s SPLIT] [-i | -N] [-t] [-v] [--force] [--delete-strays] [--as-invoker] QUEUE_DIR\n       \
             queue-fix [-b 0|1] [-S SIZE] [-s SPLIT] [-i | -N] [-m] [-r] [-t] [-v] [--force] [--delete-strays] [--as-invoker] --base BASE [--count N] [--start N] [--retire]\n       \
             queue-fix --disable QUEUE_DIR | --enable QUEUE_DIR",
        )
        .after_help(AFTER_HELP)
        .arg(
            Arg::new("bigtodo")
                .short('b')
                .value_name("0|1")
                .allow_hyphen_values(true)
                .value_parser(clap::builder::PossibleValuesParser::new(["0", "1"]))
                .help("BIGTODO: 1 split todo/intd, 0 flat; overrides $BIGTODO and the host's settings"),
        )
        .arg(
            Arg::new("tcpto")
                .short('S')
                .value_name("SIZE")
                .allow_hyphen_values(true)
                .value_parser(value_parser!(u64).range(1..=MAX_TCPTO_SIZE)).value_hint(ValueHint::Other)
                .help("Size of lock/tcpto in bytes, 1..=1048576 [default: 2048]"),
        )
        .arg(flag("ask", "Ask before each kind of change").short('i'))
        .arg(flag("dry", "Change nothing; print what would be done").short('N'))
        .arg(flag("verbose", "Print every action taken").short('v'))
        .arg(flag("qmta", "qmta mode: qmailq plays every role").short('m'))
        .arg(flag("ratelimit", "Also the ratelimit directory (the slowq queue)").short('r'))
        .arg(flag("trash", "Create and check the trash directory (one that exists is always checked)").short('t'))
        .arg(
            Arg::new("split")
                .short('s')
                .value_name("SPLIT")
                .allow_hyphen_values(true)
                .value_hint(ValueHint::Other)
                .help("Split (1..=151); default $CONFSPLIT, else the host's settings"),
        )
        .arg(flag("classic", "Classic qmail's queue (netqmail, notqmail): split 23, todo/intd flat, 1024-byte lock/tcpto, no trash, any group on mess/todo/intd files").long("classic").conflicts_with_all(["qmta", "ratelimit", "base"]))
        .arg(flag("force", "Change (repair or retire) a live queue").long("force"))
        .arg(flag("delete-strays", "Delete strays instead of quarantining them").long("delete-strays"))
        .arg(flag("as-invoker", "Owner and group of everything: the invoking user").long("as-invoker"))
        .arg(Arg::new("base").long("base").value_name("BASE").value_parser(value_parser!(PathBuf)).value_hint(ValueHint::DirPath).help("Check BASE/queue<START>..queue<START+COUNT-1> and report orphans"))
        .arg(Arg::new("count").long("count").value_name("N").requires("base").value_parser(value_parser!(u32).range(1..)).value_hint(ValueHint::Other).help("Number of queues [default: $QUEUE_COUNT, else the host's settings, else 10]"))
        .arg(Arg::new("start").long("start").value_name("N").requires("base").value_parser(value_parser!(u32)).value_hint(ValueHint::Other).help("First queue number [default: $QUEUE_START, else the host's settings, else 1]"))
        .arg(flag("retire", "Move every message of the orphan queues into the range").long("retire").requires("base"))
        .arg(Arg::new("disable").long("disable").value_name("QUEUE").value_parser(value_parser!(PathBuf)).value_hint(ValueHint::DirPath).help("Send QUEUE no new mail (qmail-send still delivers what it holds)"))
        .arg(Arg::new("enable").long("enable").value_name("QUEUE").value_parser(value_parser!(PathBuf)).value_hint(ValueHint::DirPath).help("Undo --disable"))
        .arg(Arg::new("queue").value_name("QUEUE_DIR").help("The queue to create (its parent must exist), check or repair").value_parser(value_parser!(PathBuf)).value_hint(ValueHint::DirPath))
        .group(ArgGroup::new("target").args(["queue", "base", "disable", "enable"]).required(true))
        .group(ArgGroup::new("how").args(["ask", "dry"]))
}
