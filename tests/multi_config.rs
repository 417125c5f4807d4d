//! qmail-multi's configuration through the real binary: every variable of
//! the contract's table, the `control/queue_base` fallback, the `QUEUEDIR`
//! bypass, the queue program's view, and the configuration errors.

mod multi_support;

use multi_support::*;
use std::fs;
use std::path::Path;

/// A queue program that records what it was given, then swallows the
/// message and the envelope.
fn recorder(dir: &Path) -> std::path::PathBuf {
    script(
        dir,
        "record-queue",
        r#"out="$RECORD"
{ echo "cwd=$(pwd)"; echo "QUEUEDIR=$QUEUEDIR"; for a in "$@"; do echo "arg=$a"; done
  env | grep -E '^(FILTERARGS|SPAMFILTER|MARK)=' ; } > "$out"
cat > "$out.message"
cat <&1 > "$out.envelope""#,
    )
}

#[test]
fn base_count_and_start_choose_the_range() {
    let t = tempfile::tempdir().unwrap();
    // queue4..queue6 exist as the range; queue3 and queue7 exist outside it
    // and must never be used.
    let all = make_queues(t.path(), 3, 5);
    for _ in 0..60 {
        Injection::new(&[])
            .var("QUEUE_BASE", t.path())
            .var("QUEUE_COUNT", "3")
            .var("QUEUE_START", "4")
            .depositing()
            .run()
            .assert_exit(0);
    }
    let c = counts(&all);
    assert_eq!(c[0], 0, "queue3 is below QUEUE_START: {c:?}");
    assert_eq!(c[4], 0, "queue7 is past QUEUE_COUNT: {c:?}");
    assert_eq!(c[1] + c[2] + c[3], 60);
    // 60 picks over 3 queues: each expects 20; P(one gets none) ≈ 3·(2/3)^60 ≈ 1e-10.
    assert!(c[1] > 0 && c[2] > 0 && c[3] > 0, "{c:?}");
}

#[test]
fn defaults_are_queue1_to_queue10() {
    let t = tempfile::tempdir().unwrap();
    let all = make_queues(t.path(), 0, 12);
    for _ in 0..100 {
        Injection::new(&[])
            .var("QUEUE_BASE", t.path())
            .depositing()
            .run()
            .assert_exit(0);
    }
    let c = counts(&all);
    assert_eq!((c[0], c[11]), (0, 0), "{c:?}");
    assert_eq!(c[1..11].iter().sum::<usize>(), 100);
}

#[test]
fn queue_base_falls_back_to_control_file_then_qmailhome() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let control = t.path().join("control");
    let other = t.path().join("other");
    fs::create_dir_all(home.join("queue")).unwrap();
    fs::create_dir_all(&control).unwrap();
    fs::create_dir_all(&other).unwrap();
    let in_home = make_queues(&home.join("queue"), 1, 2);
    let in_other = make_queues(&other, 1, 2);
    let inject = || {
        Injection::new(&[])
            .var("QUEUE_COUNT", "2")
            .var("CONTROLDIR", &control)
            .var("QMAILHOME", &home)
            .var("QUEUEPROG", depositor())
            .var("CONFSPLIT", SPLIT.to_string())
            .var("SYNC", "0")
            .run()
    };
    // No control/queue_base: QMAILHOME/queue.
    inject().assert_exit(0);
    assert_eq!(counts(&in_home).iter().sum::<usize>(), 1);
    // The first line of control/queue_base wins.
    fs::write(
        control.join("queue_base"),
        format!("{}\nignored\n", other.display()),
    )
    .unwrap();
    inject().assert_exit(0);
    assert_eq!(counts(&in_other).iter().sum::<usize>(), 1);
    assert_eq!(counts(&in_home).iter().sum::<usize>(), 1);
    // An empty first line is the same as no file.
    fs::write(control.join("queue_base"), "\n").unwrap();
    inject().assert_exit(0);
    assert_eq!(counts(&in_home).iter().sum::<usize>(), 2);
    // QUEUE_BASE beats both.
    fs::write(control.join("queue_base"), format!("{}\n", home.display())).unwrap();
    let r = Injection::new(&[])
        .var("QUEUE_BASE", &other)
        .var("QUEUE_COUNT", "2")
        .var("CONTROLDIR", &control)
        .var("QMAILHOME", &home)
        .var("QUEUEPROG", depositor())
        .var("CONFSPLIT", SPLIT.to_string())
        .var("SYNC", "0")
        .run();
    r.assert_exit(0);
    assert_eq!(counts(&in_other).iter().sum::<usize>(), 2);
}

#[test]
fn queuedir_bypasses_selection() {
    let t = tempfile::tempdir().unwrap();
    let chosen = t.path().join("elsewhere");
    make_queue(&chosen);
    // QUEUE_BASE points at nothing: selection would fail with 62.
    Injection::new(&[])
        .var("QUEUEDIR", &chosen)
        .var("QUEUE_BASE", t.path().join("nothing"))
        .var("QUEUEPROG", depositor())
        .var("QMAILHOME", "/")
        .var("CONFSPLIT", SPLIT.to_string())
        .run()
        .assert_exit(0);
    assert_eq!(messages_in(&chosen), 1);
    Injection::new(&[])
        .var("QUEUE_BASE", t.path().join("nothing"))
        .var("QUEUEPROG", depositor())
        .var("QMAILHOME", "/")
        .run()
        .assert_exit(62);
}

#[test]
fn queueprog_gets_our_env_and_queuedir_in_qmailhome() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    make_queues(&base, 1, 1);
    let record = t.path().join("record");
    let mut inj = Injection::new(&[])
        .var("QUEUE_BASE", &base)
        .var("QUEUE_COUNT", "1")
        .var("QUEUEPROG", recorder(t.path()))
        .var("QMAILHOME", &home)
        .var("RECORD", &record)
        .var("MARK", "kept");
    inj.message = b"the message\n".to_vec();
    inj.run().assert_exit(0);
    let got = fs::read_to_string(&record).unwrap();
    let expected = format!(
        "cwd={}\nQUEUEDIR={}\nMARK=kept\n",
        home.display(),
        base.join("queue1").display()
    );
    assert_eq!(got, expected);
    assert_eq!(
        fs::read(record.with_extension("message")).unwrap(),
        b"the message\n"
    );
    assert_eq!(
        fs::read(record.with_extension("envelope")).unwrap(),
        envelope()
    );
}

/// Today's upstream: `qmail-multi QQF ARGS…` runs QQF with ARGS (QUEUEPROG
/// ignored), still with the chosen queue's QUEUEDIR.
#[test]
fn arguments_name_the_queue_program_and_its_arguments() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    make_queues(&base, 1, 1);
    let record = t.path().join("record");
    let mut inj = Injection::new(&[])
        .var("QUEUE_BASE", &base)
        .var("QUEUE_COUNT", "1")
        .var("QUEUEPROG", t.path().join("never-run"))
        .var("QMAILHOME", "/")
        .var("RECORD", &record);
    inj.args = vec![recorder(t.path()).into(), "-x".into(), "two words".into()];
    inj.run().assert_exit(0);
    assert_eq!(
        fs::read_to_string(&record).unwrap(),
        format!(
            "cwd=/\nQUEUEDIR={}\narg=-x\narg=two words\n",
            base.join("queue1").display()
        )
    );
    assert_eq!(
        fs::read(record.with_extension("envelope")).unwrap(),
        envelope()
    );
    // A QQF that cannot run is 120, naming it.
    let mut inj = Injection::new(&[])
        .var("QUEUE_BASE", &base)
        .var("QUEUE_COUNT", "1")
        .var("QUEUEPROG", depositor())
        .var("QMAILHOME", "/")
        .var("QMAIL_MULTI_DEBUG", "1");
    inj.args = vec![t.path().join("no-such-qqf").into()];
    let r = inj.run();
    r.assert_exit(120);
    assert!(
        r.stderr_text().contains("no-such-qqf"),
        "{}",
        r.stderr_text()
    );
    assert_eq!(messages_in(&base.join("queue1")), 0);
}

/// Upstream's qmail-multi changes into `/` (qmulti.c); ours into
/// QMAILHOME when it exists, else `/`, silently: a missing QMAILHOME (a
/// relay with its queues elsewhere) is no reason to refuse mail.
#[test]
fn qmailhome_when_it_exists_else_the_root_directory() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    let queues = make_queues(&base, 1, 2);
    let home = t.path().join("home");
    fs::create_dir(&home).unwrap();
    let file = t.path().join("a-file");
    fs::write(&file, "").unwrap();
    let seen = t.path().join("cwd");
    let prog = script(
        t.path(),
        "qq",
        &format!(
            "pwd > '{}' && exec '{}'",
            seen.display(),
            depositor().display()
        ),
    );
    for (qmailhome, cwd) in [
        (home.clone(), home.clone()),
        (t.path().join("no-such-home"), "/".into()),
        (file.clone(), "/".into()),
    ] {
        let r = Injection::new(&[])
            .var("QUEUE_BASE", &base)
            .var("QUEUE_COUNT", "2")
            .depositing()
            .var("QUEUEPROG", &prog)
            .var("QMAILHOME", &qmailhome)
            .run();
        r.assert_exit(0);
        if qmailhome != file {
            assert!(r.stderr.is_empty(), "{}", r.stderr_text());
        }
        let pwd = fs::read_to_string(&seen).unwrap();
        assert_eq!(
            Path::new(pwd.trim()),
            cwd,
            "QMAILHOME {}",
            qmailhome.display()
        );
    }
    assert_eq!(counts(&queues).iter().sum::<usize>(), 3);
}

#[test]
fn queue_program_that_cannot_be_run_is_120() {
    let t = tempfile::tempdir().unwrap();
    make_queues(t.path(), 1, 1);
    let not_executable = t.path().join("plain-file");
    fs::write(&not_executable, "not a program").unwrap();
    for prog in [t.path().join("no-such-program"), not_executable] {
        let r = Injection::new(&[])
            .var("QUEUE_BASE", t.path())
            .var("QUEUE_COUNT", "1")
            .var("QUEUEPROG", &prog)
            .var("QMAILHOME", "/")
            .var("QMAIL_MULTI_DEBUG", "1")
            .run();
        r.assert_exit(120);
        assert!(
            r.stderr_text().contains(&prog.display().to_string()),
            "the diagnostic names the program: {}",
            r.stderr_text()
        );
    }
}

#[test]
fn bad_numbers_are_55_with_nothing_written() {
    let t = tempfile::tempdir().unwrap();
    let queues = make_queues(t.path(), 1, 10);
    for var in ["QUEUE_COUNT", "QUEUE_START", "MIN_FREE"] {
        for bad in ["0", "abc", "-3", "99999999999999999999", " 5", "5x"] {
            if bad == "0" && var != "QUEUE_COUNT" {
                continue; // 0 is a valid start and a valid minimum
            }
            for debug in [false, true] {
                let mut inj = Injection::new(&[])
                    .var("QUEUE_BASE", t.path())
                    .var("QUEUEPROG", depositor())
                    .var("QMAILHOME", "/")
                    .var("CONFSPLIT", SPLIT.to_string())
                    .var(var, bad);
                if debug {
                    inj = inj.var("QMAIL_MULTI_DEBUG", "1");
                }
                let r = inj.run();
                r.assert_exit(55);
                let err = r.stderr_text();
                if debug {
                    // One diagnostic naming the variable and the value.
                    assert_eq!(err.lines().count(), 1, "{err}");
                    assert!(err.contains(&format!("{var}={bad:?}")), "{err}");
                } else {
                    assert!(err.is_empty(), "{var}={bad:?} wrote to stderr: {err}");
                }
            }
        }
    }
    let written: usize = queues.iter().map(|q| files_written(q)).sum();
    assert_eq!(written, 0, "a configuration error wrote into a queue");
    // Zero is fine where it means something.
    for (var, ok) in [("QUEUE_START", "1"), ("MIN_FREE", "0")] {
        Injection::new(&[])
            .var("QUEUE_BASE", t.path())
            .depositing()
            .var(var, ok)
            .run()
            .assert_exit(0);
    }
}

#[test]
fn unreadable_control_file_is_55() {
    let t = tempfile::tempdir().unwrap();
    let control = t.path().join("control");
    fs::create_dir_all(control.join("queue_base")).unwrap(); // a directory: EISDIR
    let r = Injection::new(&[])
        .var("CONTROLDIR", &control)
        .var("QMAILHOME", t.path())
        .var("QUEUEPROG", depositor())
        .var("QMAIL_MULTI_DEBUG", "1")
        .run();
    r.assert_exit(55);
    assert!(
        r.stderr_text().contains("queue_base"),
        "{}",
        r.stderr_text()
    );
}
