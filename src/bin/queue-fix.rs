//! queue-fix: create, check, repair and retire qmail queues.

use clap::{value_parser, Arg, ArgAction, ArgGroup, Command};
use qmail_multi::fix::apply::{arm_crash_hook, RunMode};
use qmail_multi::fix::{run, status, Options, Target};
use qmail_multi::queue::layout::{parse_big_todo, Layout, CLASSIC_SPLIT};
use qmail_multi::queue::name::{parse_split, DEFAULT_SPLIT};
use qmail_multi::queue::users::Owners;
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
installer makes them); -S sets the size lock/tcpto must have; -t asks for the
trash directory, which every queue has anyway (as upstream's queue-fix makes
it). --base also checks the special queues BASE/nqueue, BASE/slowq (as with
-r) and BASE/qmta (as with -m) when present, and the queues beyond the range
that qscheduler says it has in use (/dev/shm/qscheduler); neither kind is
ever an orphan or retired. A todo/intd laid out otherwise than BIGTODO says
(the setting was changed) is one problem naming it; a repair converts it,
every file moved durably, and refuses a live queue without --force.

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

fn cli() -> Command {
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
                .help("BIGTODO: 1 split todo/intd, 0 flat; overrides $BIGTODO (unset: 1)"),
        )
        .arg(
            Arg::new("tcpto")
                .short('S')
                .value_name("SIZE")
                .allow_hyphen_values(true)
                .value_parser(value_parser!(u64).range(1..=MAX_TCPTO_SIZE))
                .help("Size of lock/tcpto in bytes, 1..=1048576 [default: 2048]"),
        )
        .arg(flag("ask", "Ask before each kind of change").short('i'))
        .arg(flag("dry", "Change nothing; print what would be done").short('N'))
        .arg(flag("verbose", "Print every action taken").short('v'))
        .arg(flag("qmta", "qmta mode: qmailq plays every role").short('m'))
        .arg(flag("ratelimit", "Also the ratelimit directory (the slowq queue)").short('r'))
        .arg(flag("trash", "The trash directory (always part of a queue; accepted for IndiMail 3.x callers)").short('t'))
        .arg(
            Arg::new("split")
                .short('s')
                .value_name("SPLIT")
                .allow_hyphen_values(true)
                .value_parser(parse_split)
                .help("Split (1..=151); default $CONFSPLIT, else 151"),
        )
        .arg(flag("classic", "Classic qmail's queue (netqmail, notqmail): split 23, todo/intd flat, 1024-byte lock/tcpto, no trash, any group on mess/todo/intd files").long("classic").conflicts_with_all(["qmta", "ratelimit", "base"]))
        .arg(flag("force", "Change (repair or retire) a live queue").long("force"))
        .arg(flag("delete-strays", "Delete strays instead of quarantining them").long("delete-strays"))
        .arg(flag("as-invoker", "Owner and group of everything: the invoking user").long("as-invoker"))
        .arg(Arg::new("base").long("base").value_name("BASE").value_parser(value_parser!(PathBuf)).help("Check BASE/queue<START>..queue<START+COUNT-1> and report orphans"))
        .arg(Arg::new("count").long("count").value_name("N").requires("base").value_parser(value_parser!(u32).range(1..)).help("Number of queues [default: 10]"))
        .arg(Arg::new("start").long("start").value_name("N").requires("base").value_parser(value_parser!(u32)).help("First queue number [default: 1]"))
        .arg(flag("retire", "Move every message of the orphan queues into the range").long("retire").requires("base"))
        .arg(Arg::new("disable").long("disable").value_name("QUEUE").value_parser(value_parser!(PathBuf)).help("Send QUEUE no new mail (qmail-send still delivers what it holds)"))
        .arg(Arg::new("enable").long("enable").value_name("QUEUE").value_parser(value_parser!(PathBuf)).help("Undo --disable"))
        .arg(Arg::new("queue").value_name("QUEUE_DIR").help("The queue to create (its parent must exist), check or repair").value_parser(value_parser!(PathBuf)))
        .group(ArgGroup::new("target").args(["queue", "base", "disable", "enable"]).required(true))
        .group(ArgGroup::new("how").args(["ask", "dry"]))
}

fn main() {
    arm_crash_hook();
    let m = cli().try_get_matches().unwrap_or_else(|e| {
        let code = if e.use_stderr() { status::USAGE } else { 0 };
        let _ = e.print();
        // A bad value names the option but not the usage: say both.
        if e.use_stderr() && !e.to_string().contains("Usage:") {
            eprintln!("{}", cli().render_usage());
        }
        std::process::exit(code);
    });
    for (id, disabled) in [("disable", true), ("enable", false)] {
        if let Some(queue) = m.get_one::<PathBuf>(id) {
            std::process::exit(disable(queue, disabled));
        }
    }
    let classic = m.get_flag("classic");
    let split = match m.get_one::<u32>("split") {
        Some(&s) => s,
        None if classic => CLASSIC_SPLIT,
        None => match std::env::var("CONFSPLIT") {
            Ok(s) if !s.is_empty() => parse_split(&s).unwrap_or_else(|e| {
                eprintln!("queue-fix: fatal: CONFSPLIT: {e}");
                std::process::exit(status::FATAL)
            }),
            _ => DEFAULT_SPLIT,
        },
    };
    // -b wins over the environment, as in upstream's queue-fix.c (revision
    // 1.32: getEnvConfigInt(&bigtodo, "BIGTODO", 1), then getopt's 'b').
    let big_todo = match m.get_one::<String>("bigtodo") {
        Some(b) => b == "1",
        None if classic => Layout::classic().big_todo,
        None => match std::env::var("BIGTODO") {
            Ok(s) => parse_big_todo(&s).unwrap_or_else(|e| {
                eprintln!("queue-fix: fatal: {e} (or give -b 0|1)");
                std::process::exit(status::FATAL)
            }),
            Err(_) => true,
        },
    };
    let on = |id: &str| m.get_flag(id);
    if m.get_one::<PathBuf>("base").is_none() {
        for (id, opt) in [
            ("count", "--count"),
            ("start", "--start"),
            ("retire", "--retire"),
        ] {
            if m.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                usage(&format!("{opt} needs --base"));
            }
        }
    }
    let target = match m.get_one::<PathBuf>("base") {
        Some(base) => Target::Base {
            base: base.clone(),
            count: m.get_one::<u32>("count").copied().unwrap_or(10),
            start: m.get_one::<u32>("start").copied().unwrap_or(1),
            retire: on("retire"),
        },
        None => Target::Queue(m.get_one::<PathBuf>("queue").cloned().unwrap_or_default()),
    };
    let profile = if classic {
        Layout {
            split,
            ..Layout::classic()
        }
    } else {
        Layout::new(split)
    };
    let opts = Options {
        mode: if on("dry") {
            RunMode::DryRun
        } else if on("ask") {
            RunMode::Ask
        } else {
            RunMode::Apply
        },
        verbose: on("verbose"),
        // Upstream's queue-fix (queue-fix.c revision 1.32, 2024-02-08,
        // indimail/indimail-mta commit fcca1020fc8d934896bcc4b5080aea2e1267b5b7)
        // checks and creates trash/ in every queue and has neither -t nor
        // -S (getopt "b:imNvs:r"); its lock/tcpto size is the compile-time
        // TCPTO_BUFSIZ, 2048. The 3.x spec names both options, so both are
        // taken: -t asks for what every queue has anyway (Layout::new), -S
        // sets the size.
        layout: Layout {
            big_todo,
            qmta: on("qmta"),
            ratelimit: on("ratelimit"),
            trash: profile.trash || on("trash"),
            tcpto_size: m
                .get_one::<u64>("tcpto")
                .copied()
                .unwrap_or(profile.tcpto_size),
            ..profile
        },
        force: on("force"),
        delete_strays: on("delete-strays"),
        owners: if on("as-invoker") {
            Owners::Invoker
        } else {
            Owners::Qmail { qmta: on("qmta") }
        },
        target,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
    };
    std::process::exit(run(&opts));
}

/// `--disable` / `--enable`: one queue, no other option applies.
fn disable(queue: &std::path::Path, disabled: bool) -> i32 {
    use qmail_multi::queue::disable::{set_disabled, Change};
    let word = if disabled { "disabled" } else { "enabled" };
    let shown = qmail_multi::escape::path(queue);
    match set_disabled(queue, disabled) {
        Ok(Change::Done) => {
            println!("{shown}: {word}");
            0
        }
        Ok(Change::AlreadySo) => {
            println!("{shown}: already {word}");
            0
        }
        Err(e) => {
            eprintln!("queue-fix: fatal: {shown}: {e}");
            status::FATAL
        }
    }
}

fn usage(why: &str) -> ! {
    eprintln!("queue-fix: {why}");
    eprintln!("{}", cli().render_usage());
    std::process::exit(status::USAGE);
}
