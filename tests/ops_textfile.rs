//! The node_exporter timer (service/qmail-queue-stat.{service,timer,path})
//! checked offline with systemd-analyze, and the command it runs
//! (service/queue-stat-textfile) run for real against scratch queues: the
//! metrics file appears whole (a new inode renamed into place, never the
//! old one rewritten), passes promtool, and a failed run leaves the
//! previous file as it was. As root, the run gets exactly the unit's
//! capability bounding set, over queues owned as qmail owns them (three
//! users, 0700 directories) and a textfile directory root does not own
//! (Fedora's is prometheus:prometheus 0755), and fails without it.

mod multi_support;

use multi_support::{is_root, make_queues, SPLIT};
use qmail_multi::queue::deposit::{deposit, DepositOptions, Envelope};
use qmail_multi::queue::layout::{Layout, Role, LAYOUT};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNITS: [&str; 3] = ["service", "timer", "path"];
/// The installed path of the command, as the service names it.
const INSTALLED: &str = "/usr/libexec/qmail-multi/queue-stat-textfile";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$0\" >/dev/null", tool])
        .status()
        .is_ok_and(|s| s.success())
}

fn unit(kind: &str) -> String {
    fs::read_to_string(repo().join(format!("service/qmail-queue-stat.{kind}"))).unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "{:?}\nstdout:\n{}stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The value of `Key=` in a unit (the last one, as systemd reads it).
fn setting(text: &str, key: &str) -> String {
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_string()
}

#[test]
fn units_verify_offline() {
    if !have("systemd-analyze") {
        eprintln!("skipped: units_verify_offline: no systemd-analyze");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The units as shipped, the service's ExecStart pointed at the tree's
    // script (verify insists the command exists).
    let service = unit("service");
    assert_eq!(setting(&service, "ExecStart"), INSTALLED);
    for kind in UNITS {
        let text = unit(kind).replace(
            INSTALLED,
            repo().join("service/queue-stat-textfile").to_str().unwrap(),
        );
        fs::write(dir.path().join(format!("qmail-queue-stat.{kind}")), text).unwrap();
    }
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(UNITS.map(|k| format!("qmail-queue-stat.{k}")))
        .current_dir(dir.path())
        .output()
        .unwrap();
    // An unknown or misspelt setting is only a warning: none may appear.
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        show(&o)
    );
    // The sandbox as systemd rates it: 1.1 on systemd 252; above 2.0
    // means an option went missing.
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg("qmail-queue-stat.service")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "systemd-analyze security:\n{}",
        show(&o)
    );
    assert!(report.contains("Overall exposure level"), "{report}");
    // The three paths that must agree: where the path unit waits, the
    // service's condition, the directory written and the one made writable.
    let textfile = "/var/lib/prometheus/node-exporter";
    assert_eq!(setting(&unit("path"), "PathExists"), textfile);
    assert_eq!(setting(&unit("path"), "Unit"), "qmail-queue-stat.timer");
    // Stopping the path unit (the package's removal) stops the timer.
    assert_eq!(setting(&unit("timer"), "PartOf"), "qmail-queue-stat.path");
    assert_eq!(setting(&service, "ConditionPathIsDirectory"), textfile);
    assert_eq!(
        setting(&service, "Environment"),
        "SKIP_LOCAL_ENVIRONMENT=1",
        "the last Environment="
    );
    assert!(service.contains(&format!("Environment=TEXTFILE_DIR={textfile}\n")));
    assert_eq!(setting(&service, "ReadWritePaths"), format!("-{textfile}"));
}

/// `base/queue1..queue3`, `n` messages in each.
fn queues(base: &Path, n: usize) {
    make_queues(base, 1, 3);
    more(base, n);
}

/// `n` more messages in each of `base/queue1..queue3`.
fn more(base: &Path, n: usize) {
    for q in 1..=3 {
        let q = base.join(format!("queue{q}"));
        for i in 0..n {
            let env = Envelope {
                sender: b"sender@example.org".to_vec(),
                recipients: vec![b"rcpt@example.net".to_vec()],
            };
            let opts = DepositOptions {
                layout: Layout::new(SPLIT),
                sync: false,
                received_line: false,
            };
            let body = format!("Subject: {i}\n\nbody\n");
            deposit(&q, &mut body.as_bytes(), &env, opts).unwrap();
        }
    }
}

/// Runs the command the service runs, as it runs it (an environment of
/// its own), through `wrapper` (none, or setpriv).
fn textfile_run(dir: &Path, base: &Path, wrapper: &[String]) -> Output {
    let script = repo().join("service/queue-stat-textfile");
    let mut c = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&script);
            c
        }
        None => Command::new(&script),
    };
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TEXTFILE_DIR", dir)
        .env("QUEUE_STAT", env!("CARGO_BIN_EXE_queue-stat"))
        .env("SKIP_LOCAL_ENVIRONMENT", "1")
        .env("QUEUE_BASE", base)
        .env("QUEUE_COUNT", "3")
        .env("QUEUE_START", "1")
        .output()
        .unwrap()
}

fn prom(dir: &Path) -> PathBuf {
    dir.join("qmail_queue.prom")
}

/// Only the metrics file: no temporary file left behind.
fn assert_only_prom(dir: &Path) {
    let names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["qmail_queue.prom"], "in {}", dir.display());
}

fn assert_messages(dir: &Path, n: usize) {
    let text = fs::read_to_string(prom(dir)).unwrap();
    for q in 1..=3 {
        let line = format!("qmail_queue_messages{{queue=\"queue{q}\"}} {n}\n");
        assert!(text.contains(&line), "no {line:?} in\n{text}");
    }
    if have("promtool") {
        let o = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(fs::File::open(prom(dir)).unwrap())
            .output()
            .unwrap();
        assert!(o.status.success(), "promtool check metrics:\n{}", show(&o));
    } else {
        eprintln!("skipped: promtool check metrics: no promtool");
    }
}

#[test]
fn metrics_replace_the_file_whole_and_a_failure_keeps_it() {
    let scratch = tempfile::tempdir().unwrap();
    let base = scratch.path().join("queue");
    let dir = scratch.path().join("textfile");
    fs::create_dir(&dir).unwrap();
    queues(&base, 2);

    let o = textfile_run(&dir, &base, &[]);
    assert!(o.status.success(), "{}", show(&o));
    assert_only_prom(&dir);
    assert_messages(&dir, 2);
    let first = fs::metadata(prom(&dir)).unwrap();
    assert_eq!(
        first.mode() & 0o7777,
        0o644,
        "node_exporter's user reads it"
    );

    // A reader holding the file while the next run replaces it keeps the
    // complete old file: the new one is a new inode renamed over the name.
    let held = fs::File::open(prom(&dir)).unwrap();
    let old_text = fs::read_to_string(prom(&dir)).unwrap();
    more(&base, 1);
    let o = textfile_run(&dir, &base, &[]);
    assert!(o.status.success(), "{}", show(&o));
    assert_only_prom(&dir);
    assert_messages(&dir, 3);
    assert_ne!(fs::metadata(prom(&dir)).unwrap().ino(), first.ino());
    let mut still = String::new();
    std::io::Read::read_to_string(&mut &held, &mut still).unwrap();
    assert_eq!(still, old_text, "the old file was rewritten in place");

    // A base queue-stat cannot read: the run fails, saying so, and the
    // file is the previous one, byte for byte and inode for inode. Root
    // reads anything: it runs without capabilities (setpriv), so the
    // mode 000 holds it back too.
    let before = fs::read(prom(&dir)).unwrap();
    let ino = fs::metadata(prom(&dir)).unwrap().ino();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o000)).unwrap();
    let o = if is_root() {
        if !have("setpriv") {
            fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
            eprintln!("skipped: the failed run as root needs setpriv");
            return;
        }
        textfile_run(
            &dir,
            &base,
            &["setpriv".into(), "--bounding-set=-all".into()],
        )
    } else {
        textfile_run(&dir, &base, &[])
    };
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("left as it was"),
        "{}",
        show(&o)
    );
    assert_eq!(fs::read(prom(&dir)).unwrap(), before);
    assert_eq!(fs::metadata(prom(&dir)).unwrap().ino(), ino);
    assert_only_prom(&dir);
}

/// Owners as qmail has them: each entry's role (qmailq, qmails, qmailr as
/// three uids no process here runs as), group qmail; true when done.
fn chown_queues(base: &Path) -> bool {
    const GID: u32 = 64_900;
    let uid = |r: Role| match r {
        Role::Queue => 64_901,
        Role::Send => 64_902,
        Role::Remote => 64_903,
    };
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        out.push(p.to_owned());
        if fs::symlink_metadata(p).unwrap().is_dir() {
            for e in fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        }
    }
    for q in 1..=3 {
        let root = base.join(format!("queue{q}"));
        let mut all = Vec::new();
        walk(&root, &mut all);
        for p in all {
            let rel = p.strip_prefix(&root).unwrap().to_str().unwrap().to_string();
            let top = rel.split('/').next().unwrap();
            let entry = LAYOUT
                .iter()
                .find(|e| e.path == rel)
                .or_else(|| LAYOUT.iter().find(|e| e.path == top))
                .or_else(|| LAYOUT.iter().find(|e| e.path == "." && rel.is_empty()))
                .unwrap_or_else(|| panic!("{rel} is not in the layout"));
            std::os::unix::fs::lchown(&p, Some(uid(entry.owner)), Some(GID)).unwrap();
        }
    }
    true
}

#[test]
fn the_units_capabilities_read_qmails_queues_and_no_fewer() {
    if !is_root() || !have("setpriv") {
        eprintln!("skipped: needs root and setpriv (capability bounding set)");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let base = scratch.path().join("queue");
    let dir = scratch.path().join("textfile");
    fs::create_dir(&dir).unwrap();
    queues(&base, 2);
    assert!(chown_queues(&base));
    // Fedora's textfile directory: prometheus:prometheus 0755.
    std::os::unix::fs::chown(&dir, Some(64_910), Some(64_910)).unwrap();

    let caps = setting(&unit("service"), "CapabilityBoundingSet");
    let bounding = |keep: &[&str]| {
        let mut set = String::from("--bounding-set=-all");
        for c in keep {
            set.push_str(&format!(
                ",+{}",
                c.trim_start_matches("CAP_").to_lowercase()
            ));
        }
        vec!["setpriv".to_string(), set]
    };
    let all: Vec<&str> = caps.split_whitespace().collect();
    assert_eq!(all, ["CAP_DAC_READ_SEARCH", "CAP_DAC_OVERRIDE"]);

    let o = textfile_run(&dir, &base, &bounding(&all));
    assert!(o.status.success(), "with {caps}: {}", show(&o));
    assert_only_prom(&dir);
    assert_messages(&dir, 2);
    assert_eq!(fs::metadata(prom(&dir)).unwrap().uid(), 0, "root's file");

    // Reading alone does not write into prometheus's directory ...
    let before = fs::read(prom(&dir)).unwrap();
    let o = textfile_run(&dir, &base, &bounding(&["CAP_DAC_READ_SEARCH"]));
    assert!(!o.status.success(), "{}", show(&o));
    assert_eq!(fs::read(prom(&dir)).unwrap(), before);
    // ... but does for a directory root owns (Debian's and openSUSE's).
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    let o = textfile_run(&dir, &base, &bounding(&["CAP_DAC_READ_SEARCH"]));
    assert!(o.status.success(), "{}", show(&o));
    // And without it, qmail's 0700 directories cannot be read: queue-stat
    // fails and the file stays.
    let before = fs::read(prom(&dir)).unwrap();
    let o = textfile_run(&dir, &base, &bounding(&[]));
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("left as it was"),
        "{}",
        show(&o)
    );
    assert_eq!(fs::read(prom(&dir)).unwrap(), before);
    assert_only_prom(&dir);
}
