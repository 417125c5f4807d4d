//! Whole-base runs, orphans, retiring, live queues, usage and fatal errors.

mod fix_support;
use fix_support::*;
use std::path::Path;
use std::process::{Command, Stdio};

const INV: &str = "--as-invoker";

fn base_args<'a>(base: &'a Path, count: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        INV,
        "-s",
        "7",
        "--base",
        s(base),
        "--count",
        count,
        "--start",
        "1",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn whole_base_check_names_every_orphan_with_its_count() {
    let (_t, base) = scratch();
    expect(&base_args(&base, "3", &[]), 0);
    expect(&base_args(&base, "3", &["-N"]), 0);
    // queue4 and queue12 hold mail outside 1..3; queue5 is empty (not an
    // orphan), queue07 is not a canonical queue name.
    for (n, msgs) in [("queue4", 3), ("queue12", 2), ("queue5", 0), ("queue07", 1)] {
        let q = base.join(n);
        expect(&[INV, "-s", "7", s(&q)], 0);
        fill(&q, msgs, 7);
    }
    let o = expect(&base_args(&base, "3", &["-N"]), 2);
    let e = err(&o);
    assert!(
        e.contains(&format!(
            "{}: orphan: holds 3 messages",
            base.join("queue4").display()
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "{}: orphan: holds 2 messages",
            base.join("queue12").display()
        )),
        "{e}"
    );
    assert!(!e.contains("queue5") && !e.contains("queue07"), "{e}");
    // With the range covering them, no orphans.
    expect(&base_args(&base, "12", &["-N"]), 99); // queue6..11 missing
}

#[test]
fn retire_moves_every_message_once_into_the_range_and_empties_orphans() {
    let (_t, base) = scratch();
    expect(&base_args(&base, "2", &[]), 0);
    let mut before = Vec::new();
    // queue5 is a symlink to a directory elsewhere, as admins do for
    // queues on other disks.
    std::os::unix::fs::symlink(base.join("real5"), base.join("queue5")).unwrap();
    for n in 1..=5 {
        let q = base.join(format!("queue{n}"));
        if n == 5 {
            run(&[INV, "-s", "7", s(&base.join("real5"))]);
        }
        run(&[INV, "-s", "7", s(&q)]);
        let inos = fill(&q, 20, 7);
        add_info_remote(&q, (inos[0] % 7) as u32, &inos[0].to_string());
        before.extend(messages(&q));
    }
    before.sort_unstable();
    // -N --retire: the plan, one line per message of queue3..5, no change.
    let snap = snapshot(&base);
    let o = run(&base_args(&base, "2", &["-N", "--retire"]));
    assert_eq!(code(&o), 3, "one problem per orphan: {}", err(&o));
    assert_eq!(
        out(&o).lines().filter(|l| l.starts_with("retire ")).count(),
        60,
        "{}",
        out(&o)
    );
    assert!(err(&o).contains("orphan: holds 20 messages"), "{}", err(&o));
    assert_eq!(snapshot(&base), snap);
    let o = run(&base_args(&base, "2", &["--retire"]));
    assert_eq!(code(&o), 0, "{}", err(&o));
    let mut after = Vec::new();
    for n in 1..=2 {
        let q = base.join(format!("queue{n}"));
        expect(&[INV, "-s", "7", "-N", s(&q)], 0);
        after.extend(messages(&q));
    }
    after.sort_unstable();
    assert_eq!(after, before);
    for n in 3..=5 {
        assert!(messages(&base.join(format!("queue{n}"))).is_empty());
    }
    expect(&base_args(&base, "2", &["-N"]), 0);
}

#[test]
fn retire_prefers_enabled_queues_and_falls_back_to_disabled_ones() {
    let (_t, base) = scratch();
    expect(&base_args(&base, "3", &[]), 0);
    let q = |n: u32| base.join(format!("queue{n}"));
    for n in 4..=5 {
        run(&[INV, "-s", "7", s(&q(n))]);
        fill(&q(n), 30, 7);
    }
    let held = |n: u32| messages(&q(n)).len();
    let orphans: Vec<_> = [4, 5].iter().map(|&n| messages(&q(n))).collect();
    expect(&["--disable", s(&q(2))], 0);

    // queue2 disabled: queue4's 30 messages go to queue1 and queue3 only.
    let args = [
        INV,
        "-s",
        "7",
        "--base",
        s(&base),
        "--count",
        "3",
        "--retire",
    ];
    // queue5 waits: only queue4 is retired in this step.
    std::fs::rename(q(5), base.join("later5")).unwrap();
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        out(&o).contains(&format!(
            "{}: retiring into enabled queues only, not into disabled queue2\n",
            q(4).display()
        )),
        "{}",
        out(&o)
    );
    assert_eq!((held(1) + held(3), held(2), held(4)), (30, 0, 0));
    assert!(held(1) > 0 && held(3) > 0, "{} {}", held(1), held(3));

    // Every queue disabled: the mail still moves, into disabled queues,
    // and the output says so.
    expect(&["--disable", s(&q(1))], 0);
    expect(&["--disable", s(&q(3))], 0);
    std::fs::rename(base.join("later5"), q(5)).unwrap();
    let before = (held(1), held(2), held(3));
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        out(&o).contains(&format!(
            "{}: every queue of the range is disabled: retiring into them anyway \
             (qmail-send still delivers a disabled queue)\n",
            q(5).display()
        )),
        "{}",
        out(&o)
    );
    assert_eq!(held(5), 0);
    assert_eq!(
        held(1) + held(2) + held(3),
        before.0 + before.1 + before.2 + 30
    );
    assert!(held(2) > 0, "the fallback spreads over all of the range");
    let mut after: Vec<_> = (1..=3).flat_map(|n| messages(&q(n))).collect();
    let mut all: Vec<_> = orphans.concat();
    after.sort_unstable();
    all.sort_unstable();
    assert_eq!(after, all, "every message once, none lost");
    // The range is consistent and still disabled.
    expect(&base_args(&base, "3", &["-N"]), 0);
    assert!((1..=3).all(|n| q(n).join("disabled").is_file()));
}

/// Starts a process that takes the queue's lock and returns once it says
/// "locked", so the probe never races a holder that is still starting.
fn hold_lock(cmd: &mut Command, locker: &str) -> std::process::Child {
    let mut holder = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n", "{locker}: the lock holder failed");
    holder
}

#[test]
fn a_live_queue_is_checked_but_changed_only_with_force() {
    let (_t, dir) = scratch();
    let q = dir.join("q");
    run(&[INV, "-s", "7", s(&q)]);
    let inos = fill(&q, 3, 7);
    let i = inos[0];
    let wrong = i + 1_000_003;
    misplace(
        &q,
        i,
        (i % 7) as u32,
        (wrong % 7) as u32,
        &wrong.to_string(),
    );
    let mode = q.join("info");
    std::fs::set_permissions(&mode, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for locker in ["flock", "fcntl"] {
        // A real other process holding the lock, as qmail-send does.
        let script = match locker {
            // --no-fork: the holder is the process we kill.
            "flock" => format!(
                "exec flock --no-fork -x {} sh -c 'echo locked; exec sleep 30'",
                q.join("lock/sendmutex").display()
            ),
            _ => format!(
                "exec python3 -c 'import fcntl,time; f=open(\"{}\",\"r+\"); fcntl.lockf(f, fcntl.LOCK_EX); print(\"locked\", flush=True); time.sleep(30)'",
                q.join("lock/sendmutex").display()
            ),
        };
        if Command::new(if locker == "flock" {
            "flock"
        } else {
            "python3"
        })
        .arg("--version")
        .output()
        .is_err()
        {
            skip(
                &format!("live queue via {locker}"),
                "the tool is not installed",
            );
            continue;
        }
        let mut holder = hold_lock(Command::new("sh").args(["-c", &script]), locker);
        assert_ne!(code(&run(&[INV, "-s", "7", "-N", s(&q)])), 0);
        let snap = snapshot(&q);
        let o = expect(&[INV, "-s", "7", s(&q)], 112);
        assert!(
            err(&o).contains("live") && err(&o).contains(s(&q)),
            "{}",
            err(&o)
        );
        assert_eq!(snapshot(&q), snap, "{locker}: a live queue was changed");
        let _ = holder.kill();
        let _ = holder.wait();
    }
    // Forced while live: repaired.
    if Command::new("flock").arg("--version").output().is_err() {
        return skip("forced repair of a live queue", "flock(1) is not installed");
    }
    let mut holder = hold_lock(
        Command::new("flock").args([
            "--no-fork",
            "-x",
            s(&q.join("lock/sendmutex")),
            "sh",
            "-c",
            "echo locked; exec sleep 30",
        ]),
        "flock",
    );
    expect(&[INV, "-s", "7", s(&q)], 112);
    // In a live queue a young file without its mess may be qmail-send's
    // work in progress: left alone; one older than 36 hours is a stray.
    let young = q.join("info/3/999999993");
    let old = q.join("info/4/999999994");
    for p in [&young, &old] {
        write_0600(p, "envelope");
    }
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(48 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    expect(&[INV, "-s", "7", "--force", s(&q)], 0);
    expect(&[INV, "-s", "7", "-N", s(&q)], 0);
    assert!(young.exists(), "a young file of a live queue was set aside");
    assert!(!old.exists() && q.join("quarantine/info_4_999999994").exists());
    let _ = holder.kill();
    let _ = holder.wait();
    // No longer live: the young one is a stray like any other.
    expect(&[INV, "-s", "7", s(&q)], 0);
    assert!(q.join("quarantine/info_3_999999993").exists());
}

#[test]
fn usage_errors_exit_100_with_a_usage_line_and_unreadable_queues_111() {
    for bad in [
        &[][..],
        &["-N", "-i", "/nonexistent-queue-fix/x"],
        &["-s", "0", "/nonexistent-queue-fix/x"],
        &["-s", "152", "/nonexistent-queue-fix/x"],
        &["--bogus", "/nonexistent-queue-fix/x"],
        &["--count", "3", "/nonexistent-queue-fix/x"],
        &["--retire", "/nonexistent-queue-fix/x"],
        &["--base", "/tmp", "/nonexistent-queue-fix/x"],
    ] {
        let o = run(bad);
        assert_eq!(code(&o), 100, "{bad:?}: {}", err(&o));
        assert!(
            err(&o).contains("Usage: queue-fix") || err(&o).contains("usage"),
            "{bad:?}: {}",
            err(&o)
        );
    }
    let o = run_env(&[INV, "/nonexistent-queue-fix/x"], &[("CONFSPLIT", "abc")]);
    assert_eq!(code(&o), 111);
    assert!(err(&o).contains("CONFSPLIT"));
    let (_t, dir) = scratch();
    let o = run(&[INV, s(&dir.join("no/such/parent/q"))]);
    assert_eq!(code(&o), 111);
    assert!(
        err(&o).contains(s(&dir.join("no/such/parent"))),
        "{}",
        err(&o)
    );
    if is_root() {
        let o = run_env(&[INV, s(&dir.join("q"))], &[]);
        assert_eq!(code(&o), 0);
        // Unreadable to an unprivileged user: run as nobody.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::set_permissions(
            dir.join("q"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let o = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                bin(),
                INV,
                "-N",
                s(&dir.join("q")),
            ])
            .output()
            .unwrap();
        assert_eq!(code(&o), 111, "{}", err(&o));
        assert!(
            err(&o).contains(s(&dir.join("q"))) && err(&o).contains("Permission denied"),
            "{}",
            err(&o)
        );
    } else {
        let q = dir.join("q");
        run(&[INV, s(&q)]);
        std::fs::set_permissions(
            q.join("info"),
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .unwrap();
        let o = run(&[INV, "-N", s(&q)]);
        // Readable again, so the scratch directory can be removed.
        std::fs::set_permissions(
            q.join("info"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        assert_eq!(code(&o), 111, "{}", err(&o));
        assert!(
            err(&o).contains(&format!("{}", q.join("info").display())) || err(&o).contains(s(&q)),
            "{}",
            err(&o)
        );
    }
    // Missing qmail accounts: fatal, naming the account. Shown to queue-fix
    // through a private mount namespace whose /etc is a directory of our
    // own (passwd without qmailq, files-only nsswitch.conf). Not a bind
    // mount over /etc/passwd itself: useradd and groupadd replace that file
    // by renaming a new one over it, and the kernel then drops a bind mount
    // on the old file in every namespace, so an account being created
    // elsewhere during the test showed queue-fix the real accounts (exit
    // 99 instead of 111). Nothing renames /etc itself.
    if is_root() && Command::new("unshare").arg("--version").output().is_ok() {
        let etc = dir.join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(etc.join("group"), "root:x:0:\nqmail:x:4242:\n").unwrap();
        std::fs::write(etc.join("nsswitch.conf"), "passwd: files\ngroup: files\n").unwrap();
        let script = format!(
            "mount --bind {} /etc && exec {} -N {}",
            etc.display(),
            bin(),
            dir.join("nq").display()
        );
        let o = Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .output()
            .unwrap();
        assert_eq!(code(&o), 111, "{}", err(&o));
        assert!(
            err(&o).contains("user qmailq does not exist"),
            "{}",
            err(&o)
        );
        assert!(!dir.join("nq").exists());
    } else {
        skip(
            "missing qmail accounts",
            "needs root and unshare(1) to hide them",
        );
    }
    let o = expect(&["--help"], 0);
    assert!(out(&o).contains("112") && out(&o).contains("quarantine"));
}

/// A queue user's symlink in the base (`queue2 -> a root 0700 directory`)
/// is refused by every path that would change what it names: the whole-base
/// check, the single queue, and --disable. A root-owned link is followed.
#[test]
fn a_queue_symlink_owned_by_a_queue_user_is_refused_and_its_target_untouched() {
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    if !is_root() {
        skip(
            "a symlink owned by another user",
            "lchown to another user needs root",
        );
        return;
    }
    let (_t, dir) = scratch();
    let base = dir.join("base");
    std::fs::create_dir(&base).unwrap();
    let victim = dir.join("private");
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = base.join("queue2");
    symlink(&victim, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(4321), Some(4321)).unwrap();
    for args in [
        base_args(&base, "2", &[]),
        vec![INV, "-s", "7", s(&link)],
        vec!["--disable", s(&link)],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 111, "{args:?}: {}", err(&o));
        assert!(
            err(&o).contains("a symlink owned by uid 4321, not root: refused"),
            "{args:?}: {}",
            err(&o)
        );
        let m = std::fs::metadata(&victim).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o700, 0), "{args:?}");
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0, "{args:?}");
    }
    // The same link owned by root is the administrator's: followed.
    std::os::unix::fs::lchown(&link, Some(0), Some(0)).unwrap();
    expect(&base_args(&base, "2", &[]), 0);
    assert!(victim.join("mess").is_dir());
}

/// The message files of a queue: (path below the queue, content hash),
/// every file of mess, info, local, remote, todo, intd and bounce.
fn message_files(queue: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut v: Vec<_> = snapshot(queue)
        .into_iter()
        .filter(|(p, n)| {
            n.kind == 'f'
                && ["mess", "info", "local", "remote", "todo", "intd", "bounce"]
                    .iter()
                    .any(|d| p.starts_with(d))
        })
        .map(|(p, n)| (p, n.hash))
        .collect();
    v.sort();
    v
}

/// Every file of every message arrives, whatever a message holds: a
/// todo/intd pair (just injected), info with local, remote or both, a
/// bounce; nothing stays behind and nothing else appears.
#[test]
fn retire_moves_every_file_of_every_message() {
    let (_t, base) = scratch();
    for n in 1..=3 {
        run(&[INV, "-s", "7", s(&base.join(format!("queue{n}")))]);
    }
    let q3 = base.join("queue3");
    let inos = fill(&q3, 60, 7);
    for (i, ino) in inos.iter().enumerate() {
        let sub = (ino % 7).to_string();
        let at = |d: &str| q3.join(d).join(&sub).join(ino.to_string());
        if i % 5 == 0 {
            continue; // left as injected: todo and intd, one inode
        }
        // What qmail-send does: the envelope becomes info and the
        // deliveries local and/or remote files.
        std::fs::remove_file(at("todo")).unwrap();
        std::fs::remove_file(at("intd")).unwrap();
        write_0600(&at("info"), &format!("Fsender{i}@example.org\0"));
        if i % 5 != 2 {
            write_0600(&at("local"), &format!("Tlocal{i}@example.org\0"));
        }
        if i % 5 != 1 {
            write_0600(&at("remote"), &format!("Tremote{i}@example.net\0"));
        }
        if i % 5 == 4 {
            write_0600(
                &q3.join("bounce").join(ino.to_string()),
                &format!("bounce {i}"),
            );
        }
    }
    let before = message_files(&q3);
    assert_eq!(
        before.iter().filter(|(p, _)| p.starts_with("info")).count(),
        48
    );
    let o = run(&base_args(&base, "2", &["--retire"]));
    assert_eq!(code(&o), 0, "{}", err(&o));
    let mut after: Vec<_> = (1..=2)
        .flat_map(|n| message_files(&base.join(format!("queue{n}"))))
        .collect();
    after.sort();
    assert_eq!(after, before, "every file once, under its own name");
    assert!(message_files(&q3).is_empty(), "{:?}", message_files(&q3));
}
