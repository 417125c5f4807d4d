//! Shell completions of queue-fix and queue-stat, written at build time
//! from the clap definitions the binaries parse with (src/cli/), into
//! `$OUT_DIR/completions/`: bash `NAME` and zsh `_NAME`, the names the
//! distributions' completion directories want. The packaging finds the
//! directory in cargo's `build-script-executed` message
//! (`--message-format=json`); tests/completion.rs reads it through
//! `QMAIL_MULTI_COMPLETIONS`, set here for the test builds.
//!
//! qmail-multi has no command line of its own (its arguments are the queue
//! program and that program's arguments), so it has no completion.

use clap_complete::{generate_to, Shell};
use std::path::PathBuf;

#[path = "src/cli/queue_fix.rs"]
#[allow(dead_code)]
mod queue_fix;
#[path = "src/cli/queue_stat.rs"]
#[allow(dead_code)]
mod queue_stat;

fn main() {
    println!("cargo:rerun-if-changed=src/cli");
    println!("cargo:rerun-if-changed=build.rs");
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("completions");
    std::fs::create_dir_all(&out).expect("creating OUT_DIR/completions");
    for mut command in [queue_fix::command(), queue_stat::command()] {
        let name = command.get_name().to_string();
        for (shell, file) in [
            (Shell::Bash, name.clone()),
            (Shell::Zsh, format!("_{name}")),
        ] {
            let written = generate_to(shell, &mut command, &name, &out)
                .unwrap_or_else(|e| panic!("writing the {shell} completion of {name}: {e}"));
            // clap_complete names the files NAME.bash and _NAME; the bash
            // directories look a command's completion up by its bare name.
            std::fs::rename(&written, out.join(&file))
                .unwrap_or_else(|e| panic!("naming {}: {e}", written.display()));
        }
    }
    println!("cargo:rustc-env=QMAIL_MULTI_COMPLETIONS={}", out.display());
}
