//! The monitoring examples shipped in /usr/share/doc/qmail-multi/examples
//! (doc/examples/) work as written: Prometheus loads the scrape
//! configuration and the alert rules (promtool), and the Nagios command,
//! with the service's arguments substituted as Nagios does, runs
//! queue-stat's check with the thresholds the README explains.

mod multi_support;

use multi_support::{make_queues, SPLIT};
use qmail_multi::queue::deposit::{deposit, DepositOptions, Envelope};
use qmail_multi::queue::layout::Layout;
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("doc/examples")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$0\" >/dev/null", tool])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn prometheus_loads_the_scrape_configuration_and_rules() {
    if !have("promtool") {
        eprintln!("skipped: no promtool");
        return;
    }
    for (what, file) in [
        ("config", "prometheus-qmail-hubs.yml"),
        ("rules", "prometheus-qmail-rules.yml"),
    ] {
        let o = Command::new("promtool")
            .args(["check", what, file])
            .current_dir(examples())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "promtool check {what} {file}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The value of `key` in the first object definition of `kind`.
fn directive(cfg: &str, kind: &str, key: &str) -> String {
    let start = cfg
        .find(&format!("define {kind} {{"))
        .unwrap_or_else(|| panic!("no define {kind}"));
    let body = &cfg[start..start + cfg[start..].find('}').unwrap()];
    body.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in define {kind}"))
        .trim()
        .to_string()
}

#[test]
fn the_nagios_command_runs_the_check_with_the_services_thresholds() {
    let cfg = std::fs::read_to_string(examples().join("nagios-qmail-queue.cfg")).unwrap();
    let mut line = directive(&cfg, "command", "command_line");
    let check = directive(&cfg, "service", "check_command");
    let mut args = check.split('!');
    assert_eq!(
        args.next(),
        Some(directive(&cfg, "command", "command_name").as_str())
    );
    // Nagios substitutes $ARGn$ from the service's check_command.
    for (n, value) in args.enumerate() {
        line = line.replace(&format!("$ARG{}$", n + 1), value);
    }
    assert!(!line.contains('$'), "an argument left unset: {line}");
    // Without sudo (the test's root or user reads its own queues), and
    // the tree's queue-stat for the installed one.
    let line = line
        .strip_prefix("/usr/bin/sudo -n ")
        .expect("the check runs through sudo")
        .to_string();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[0], "/usr/bin/queue-stat");

    let scratch = tempfile::tempdir().unwrap();
    let base = scratch.path().join("queue");
    for q in make_queues(&base, 1, 2) {
        put(&q);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_queue-stat"))
        .args(&words[1..])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SKIP_LOCAL_ENVIRONMENT", "1")
        .env("QUEUE_BASE", &base)
        .env("QUEUE_COUNT", "2")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    // No qmail-send runs on the scratch queues: --need-live makes that
    // CRITICAL (exit 2), and the perfdata carries the service's
    // thresholds: age 1h/6h, depth 5000/20000, free space 2G/500M (lower
    // bounds, "N:").
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.starts_with("QMAIL-QUEUE CRITICAL - "), "{out}");
    assert!(out.contains("queue1: qmail-send is not running"), "{out}");
    assert!(out.contains(" messages=2;5000;20000;0; "), "{out}");
    assert!(out.contains(";3600;21600;0;"), "{out}");
    assert!(out.contains("B;2147483648:;524288000:;0;"), "{out}");
}

fn put(queue: &Path) {
    let env = Envelope {
        sender: b"sender@example.org".to_vec(),
        recipients: vec![b"rcpt@example.net".to_vec()],
    };
    let opts = DepositOptions {
        layout: Layout::new(SPLIT),
        sync: false,
        received_line: false,
    };
    deposit(queue, &mut &b"Subject: x\n\nbody\n"[..], &env, opts).unwrap();
}
