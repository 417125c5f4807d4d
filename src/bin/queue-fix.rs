//! queue-fix: create, check, repair and retire qmail queues.

use clap::{value_parser, Arg, ArgAction, ArgGroup, Command};
use qmail_multi::fix::apply::{arm_crash_hook, RunMode};
use qmail_multi::fix::{run, status, Options, Target};
use qmail_multi::queue::found::AsFound;
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
                .help("BIGTODO: 1 split todo/intd, 0 flat; overrides $BIGTODO and the host's settings"),
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
        .arg(flag("trash", "Create and check the trash directory (one that exists is always checked)").short('t'))
        .arg(
            Arg::new("split")
                .short('s')
                .value_name("SPLIT")
                .allow_hyphen_values(true)
                .value_parser(parse_split)
                .help("Split (1..=151); default $CONFSPLIT, else the host's settings"),
        )
        .arg(flag("classic", "Classic qmail's queue (netqmail, notqmail): split 23, todo/intd flat, 1024-byte lock/tcpto, no trash, any group on mess/todo/intd files").long("classic").conflicts_with_all(["qmta", "ratelimit", "base"]))
        .arg(flag("force", "Change (repair or retire) a live queue").long("force"))
        .arg(flag("delete-strays", "Delete strays instead of quarantining them").long("delete-strays"))
        .arg(flag("as-invoker", "Owner and group of everything: the invoking user").long("as-invoker"))
        .arg(Arg::new("base").long("base").value_name("BASE").value_parser(value_parser!(PathBuf)).help("Check BASE/queue<START>..queue<START+COUNT-1> and report orphans"))
        .arg(Arg::new("count").long("count").value_name("N").requires("base").value_parser(value_parser!(u32).range(1..)).help("Number of queues [default: $QUEUE_COUNT, else the host's settings, else 10]"))
        .arg(Arg::new("start").long("start").value_name("N").requires("base").value_parser(value_parser!(u32)).help("First queue number [default: $QUEUE_START, else the host's settings, else 1]"))
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
    let host = if classic {
        classic_settings(&m)
    } else {
        host_settings(&m)
    };
    // Unset anywhere: each queue keeps the split and todo layout it has
    // (fix::found); a new queue gets the defaults.
    let split = host.split.unwrap_or(DEFAULT_SPLIT);
    let big_todo = host.big_todo.unwrap_or(true);
    let target = match m.get_one::<PathBuf>("base") {
        Some(base) => Target::Base {
            base: base.clone(),
            count: host.count.unwrap_or(10),
            start: host.start.unwrap_or(1),
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
        // trash/ only with -t, as IndiMail 3.x's queue-fix (revision 1.35,
        // flag_trash) makes and checks it; one that exists is checked
        // anyway (fix::found). -S sets lock/tcpto's size (3.x's -S).
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
        as_found: host.as_found,
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

/// The settings this run uses, resolved once (queue::settings).
struct HostSettings {
    split: Option<u32>,
    big_todo: Option<bool>,
    count: Option<u32>,
    start: Option<u32>,
    as_found: AsFound,
}

/// `-b`, `-s`, `--count`, `--start`, else the environment, else the host's
/// files as IndiMail's queue-fix reads them; says on stdout which split and
/// BIGTODO the run uses and where each came from. An empty BIGTODO or
/// CONFSPLIT is unset (parse_big_todo's rule). Unreadable settings or a
/// bad value: fatal, nothing touched. An option wins over the
/// environment as in IndiMail's queue-fix.c (getEnvConfigInt(&bigtodo,
/// "BIGTODO", 1), then getopt's 'b').
fn host_settings(m: &clap::ArgMatches) -> HostSettings {
    use qmail_multi::queue::settings::{Settings, BIGTODO, CONFSPLIT, QUEUE_COUNT, QUEUE_START};
    let given = |id: &str| -> Option<std::ffi::OsString> {
        match m.value_source(id) {
            Some(clap::parser::ValueSource::CommandLine) => m
                .get_raw(id)
                .and_then(|mut v| v.next())
                .map(|v| v.to_owned()),
            _ => None,
        }
    };
    let die = |e: String| -> ! {
        eprintln!("queue-fix: fatal: {e}");
        std::process::exit(status::FATAL)
    };
    let s = Settings::of_host(&[
        (BIGTODO, "-b", given("bigtodo")),
        (CONFSPLIT, "-s", given("split")),
        (QUEUE_COUNT, "--count", given("count")),
        (QUEUE_START, "--start", given("start")),
    ])
    .unwrap_or_else(|e| die(format!("reading the queue settings: {e}")));
    let non_empty = |name: &str| {
        let mut set = s.get(name).clone();
        set.value = set.value.filter(|v| !v.is_empty());
        set
    };
    let split = non_empty(CONFSPLIT)
        .parse(parse_split)
        .unwrap_or_else(|e| die(e));
    let big_todo = non_empty(BIGTODO)
        .parse(parse_big_todo)
        .unwrap_or_else(|e| die(format!("{e} (or give -b 0|1)")));
    let number = |name: &str, min: u32| {
        s.get(name)
            .parse(|t| match t.trim().parse::<u32>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(format!("not a whole number from {min}")),
            })
            .unwrap_or_else(|e| die(e))
    };
    let (count, start) = (number(QUEUE_COUNT, 1), number(QUEUE_START, 0));
    println!(
        "queue-fix: {}; {}",
        match split {
            Some(_) => s.describe(CONFSPLIT),
            None => format!(
                "CONFSPLIT not set: each queue keeps its split, a new one gets {DEFAULT_SPLIT}"
            ),
        },
        match big_todo {
            Some(_) => s.describe(BIGTODO),
            None =>
                "BIGTODO not set: each queue keeps its todo layout, a new one gets split todo (1)"
                    .into(),
        }
    );
    HostSettings {
        split,
        big_todo,
        count,
        start,
        as_found: AsFound {
            split: split.is_none(),
            big_todo: big_todo.is_none(),
        },
    }
}

/// `--classic`: classic qmail reads neither `BIGTODO` nor `CONFSPLIT` nor
/// IndiMail's settings files, so only `-s` and `-b` change its profile
/// (split 23, flat todo: `Layout::classic`); nothing is left to the disk.
fn classic_settings(m: &clap::ArgMatches) -> HostSettings {
    let from = |id: &str, option: &str| match m.value_source(id) {
        Some(clap::parser::ValueSource::CommandLine) => format!("option {option}"),
        _ => "--classic".to_owned(),
    };
    let split = m.get_one::<u32>("split").copied().unwrap_or(CLASSIC_SPLIT);
    let big_todo = match m.get_one::<String>("bigtodo") {
        Some(b) => b == "1",
        None => Layout::classic().big_todo,
    };
    println!(
        "queue-fix: CONFSPLIT={split} ({}); BIGTODO={} ({})",
        from("split", "-s"),
        u8::from(big_todo),
        from("bigtodo", "-b")
    );
    HostSettings {
        split: Some(split),
        big_todo: Some(big_todo),
        count: None,
        start: None,
        as_found: AsFound {
            split: false,
            big_todo: false,
        },
    }
}

fn usage(why: &str) -> ! {
    eprintln!("queue-fix: {why}");
    eprintln!("{}", cli().render_usage());
    std::process::exit(status::USAGE);
}
