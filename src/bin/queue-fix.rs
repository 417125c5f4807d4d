//! queue-fix: create, check, repair and retire qmail queues.

use clap::Command;
use qmail_multi::fix::apply::{arm_crash_hook, RunMode};
use qmail_multi::fix::{run, status, Options, Target};
use qmail_multi::queue::found::AsFound;
use qmail_multi::queue::layout::{parse_big_todo, Layout, CLASSIC_SPLIT};
use qmail_multi::queue::name::{parse_split, DEFAULT_SPLIT};
use qmail_multi::queue::users::Owners;
use std::path::PathBuf;

/// The definition shared with build.rs (completions) and the man-page test.
#[path = "../cli/queue_fix.rs"]
mod definition;

fn cli() -> Command {
    definition::command().mut_arg("split", |a| a.value_parser(parse_split))
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
    // (queue::found); a new queue gets the defaults.
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
        // anyway (queue::found). -S sets lock/tcpto's size (3.x's -S).
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
