//! Item "never loop": every chain that leads back to qmail-multi ends with
//! one diagnostic and a temporary failure (55), or succeeds; a legitimate
//! two-pass chain (qmail-multi → a qmail-dkim-like wrapper → qmail-multi →
//! qmail-queue) still queues. Each run is bounded by `timeout 20`, so a
//! regression shows as 124 instead of a hung test.

mod multi_support;

use multi_support::*;
use std::fs;
use std::path::Path;

fn inject(base: &Path, queueprog: &Path) -> Outcome {
    let mut inj = Injection::new(&[])
        .var("QUEUE_BASE", base)
        .var("QUEUE_COUNT", "2")
        .var("QUEUEPROG", queueprog)
        .var("QMAILHOME", "/")
        .var("QMAIL_MULTI_DEBUG", "1")
        .var("CONFSPLIT", SPLIT.to_string())
        .var("SYNC", "0");
    inj.via = vec!["timeout".into(), "20".into()];
    inj.run()
}

fn assert_loop_refused(r: &Outcome, base: &Path, what: &str) {
    r.assert_exit(55);
    let text = r.stderr_text();
    let loops = text.lines().filter(|l| l.contains("loop")).count();
    assert_eq!(loops, 1, "{what}: one diagnostic naming the loop:\n{text}");
    assert!(text.contains("QMAIL_MULTI_PASSES"), "{what}: {text}");
    let written: usize = (1..=2)
        .map(|n| files_written(&base.join(format!("queue{n}"))))
        .sum();
    assert_eq!(written, 0, "{what}: nothing may be queued");
}

#[test]
fn every_chain_back_to_qmail_multi_ends_with_one_diagnostic() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    make_queues(&base, 1, 2);
    let bin = t.path().join("bin");
    fs::create_dir(&bin).unwrap();

    assert_loop_refused(&inject(&base, &qmail_multi()), &base, "itself");

    let link = bin.join("symlinked");
    std::os::unix::fs::symlink(qmail_multi(), &link).unwrap();
    assert_loop_refused(&inject(&base, &link), &base, "a symlink");

    // A hard link where the filesystems allow one, else a copy: either way
    // a different name for the same program.
    let other = bin.join("other-name");
    if fs::hard_link(qmail_multi(), &other).is_err() {
        fs::copy(qmail_multi(), &other).unwrap();
    }
    assert_loop_refused(&inject(&base, &other), &base, "another name");

    // A `qmail-queue` that is really qmail-multi.
    let fake = bin.join("qmail-queue");
    fs::copy(qmail_multi(), &fake).unwrap();
    assert_loop_refused(&inject(&base, &fake), &base, "a fake qmail-queue");

    // A wrapper that runs qmail-multi as a child (not exec), passing its
    // status on.
    let wrapper = script(
        &bin,
        "wrapper",
        &format!("{} \"$@\"\nexit $?", qmail_multi().display()),
    );
    assert_loop_refused(&inject(&base, &wrapper), &base, "a wrapper script");
}

#[test]
fn a_legitimate_second_pass_still_queues() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    make_queues(&base, 1, 2);
    // Like qmail-dkim: does its work, then hands the message to qmail-multi
    // again (which now finds QUEUEDIR set and queues there).
    let dkim = script(
        t.path(),
        "qmail-dkim",
        &format!(
            "QUEUEPROG={} exec {}",
            depositor().display(),
            qmail_multi().display()
        ),
    );
    let mut inj = Injection::new(&[])
        .var("QUEUE_BASE", &base)
        .var("QUEUE_COUNT", "2")
        .var("QMAILHOME", "/")
        .var("CONFSPLIT", SPLIT.to_string())
        .var("SYNC", "0");
    inj.args = vec![dkim.into()];
    inj.via = vec!["timeout".into(), "20".into()];
    for _ in 0..10 {
        inj.run().assert_exit(0);
    }
    let queued: usize = (1..=2)
        .map(|n| messages_in(&base.join(format!("queue{n}"))))
        .sum();
    assert_eq!(queued, 10);
}
