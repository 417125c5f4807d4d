//! The command lines as operators meet them: the shell completions
//! build.rs writes from the clap definitions (src/cli/), driven in a real
//! bash and parsed by a real zsh, and the man pages, which must list every
//! option those definitions accept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../src/cli/queue_fix.rs"]
#[allow(dead_code)]
mod queue_fix;
#[path = "../src/cli/queue_stat.rs"]
#[allow(dead_code)]
mod queue_stat;

fn completions() -> PathBuf {
    PathBuf::from(env!("QMAIL_MULTI_COMPLETIONS"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$0\" >/dev/null", tool])
        .status()
        .is_ok_and(|s| s.success())
}

/// What bash offers for the last word of `line`, as the completion
/// function the file registers for the command (its `complete -F`)
/// computes it: COMP_WORDS/COMP_CWORD set as readline sets them.
fn bash_complete(file: &Path, line: &[&str]) -> Vec<String> {
    let script = r#"
        source "$1" || exit 90
        shift
        spec=$(complete -p "$1") || exit 91
        fn=${spec#*-F }; fn=${fn%% *}
        COMP_WORDS=("$@")
        COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let o = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script, "bash"])
        .arg(file)
        .args(line)
        .output()
        .expect("running bash");
    assert!(
        o.status.success(),
        "{line:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn bash_completes_options_from_the_definitions() {
    if !have("bash") {
        eprintln!("skipped: no bash");
        return;
    }
    let dir = completions();
    let stat = dir.join("queue-stat");
    assert_eq!(
        bash_complete(&stat, &["queue-stat", "--pro"]),
        ["--prometheus"]
    );
    assert_eq!(
        bash_complete(&stat, &["queue-stat", "--check", "--warn-a"]),
        ["--warn-age"]
    );
    let mut crit = bash_complete(&stat, &["queue-stat", "--crit-"]);
    crit.sort();
    assert_eq!(
        crit,
        ["--crit-age", "--crit-depth", "--crit-free", "--crit-inodes"]
    );
    let fix = dir.join("queue-fix");
    assert_eq!(
        bash_complete(&fix, &["queue-fix", "--delete"]),
        ["--delete-strays"]
    );
    let mut big_todo = bash_complete(&fix, &["queue-fix", "-b", ""]);
    big_todo.sort();
    assert_eq!(big_todo, ["0", "1"], "-b takes 0 or 1");
}

#[test]
fn zsh_completions_parse_and_name_their_command() {
    for name in ["queue-stat", "queue-fix"] {
        let file = completions().join(format!("_{name}"));
        let text = std::fs::read_to_string(&file).unwrap();
        // compinit binds a file of an fpath directory to the commands its
        // first line names.
        assert_eq!(
            text.lines().next(),
            Some(format!("#compdef {name}").as_str())
        );
        for opt in long_options(&definition(name)) {
            // '--opt[help]', '--opt=[help]', or with an exclusion list
            // before it: '(--base --count)--opt[help]'.
            assert!(
                text.contains(&format!("{opt}[")) || text.contains(&format!("{opt}=[")),
                "{name}: {opt} missing"
            );
        }
        if !have("zsh") {
            eprintln!("skipped: zsh -n {name}: no zsh");
            continue;
        }
        let o = Command::new("zsh").arg("-n").arg(&file).output().unwrap();
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "zsh -n {}: {}",
            file.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn definition(name: &str) -> clap::Command {
    let mut c = match name {
        "queue-fix" => queue_fix::command(),
        "queue-stat" => queue_stat::command(),
        _ => unreachable!(),
    };
    // The automatic -h/--help exist only once built.
    c.build();
    c
}

/// Every option word the binary accepts: `--long` and `-s`.
fn options(c: &clap::Command) -> BTreeSet<String> {
    let mut all = long_options(c);
    for a in c.get_arguments() {
        if let Some(s) = a.get_short() {
            all.insert(format!("-{s}"));
        }
    }
    all
}

fn long_options(c: &clap::Command) -> BTreeSet<String> {
    c.get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| format!("--{l}"))
        .collect()
}

/// The options a man page lists: the words of each `.TP` entry's tag
/// line, with roff's font changes, quotes and `\-` undone.
fn listed(page: &str) -> BTreeSet<String> {
    let mut lines = page.lines();
    let mut found = BTreeSet::new();
    while let Some(l) = lines.next() {
        if l != ".TP" {
            continue;
        }
        let Some(tag) = lines.next() else { break };
        let plain = tag
            .replace("\\-", "-")
            .replace("\\fR", " ")
            .replace("\\fB", " ")
            .replace("\\fI", " ")
            .replace(['"', ','], " ");
        for w in plain.split_whitespace().skip(1) {
            if w.starts_with('-') && w.len() > 1 {
                found.insert(w.to_string());
            }
        }
    }
    found
}

#[test]
fn man_pages_list_every_option() {
    for name in ["queue-fix", "queue-stat"] {
        let page_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("doc/{name}.8"));
        let page = std::fs::read_to_string(&page_path).unwrap();
        let listed = listed(&page);
        let accepted = options(&definition(name));
        assert!(accepted.len() > 10, "{name}: {accepted:?}");
        let missing: Vec<&String> = accepted.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "{}: no OPTIONS entry (.TP) for {missing:?}",
            page_path.display()
        );
        // And nothing listed that the binary would refuse.
        let unknown: Vec<&String> = listed.difference(&accepted).collect();
        assert!(
            unknown.is_empty(),
            "{}: lists {unknown:?}, which {name} does not accept",
            page_path.display()
        );
    }
}
