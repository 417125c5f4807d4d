//! queue-fix's IndiMail 3.x command line and exit status, through the real
//! binary: every 3.x option and the getopt combinations its callers use,
//! the installer's and qscheduler's exact calls, the special queues and the
//! queues qscheduler serves beyond the configured range.

mod fix_support;
use fix_support::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

const INV: &str = "--as-invoker";

/// Whether a directory holds numbered subdirectories `0..split`.
fn is_split(dir: &Path, split: u32) -> bool {
    (0..split).all(|i| dir.join(i.to_string()).is_dir())
}

/// Entries of a directory (names), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A 3.x queue as IndiMail's installer makes it, here with --as-invoker.
fn flat_queue(q: &Path) {
    expect(&[INV, "-s", "23", "-b", "0", s(q)], 0);
}

#[test]
fn combined_and_attached_options_are_taken_getopt_style() {
    let (_t, dir) = scratch();
    let q = dir.join("q");
    // Attached values, as `-s23 -b0`, create the installer's layout.
    expect(&[INV, "-s23", "-b0", s(&q)], 0);
    assert!(names(&q.join("todo")).is_empty(), "todo must be flat");
    assert!(names(&q.join("intd")).is_empty(), "intd must be flat");
    assert!(is_split(&q.join("mess"), 23) && !q.join("mess/23").exists());
    // Combined flags with a value at the end of the cluster.
    expect(&[INV, "-Nvb0", "-s", "23", s(&q)], 0);
    expect(&[INV, "-Nvs23", "-b0", s(&q)], 0);
    expect(&[INV, "-vN", "-b", "0", "-s23", s(&q)], 0);
    // The same queue checked as BIGTODO=1 is not in that layout: -b is
    // read, wherever it sits in a cluster.
    assert!((1..=99).contains(&code(&run(&[INV, "-Ns23", "-b1", s(&q)]))));
    assert!((1..=99).contains(&code(&run(&[INV, "-Nb1", "-s23", s(&q)]))));
    // -r: ratelimit belongs to the queue; a missing one is one problem,
    // created by the repair. -rv as IndiMail's docker entrypoint calls it.
    let o = expect(&[INV, "-Nr", "-s23", "-b0", s(&q)], 1);
    assert!(out(&o).contains("ratelimit"), "{}", out(&o));
    expect(&[INV, "-rv", "-s23", "-b0", s(&q)], 0);
    let rl = std::fs::metadata(q.join("ratelimit")).unwrap();
    assert!(rl.is_dir() && rl.mode() & 0o7777 == 0o750);
    expect(&[INV, "-Nr", "-s23", "-b0", s(&q)], 0);
    // A ratelimit directory present without -r is not a problem.
    expect(&[INV, "-N", "-s23", "-b0", s(&q)], 0);
    // -t: trash belongs to the queue only when asked for (IndiMail 3.x's
    // queue-fix 1.35, flag_trash); one that exists is checked anyway.
    assert!(!q.join("trash").exists());
    let o = expect(&[INV, "-N", "-t", "-s23", "-b0", s(&q)], 1);
    assert!(out(&o).contains("trash"), "{}", out(&o));
    expect(&[INV, "-t", "-s23", "-b0", s(&q)], 0);
    assert_eq!(
        std::fs::metadata(q.join("trash")).unwrap().mode() & 0o7777,
        0o700
    );
    expect(&[INV, "-Nt", "-s23", "-b0", s(&q)], 0);
    expect(&[INV, "-tNmv", "-s23", "-b0", s(&q)], 0);
    std::fs::set_permissions(q.join("trash"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = expect(&[INV, "-N", "-s23", "-b0", s(&q)], 1);
    assert!(out(&o).contains("trash"), "{}", out(&o));
    expect(&[INV, "-s23", "-b0", s(&q)], 0);
    assert_eq!(
        std::fs::metadata(q.join("trash")).unwrap().mode() & 0o7777,
        0o700
    );
}

#[test]
fn b_overrides_the_environment_and_a_bad_bigtodo_alone_is_fatal() {
    let (_t, dir) = scratch();
    let q = dir.join("q");
    flat_queue(&q);
    let n = |env: &[(&str, &str)], extra: &[&str]| {
        code(&run_env(
            &[&[INV, "-N", "-s", "23"][..], extra, &[s(&q)]].concat(),
            env,
        ))
    };
    assert_eq!(n(&[("BIGTODO", "0")], &[]), 0);
    assert_eq!(n(&[("BIGTODO", "1")], &["-b", "0"]), 0);
    assert_eq!(n(&[("BIGTODO", "junk")], &["-b0"]), 0);
    assert!((1..=99).contains(&n(&[("BIGTODO", "0")], &["-b", "1"])));
    // BIGTODO set nowhere: the queue keeps its flat todo (queue::settings).
    assert_eq!(n(&[], &[]), 0, "unset BIGTODO keeps the layout on disk");
    let o = run_env(&[INV, "-N", "-s23", s(&q)], &[("BIGTODO", "junk")]);
    assert_eq!(code(&o), 111, "{}", err(&o));
    assert!(err(&o).contains("BIGTODO") && err(&o).contains("junk"));
}

#[test]
fn bad_values_exit_100_naming_the_option_and_touch_nothing() {
    let (_t, dir) = scratch();
    let q = dir.join("q");
    for (bad, opt) in [
        (&["-b", "2"][..], "-b"),
        (&["-b", ""], "-b"),
        (&["-bx"], "-b"),
        (&["-b", "01"], "-b"),
        (&["-S", "0"], "-S"),
        (&["-S", "-1"], "-S"),
        (&["-S", "1048577"], "-S"),
        (&["-S", "2k"], "-S"),
        (&["-S"], "-S"),
        (&["-s", "0"], "-s"),
        (&["-s152"], "-s"),
        (&["-s", "x"], "-s"),
        (&["-Ns"], "-s"),
    ] {
        let o = run(&[&[INV][..], bad, &[s(&q)]].concat());
        assert_eq!(code(&o), 100, "{bad:?}: {}", err(&o));
        let e = err(&o);
        assert!(
            e.contains(&format!("'{opt}")),
            "{bad:?} does not name {opt}: {e}"
        );
        assert!(
            e.contains("Usage: queue-fix"),
            "{bad:?}: no usage line: {e}"
        );
        assert!(!q.exists(), "{bad:?} created the queue");
    }
    // The bound is said where the option is described.
    let help = out(&expect(&["--help"], 0));
    assert!(help.contains("1..=1048576"), "{help}");
    assert!(help.contains("-b <0|1>") && help.contains("-t"), "{help}");
}

#[test]
fn s_sets_the_tcpto_size_and_a_wrong_size_is_reported_never_changed() {
    let (_t, dir) = scratch();
    let q = dir.join("q");
    expect(&[INV, "-S", "4096", "-s", "5", s(&q)], 0);
    let tcpto = q.join("lock/tcpto");
    let size = || std::fs::metadata(&tcpto).unwrap().len();
    assert_eq!(size(), 4096);
    assert!(std::fs::read(&tcpto).unwrap().iter().all(|&b| b == 0));
    expect(&[INV, "-NS4096", "-s5", s(&q)], 0);
    // Checked against the default 2048: one problem with -N, and the
    // repair reports it, changes nothing and does not claim success.
    let o = expect(&[INV, "-N", "-s5", s(&q)], 1);
    assert!(
        err(&o).contains("4096 bytes, should be 2048"),
        "{}",
        err(&o)
    );
    let o = expect(&[INV, "-s5", s(&q)], 1);
    assert!(err(&o).contains("not changed"), "{}", err(&o));
    assert_eq!(size(), 4096);
    expect(&[INV, "-S", "4096", "-s5", s(&q)], 0);
}

#[test]
fn n_exits_the_count_and_a_repair_that_leaves_the_queue_correct_exits_0() {
    let (_t, dir) = scratch();
    let q = dir.join("q");
    flat_queue(&q);
    fill_flat(&q, 4);
    // Three problems: a mode, a missing FIFO, a stray.
    std::fs::set_permissions(q.join("mess"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_file(q.join("lock/trigger")).unwrap();
    write_0600(&q.join("info/3/999999999"), "F\0");
    let dry = [INV, "-N", "-s23", "-b0", s(&q)];
    expect(&dry, 3);
    expect(&dry, 3);
    let o = expect(&[INV, "-s23", "-b0", s(&q)], 0);
    assert_eq!(after_settings(&o), "", "quiet without -v");
    expect(&dry, 0);
    // More than 99 problems: capped at 99, never wrapping to 0.
    for i in 0..120 {
        write_0600(&q.join(format!("bounce/{}", 900_000_000 + i)), "x");
    }
    expect(&dry, 99);
    expect(&[INV, "-s23", "-b0", s(&q)], 0);
    expect(&dry, 0);
}

#[test]
fn i_answered_no_leaves_the_problems_and_says_how_many() {
    let (_t, dir) = scratch();
    let q = dir.join("q");
    flat_queue(&q);
    for d in ["mess", "info"] {
        std::fs::set_permissions(q.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ask = |answer: &str| {
        let mut child = Command::new(bin())
            .args([INV, "-i", "-s23", "-b0", s(&q)])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = ask("n\n");
    assert_eq!(code(&o), 2, "{}", err(&o));
    let o = ask("y\n");
    assert_eq!(code(&o), 0, "{}", err(&o));
    expect(&[INV, "-N", "-s23", "-b0", s(&q)], 0);
}

/// Deposits `n` messages as IndiMail 3.x's qmail-queue does under
/// BIGTODO=0 (flat todo), split 23.
fn fill_flat(q: &Path, n: usize) {
    let layout = qmail_multi::queue::layout::Layout {
        big_todo: false,
        ..qmail_multi::queue::layout::Layout::new(23)
    };
    fill_layout(q, n, layout);
}

#[test]
fn qschedulers_call_creating_the_next_queue_exits_0() {
    // qscheduler.c queue_fix(): execvp("queue-fix", {"queue-fix", "-s",
    // CONFSPLIT, QUEUE_BASE/queue<N+1>}) with its own environment
    // (BIGTODO=0 from control/global_vars); any other status than 0 and
    // it stops every qmail-send.
    let (_t, base) = scratch();
    for n in 1..=2 {
        expect(
            &[
                INV,
                "-s",
                "23",
                "-b",
                "0",
                s(&base.join(format!("queue{n}"))),
            ],
            0,
        );
    }
    let q3 = base.join("queue3");
    let o = run_env(&[INV, "-s", "23", s(&q3)], &[("BIGTODO", "0")]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(names(&q3.join("todo")).is_empty());
    // Run again on the queue it made (qscheduler restarted): still 0.
    let o = run_env(&[INV, "-s", "23", s(&q3)], &[("BIGTODO", "0")]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(
        (after_settings(&o), err(&o)),
        (String::new(), String::new())
    );
}

/// Creates a special queue as svctool does and puts `n` messages in it.
fn special(base: &Path, name: &str, flag: Option<&str>, n: usize) {
    let q = base.join(name);
    let mut a = vec![INV, "-s23", "-b0"];
    a.extend(flag);
    a.push(s(&q));
    expect(&a, 0);
    fill_flat(&q, n);
}

fn base_args<'a>(base: &'a Path, count: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![INV, "-s23", "-b0", "--base", s(base), "--count", count];
    v.extend_from_slice(extra);
    v
}

#[test]
fn special_queues_are_checked_with_their_layout_and_never_orphans() {
    let (_t, base) = scratch();
    expect(&base_args(&base, "2", &[]), 0);
    special(&base, "nqueue", None, 3);
    special(&base, "slowq", Some("-r"), 4);
    special(&base, "qmta", Some("-m"), 5);
    let held = |name: &str| messages(&base.join(name));
    let before: Vec<_> = ["nqueue", "slowq", "qmta"].map(held).to_vec();
    let o = expect(&base_args(&base, "2", &["-N"]), 0);
    assert!(!err(&o).contains("orphan"), "{}", err(&o));
    let o = expect(&base_args(&base, "2", &["-v"]), 0);
    assert!(
        out(&o).contains(&format!(
            "{}: special queue (rate-limited delivery, checked as with -r)",
            base.join("slowq").display()
        )),
        "{}",
        out(&o)
    );
    // slowq is checked as with -r: its ratelimit directory is required.
    std::fs::remove_dir(base.join("slowq/ratelimit")).unwrap();
    let o = expect(&base_args(&base, "2", &["-N"]), 1);
    assert!(
        out(&o).contains(&base.join("slowq/ratelimit").display().to_string()),
        "{}",
        out(&o)
    );
    // ... and the others are checked too: a broken nqueue is counted.
    std::fs::set_permissions(
        base.join("nqueue/mess"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    expect(&base_args(&base, "2", &["-N"]), 2);
    expect(&base_args(&base, "2", &[]), 0);
    assert!(base.join("slowq/ratelimit").is_dir());
    // --retire moves nothing out of them.
    expect(&base_args(&base, "2", &["--retire"]), 0);
    let after: Vec<_> = ["nqueue", "slowq", "qmta"].map(held).to_vec();
    assert_eq!(after, before);
    assert!(after.iter().all(|m| !m.is_empty()));
    // Absent special queues are not created.
    let (_t2, other) = scratch();
    expect(&base_args(&other, "1", &[]), 0);
    assert_eq!(names(&other), ["queue1"]);
}

/// What a private mount namespace runs before queue-fix: a fresh tmpfs on
/// /dev/shm (never the host's), optionally qscheduler's segment in it, and
/// optionally /etc replaced by a directory of our own with the qmail
/// accounts (a bind mount of the whole directory: see fix_base.rs for why
/// not of /etc/passwd).
struct Namespace<'a> {
    dir: &'a Path,
    in_use: Option<u32>,
    /// qscheduler runs: its lock file (`QMAILHOME/queue/qscheduler`, with
    /// QMAILHOME under `dir`) is locked while queue-fix runs.
    running: bool,
    users: bool,
}

/// The fake accounts' ids.
const QMAILQ: u32 = 64010;
const QMAILS: u32 = 64011;
const QMAILR: u32 = 64012;
const QMAIL_GID: u32 = 64010;

impl Namespace<'_> {
    /// Runs queue-fix there; `None` (the caller skips) without root or
    /// unshare(1), or when the namespace cannot be set up.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Option<Output> {
        if !is_root() || Command::new("unshare").arg("--version").output().is_err() {
            return None;
        }
        let mut script =
            String::from("mount -t tmpfs -o size=1m,mode=1777 tmpfs /dev/shm || exit 197\n");
        if let Some(n) = self.in_use {
            let bytes: String = (n as i32)
                .to_ne_bytes()
                .iter()
                .map(|b| format!("\\{b:03o}"))
                .collect();
            script += &format!(
                "printf '{bytes}' > /dev/shm/qscheduler && chmod 0644 /dev/shm/qscheduler || exit 197\n"
            );
        }
        let home = self.dir.join("qmailhome");
        if self.running {
            // As qscheduler's lock_exnb: an exclusive flock that the exec'd
            // queue-fix inherits (fd 9) and so holds while it runs.
            script += &format!(
                "mkdir -p '{0}/queue' && exec 9>'{0}/queue/qscheduler' && flock -x 9 || exit 197\n",
                home.display()
            );
        }
        if self.users {
            let etc = self.dir.join("etc");
            if !etc.exists() {
                std::fs::create_dir(&etc).unwrap();
                std::fs::write(
                    etc.join("passwd"),
                    format!(
                        "root:x:0:0:root:/root:/bin/sh\n\
                         qmailq:x:{QMAILQ}:{QMAIL_GID}::/:/bin/false\n\
                         qmails:x:{QMAILS}:{QMAIL_GID}::/:/bin/false\n\
                         qmailr:x:{QMAILR}:{QMAIL_GID}::/:/bin/false\n"
                    ),
                )
                .unwrap();
                std::fs::write(
                    etc.join("group"),
                    format!("root:x:0:\nqmail:x:{QMAIL_GID}:\n"),
                )
                .unwrap();
                std::fs::write(etc.join("nsswitch.conf"), "passwd: files\ngroup: files\n").unwrap();
            }
            script += &format!("mount --bind '{}' /etc || exit 197\n", etc.display());
        }
        script += "exec \"$0\" \"$@\"\n";
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c", &script, bin()])
            .args(args)
            .env_remove("CONFSPLIT")
            .env_remove("BIGTODO")
            .env("QMAILHOME", &home);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().ok()?;
        if code(&o) == 197 {
            eprintln!("namespace setup failed: {}", err(&o));
            return None;
        }
        Some(o)
    }
}

#[test]
fn the_installers_exact_call_creates_a_flat_queue_owned_by_the_qmail_accounts() {
    let (_t, dir) = scratch();
    let ns = Namespace {
        dir: &dir,
        in_use: None,
        running: false,
        users: true,
    };
    let q = dir.join("queue1");
    // svctool: queue-fix -s <split> -b 0 <dir>
    let Some(o) = ns.run(&["-s", "23", "-b", "0", s(&q)], &[]) else {
        return skip(
            "installer's call",
            "needs root, unshare(1) and a mount namespace",
        );
    };
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(
        (after_settings(&o), err(&o)),
        (String::new(), String::new())
    );
    assert!(names(&q.join("todo")).is_empty() && names(&q.join("intd")).is_empty());
    assert!(is_split(&q.join("info"), 23));
    let owner = |p: &str| {
        let m = std::fs::symlink_metadata(q.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("."), (QMAILQ, QMAIL_GID));
    assert_eq!(owner("info/7"), (QMAILS, QMAIL_GID));
    assert_eq!(owner("lock/tcpto"), (QMAILR, QMAIL_GID));
    // No -t, no trash (IndiMail 3.x's queue-fix 1.35 makes it only with -t).
    assert!(!q.join("trash").exists());
    // Its install check: queue-fix -N <dir>, with BIGTODO=0 and the split
    // from control/global_vars in the environment.
    let vars = [("BIGTODO", "0"), ("CONFSPLIT", "23")];
    let o = ns.run(&["-N", s(&q)], &vars).unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    // qscheduler's call for the next queue, same accounts.
    let q2 = dir.join("queue2");
    let o = ns.run(&["-s", "23", s(&q2)], &[("BIGTODO", "0")]).unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));

    // qmta: made with -m (qmailq owns everything), and --base checks it so.
    let qmta = dir.join("qmta");
    let o = ns.run(&["-m", "-s23", "-b0", s(&qmta)], &[]).unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    let m = std::fs::metadata(qmta.join("info/0")).unwrap();
    assert_eq!((m.uid(), m.gid()), (QMAILQ, QMAIL_GID));
    let slowq = dir.join("slowq");
    let o = ns.run(&["-rv", "-s23", "-b0", s(&slowq)], &[]).unwrap();
    assert_eq!(code(&o), 0, "{}", err(&o));
    let base = ["-N", "-s23", "-b0", "--base", s(&dir), "--count", "2"];
    let o = ns.run(&base, &[]).unwrap();
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    // Checked as a plain queue, the qmta queue would be wrong (info is
    // qmails' there): proof that --base gives it its own layout.
    let o = ns.run(&["-N", "-s23", "-b0", s(&qmta)], &[]).unwrap();
    assert!((1..=99).contains(&code(&o)), "{}", err(&o));
}

#[test]
fn queues_qscheduler_serves_beyond_the_range_are_checked_not_orphans() {
    let (_t, base) = scratch();
    expect(&base_args(&base, "2", &[]), 0);
    for n in 3..=5 {
        let q = base.join(format!("queue{n}"));
        expect(&[INV, "-s23", "-b0", s(&q)], 0);
        fill_flat(&q, n);
    }
    let b = base_args(&base, "2", &["-N"]);
    let with = Namespace {
        dir: &base,
        in_use: Some(4),
        running: true,
        users: false,
    };
    let Some(o) = with.run(&b, &[]) else {
        return skip(
            "qscheduler's count",
            "needs root, unshare(1) and a mount namespace",
        );
    };
    // qscheduler has 4 queues in use: queue3 and queue4 are served;
    // queue5 (5 messages) is the only orphan.
    assert_eq!(code(&o), 1, "{}{}", out(&o), err(&o));
    for n in [3, 4] {
        let q = base.join(format!("queue{n}"));
        assert!(
            out(&o).contains(&format!(
                "{}: served by qscheduler (4 queues in use, configured queue1..queue2): \
                 checked like the range, not an orphan",
                q.display()
            )),
            "{}",
            out(&o)
        );
    }
    assert!(
        err(&o).contains(&format!(
            "{}: orphan: holds 5 messages",
            base.join("queue5").display()
        )),
        "{}",
        err(&o)
    );
    assert_eq!(err(&o).matches("orphan").count(), 1, "{}", err(&o));
    // Without the segment (same namespace, no qscheduler): three orphans.
    let without = Namespace {
        dir: &base,
        in_use: None,
        running: false,
        users: false,
    };
    let o = without.run(&b, &[]).unwrap();
    assert_eq!(code(&o), 3, "{}{}", out(&o), err(&o));
    // The segment left by a qscheduler that no longer runs (its lock file
    // unlocked): no qmail-send serves queue3..queue5, so all three are
    // orphans again.
    let stale = Namespace {
        running: false,
        ..with
    };
    let o = stale.run(&b, &[]).unwrap();
    assert_eq!(code(&o), 3, "{}{}", out(&o), err(&o));
    assert_eq!(err(&o).matches("orphan").count(), 3, "{}", err(&o));
    // A served queue is checked like the range: a broken one is counted
    // and repaired.
    std::fs::set_permissions(
        base.join("queue4/mess"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let o = with.run(&b, &[]).unwrap();
    assert_eq!(code(&o), 2, "{}{}", out(&o), err(&o));
    let o = with.run(&base_args(&base, "2", &[]), &[]).unwrap();
    assert_eq!(code(&o), 1, "the orphan is left: {}{}", out(&o), err(&o));
    assert_eq!(
        std::fs::metadata(base.join("queue4/mess")).unwrap().mode() & 0o7777,
        0o750
    );
    // --retire empties the orphan only, into the configured range.
    let held = |n: u32| messages(&base.join(format!("queue{n}"))).len();
    let o = with
        .run(&base_args(&base, "2", &["--retire"]), &[])
        .unwrap();
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    assert_eq!((held(3), held(4), held(5)), (3, 4, 0));
    assert_eq!(held(1) + held(2), 5);
    // A served queue that does not exist is said, not created.
    std::fs::remove_dir_all(base.join("queue5")).unwrap();
    let five = Namespace {
        dir: &base,
        in_use: Some(5),
        running: true,
        users: false,
    };
    let o = five.run(&b, &[]).unwrap();
    assert_eq!(code(&o), 0, "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("does not exist; not created"),
        "{}",
        out(&o)
    );
    assert!(!base.join("queue5").exists());
}
