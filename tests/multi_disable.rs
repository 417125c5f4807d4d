//! Disabling a queue (`queue-fix --disable`/`--enable`) and the inode
//! bound: a disabled queue gets no new mail while its mail stays; checks
//! report it as disabled, not as a problem; every queue disabled is a
//! temporary failure saying so. A queue whose filesystem lacks the inodes
//! for a whole message is skipped (real tmpfs with nr_inodes; root only).

mod multi_support;

use multi_support::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn queue_fix(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queue-fix"))
        .args(args)
        .env_remove("CONFSPLIT")
        .output()
        .unwrap()
}

fn inject(base: &Path, count: u32) -> Outcome {
    Injection::new(&[])
        .var("QUEUE_BASE", base)
        .var("QUEUE_COUNT", count.to_string())
        .depositing()
        .var("QMAIL_MULTI_DEBUG", "1")
        .run()
}

#[test]
fn a_disabled_queue_gets_no_mail_keeps_its_own_and_comes_back() {
    let t = tempfile::tempdir().unwrap();
    let queues = make_queues(t.path(), 1, 10);
    // Mail already in queue3 before it is disabled.
    for _ in 0..5 {
        Injection::new(&[])
            .var("QUEUEDIR", &queues[2])
            .depositing()
            .run()
            .assert_exit(0);
    }
    let out = queue_fix(&["--disable".as_ref(), queues[2].as_os_str()]);
    assert!(out.status.success(), "{out:?}");
    assert!(queues[2].join("disabled").is_file());
    // Visible to an injecting user who cannot search the root: the mode.
    let mode = fs::metadata(&queues[2]).unwrap().permissions().mode();
    assert_eq!(mode & 0o1000, 0o1000, "{mode:o}");
    let again = queue_fix(&["--disable".as_ref(), queues[2].as_os_str()]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already disabled"));

    for _ in 0..1000 {
        let r = inject(t.path(), 10);
        r.assert_exit(0);
        let text = r.stderr_text();
        for l in text.lines().filter(|l| l.contains("skipped")) {
            assert!(l.contains("queue3") && l.contains("disabled"), "{l}");
        }
    }
    let c = counts(&queues);
    assert_eq!(
        c[2], 5,
        "the disabled queue's own mail stays, none added: {c:?}"
    );
    assert_eq!(c.iter().sum::<usize>(), 1005);
    assert!(
        c.iter().enumerate().all(|(i, &k)| i == 2 || k > 60),
        "its share spreads over the others: {c:?}"
    );

    let out = queue_fix(&["--enable".as_ref(), queues[2].as_os_str()]);
    assert!(out.status.success(), "{out:?}");
    assert!(!queues[2].join("disabled").exists());
    assert_eq!(
        fs::metadata(&queues[2]).unwrap().permissions().mode() & 0o1000,
        0
    );
    for _ in 0..200 {
        inject(t.path(), 10).assert_exit(0);
    }
    assert!(
        messages_in(&queues[2]) > 5,
        "enabled again: {:?}",
        counts(&queues)
    );
}

#[test]
fn every_queue_disabled_is_a_temporary_failure_saying_so() {
    let t = tempfile::tempdir().unwrap();
    let queues = make_queues(t.path(), 1, 3);
    for q in &queues {
        assert!(queue_fix(&["--disable".as_ref(), q.as_os_str()])
            .status
            .success());
    }
    let r = inject(t.path(), 3);
    r.assert_exit(62);
    let text = r.stderr_text();
    assert!(text.contains("every queue is disabled"), "{text}");
    assert!(queues.iter().all(|q| files_written(q) == 0));
}

#[test]
fn checks_report_a_disabled_queue_as_disabled_not_as_a_problem() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path();
    let common = ["--as-invoker", "-s", "7", "--base"];
    let args = |extra: &[&str]| -> Vec<std::ffi::OsString> {
        extra
            .iter()
            .chain(common.iter())
            .map(|s| s.into())
            .chain([base.as_os_str().to_owned(), "--count".into(), "3".into()])
            .collect()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
        queue_fix(&a)
    };
    // Created by queue-fix itself, then clean.
    run(&[]);
    let clean = run(&["-N"]);
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
    let q2 = base.join("queue2");
    assert!(queue_fix(&["--disable".as_ref(), q2.as_os_str()])
        .status
        .success());
    for extra in [&["-N"][..], &[][..], &["-N"][..]] {
        let out = run(extra);
        assert_eq!(out.status.code(), Some(0), "{extra:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("queue2: disabled"), "{extra:?}: {text}");
        assert!(!text.contains("queue1: disabled"), "{text}");
    }
    // The repair run kept both traces.
    assert!(q2.join("disabled").is_file());
    assert_eq!(
        fs::metadata(&q2).unwrap().permissions().mode() & 0o1000,
        0o1000
    );
    // A marker made by hand is honoured: the check adds the root's bit.
    let q3 = base.join("queue3");
    fs::write(q3.join("disabled"), "").unwrap();
    assert_eq!(run(&["-N"]).status.code(), Some(1));
    assert_eq!(run(&[]).status.code(), Some(0));
    assert_eq!(run(&["-N"]).status.code(), Some(0));
    assert_eq!(
        fs::metadata(&q3).unwrap().permissions().mode() & 0o1000,
        0o1000
    );
    // Something else under the marker's name is refused, not replaced.
    let q1 = base.join("queue1");
    fs::create_dir(q1.join("disabled")).unwrap();
    let out = queue_fix(&["--disable".as_ref(), q1.as_os_str()]);
    assert_eq!(out.status.code(), Some(111), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
}

/// Free inodes of the filesystem holding `dir`.
fn free_inodes(dir: &Path) -> u64 {
    nix::sys::statvfs::statvfs(dir).unwrap().files_available()
}

#[test]
fn a_queue_without_inodes_for_a_whole_message_is_skipped() {
    if !is_root() {
        println!("skipped: mounting a tmpfs needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    let queues = make_queues(&base, 1, 2);
    fs::remove_dir_all(&queues[0]).unwrap();
    let mount = match Tmpfs::mount(&queues[0], "size=4m,nr_inodes=400") {
        Ok(m) => m,
        Err(e) => {
            println!("skipped: {e}");
            return;
        }
    };
    make_queue(&queues[0]);
    let filler = queues[0].join("filler");
    fs::create_dir(&filler).unwrap();
    let needed = qmail_multi::queue::health::MIN_FREE_INODES;
    let mut n = 0;
    while free_inodes(&mount.dir) > needed - 1 {
        fs::write(filler.join(n.to_string()), "").unwrap();
        n += 1;
    }
    assert_eq!(free_inodes(&mount.dir), needed - 1);
    // One inode short of the bound: far more than the single inode the old
    // check accepted, and every injection must go to queue2.
    for _ in 0..100 {
        inject(&base, 2).assert_exit(0);
    }
    assert_eq!(counts(&queues), [0, 100]);
    // At the bound the queue is used again, and the depositor succeeds in it.
    fs::remove_file(filler.join((n - 1).to_string())).unwrap();
    assert_eq!(free_inodes(&mount.dir), needed);
    let mut into_first = 0;
    for _ in 0..40 {
        inject(&base, 2).assert_exit(0);
        into_first = messages_in(&queues[0]);
        if into_first > 0 {
            break;
        }
    }
    assert_eq!(into_first, 1, "queue1 back in use at {needed} free inodes");
    drop(mount);
}

/// A queue base whose name holds a newline, a terminal escape and a
/// non-UTF-8 byte: every program prints it as `\xNN`, one line a report.
#[test]
fn hostile_queue_names_are_printed_escaped_by_every_program() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let base = t
        .path()
        .join(std::ffi::OsStr::from_bytes(b"b\nq: enabled\x1b[2J\xff"));
    fs::create_dir(&base).unwrap();
    let queues = make_queues(&base, 1, 2);
    let shown = format!(
        "{}/b\\x0aq: enabled\\x1b[2J\\xff",
        t.path().to_str().unwrap()
    );

    let out = queue_fix(&["--disable".as_ref(), queues[0].as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{shown}/queue1: disabled\n")
    );
    let out = queue_fix(&["--enable".as_ref(), queues[1].as_os_str()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{shown}/queue2: already enabled\n")
    );
    let missing = base.join("queue9");
    let out = queue_fix(&["--disable".as_ref(), missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(111), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "queue-fix: fatal: {shown}/queue9: cannot open the queue: No such file or directory\n"
        )
    );

    // queue-fix's check names the disabled queue on one line.
    let out = queue_fix(&[
        "-N".as_ref(),
        "--as-invoker".as_ref(),
        "-s".as_ref(),
        "7".as_ref(),
        queues[0].as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{shown}/queue1: disabled: "))),
        "{text}"
    );

    // qmail-multi's log: the skipped queue, then (all disabled) the error.
    // The first pick is random: about half the injections meet queue1 first.
    let logs: Vec<String> = (0..40)
        .map(|_| {
            let r = inject(&base, 2);
            r.assert_exit(0);
            r.stderr_text()
        })
        .collect();
    let text = logs.concat();
    assert!(
        text.contains(&format!("skipped {shown}/queue1: is disabled\n")),
        "{text}"
    );
    assert!(
        logs.iter()
            .all(|l| l.contains(&format!("queue {shown}/queue2 via "))),
        "{text}"
    );
    queue_fix(&["--disable".as_ref(), queues[1].as_os_str()]);
    let r = inject(&base, 2);
    r.assert_exit(62);
    let text = r.stderr_text();
    assert!(
        text.contains(&format!(
            "): {shown}/queue1 is disabled; {shown}/queue2 is disabled\n"
        )),
        "{text}"
    );

    // queue-stat: the heading, and a queue named on the command line.
    let stat = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_queue-stat"))
            .args(args)
            .env_remove("QUEUEDIR")
            .env("CONFSPLIT", SPLIT.to_string())
            .output()
            .unwrap()
    };
    let out = stat(&[
        "--base".as_ref(),
        base.as_os_str(),
        "--count".as_ref(),
        "2".as_ref(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        text.lines().next(),
        Some(format!("{shown}: queue1..queue2").as_str()),
        "{text}"
    );
    let out = stat(&[queues[1].as_os_str()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{shown}/queue2 "))),
        "{text}"
    );
    for o in [&out.stdout, &out.stderr] {
        assert!(!o.contains(&0x1b) && !o.contains(&0xff), "{out:?}");
    }
}
