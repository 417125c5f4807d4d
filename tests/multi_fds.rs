//! Descriptor 1 is the envelope input: nothing may ever be written to it.
//! Descriptor 2 carries only a filter's exit-88 text unless the operator
//! asked for diagnostics there (`QMAIL_MULTI_DEBUG`).
//!
//! Descriptor 1 is one end of a socketpair here (instead of a pipe's read
//! end, where a stray write would just fail unseen), so any byte written to
//! it by qmail-multi, its filter or its queue program reaches the test.

mod multi_support;

use multi_support::*;
use std::fs;

/// What happens, the variables that make it happen, the expected status.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, i32);

#[test]
fn nothing_reaches_descriptor_1_and_only_the_88_text_reaches_2() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    let queues = make_queues(&base, 1, 2);
    fs::create_dir(t.path().join("tmp")).unwrap();
    let cases: Vec<Case> = vec![
        ("queued", vec![], 0),
        (
            "queued through a filter",
            vec![("FILTERARGS", "cat".into())],
            0,
        ),
        (
            "blackholed",
            vec![("FILTERARGS", "cat >/dev/null; exit 2".into())],
            0,
        ),
        ("bad count", vec![("QUEUE_COUNT", "abc".into())], 55),
        (
            "no queue",
            vec![("QUEUE_BASE", t.path().join("none").display().to_string())],
            62,
        ),
        ("all short", vec![("MIN_FREE", u64::MAX.to_string())], 53),
        (
            "no home: queued from /",
            vec![("QMAILHOME", "/nonexistent".into())],
            0,
        ),
        (
            "bad program",
            vec![("QUEUEPROG", "/nonexistent".into())],
            120,
        ),
        (
            "bad tmpdir",
            vec![
                ("FILTERARGS", "cat".into()),
                ("TMPDIR", "/nonexistent".into()),
            ],
            68,
        ),
        (
            "filter refuses",
            vec![("FILTERARGS", "exit 100".into())],
            31,
        ),
        ("filter fails", vec![("FILTERARGS", "exit 9".into())], 71),
        (
            "filter killed",
            vec![("FILTERARGS", "kill -9 $$".into())],
            123,
        ),
        (
            "custom",
            vec![("FILTERARGS", "echo Zlater >&2; exit 88".into())],
            88,
        ),
    ];
    for debug in [false, true] {
        for (what, vars, code) in &cases {
            let mut inj = Injection::new(&[])
                .var("QUEUE_BASE", &base)
                .var("QUEUE_COUNT", "2")
                .depositing()
                .var("TMPDIR", t.path().join("tmp"));
            for (k, v) in vars {
                inj = inj.var(k, v);
            }
            if debug {
                inj = inj.var("QMAIL_MULTI_DEBUG", "1");
            }
            inj.fd1_socket = true;
            let r = inj.run();
            r.assert_exit(*code);
            assert!(
                r.fd1_written.is_empty(),
                "{what}: {:?} written to descriptor 1",
                String::from_utf8_lossy(&r.fd1_written)
            );
            let err = r.stderr_text();
            match (debug, *code) {
                (_, 88) => assert!(err.starts_with("Zlater\n"), "{what}: {err}"),
                (false, _) => assert!(err.is_empty(), "{what}: stderr {err:?}"),
                // Asked for: every outcome is explained, success included.
                (true, _) => assert!(!err.is_empty(), "{what}: no diagnostic"),
            }
        }
    }
    let queued: usize = queues.iter().map(|q| messages_in(q)).sum();
    assert_eq!(
        queued, 6,
        "three queued cases, with and without diagnostics"
    );
}
