//! queue-fix: create, check, repair and retire qmail queues.

use clap::Command;
use qmail_multi::fix::apply::{arm_crash_hook, RunMode};
use qmail_multi::fix::{run, status, Options, Target};
use qmail_multi::queue::layout::{parse_big_todo, Layout};
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
    let split = match m.get_one::<u32>("split") {
        Some(&s) => s,
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
            trash: Layout::new(split).trash || on("trash"),
            tcpto_size: m
                .get_one::<u64>("tcpto")
                .copied()
                .unwrap_or(qmail_multi::queue::layout::TCPTO_SIZE),
            ..Layout::new(split)
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
