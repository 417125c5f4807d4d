//! `FILTERARGS` through the real binary: every status of the contract's
//! table, the blackhole reading the envelope, `MAKE_SEEKABLE`, the hidden
//! variables, `TMPDIR`, and a 64 MB message in constant memory.

mod multi_support;

use multi_support::*;
use std::fs;
use std::path::PathBuf;

struct Setup {
    dir: tempfile::TempDir,
    queue: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let queue = make_queues(&dir.path().join("base"), 1, 1).remove(0);
    fs::create_dir(dir.path().join("tmp")).unwrap();
    Setup { dir, queue }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn injection(&self, filter: &str) -> Injection {
        Injection::new(&[])
            .var("QUEUE_BASE", self.path("base"))
            .var("QUEUE_COUNT", "1")
            .depositing()
            .var("TMPDIR", self.path("tmp"))
            .var("FILTERARGS", filter)
    }

    /// The queued message's text without the depositor's Received line.
    fn queued_text(&self) -> Vec<u8> {
        let mess = self.queue.join("mess");
        let mut found = Vec::new();
        for sub in fs::read_dir(mess).unwrap() {
            for f in fs::read_dir(sub.unwrap().path()).unwrap() {
                found.push(fs::read(f.unwrap().path()).unwrap());
            }
        }
        assert_eq!(found.len(), 1, "exactly one message queued");
        let text = found.remove(0);
        let body = text.iter().position(|&b| b == b'\n').unwrap() + 1;
        text[body..].to_vec()
    }

    fn nothing_queued(&self) {
        assert_eq!(files_written(&self.queue), 0);
        assert_eq!(
            fs::read_dir(self.path("tmp")).unwrap().count(),
            0,
            "temp files left"
        );
    }
}

#[test]
fn status_0_queues_the_filters_output() {
    let s = setup();
    let r = s.injection("tr a-z A-Z").run();
    r.assert_exit(0);
    assert!(r.stderr.is_empty());
    assert_eq!(s.queued_text(), b"SUBJECT: TEST\n\nHELLO\n");
    assert_eq!(
        fs::read_dir(s.path("tmp")).unwrap().count(),
        0,
        "the spool is unlinked"
    );
}

#[test]
fn a_filter_that_reads_only_part_of_the_message_does_not_cut_off_the_caller() {
    let s = setup();
    let mut inj = s.injection("head -c 10");
    inj.message = vec![b'x'; 64 * 1024];
    inj.repeat = 16; // 1 MiB: far more than a pipe holds
    let r = inj.run();
    r.assert_exit(0);
    assert!(r.message_write.is_ok(), "caller saw {:?}", r.message_write);
    assert_eq!(s.queued_text(), vec![b'x'; 10]);
}

#[test]
fn status_2_blackholes_after_reading_the_envelope() {
    let s = setup();
    // 99 is qmail-qfilter's blackhole code: the same as 2.
    for status in [2, 99] {
        let marker = s.path(&format!("filter-done-{status}"));
        // The caller writes the envelope only once the filter has finished,
        // and only after giving qmail-multi a second to exit early.
        let mut inj = s.injection(&format!(
            "cat >/dev/null; touch {}; exit {status}",
            marker.display()
        ));
        inj.timing = EnvelopeTiming::AfterFilter;
        inj.marker = Some(marker);
        let r = inj.run();
        r.assert_exit(0);
        assert!(
            r.envelope_write.is_ok(),
            "status {status}: caller saw {:?}",
            r.envelope_write
        );
        s.nothing_queued();
    }

    // A blackhole that never reads its input: the caller's 1 MiB message
    // must still be taken in full.
    let mut inj = s.injection("exit 2");
    inj.message = vec![b'y'; 64 * 1024];
    inj.repeat = 16;
    let r = inj.run();
    r.assert_exit(0);
    assert!(r.message_write.is_ok(), "caller saw {:?}", r.message_write);
    assert!(
        r.envelope_write.is_ok(),
        "caller saw {:?}",
        r.envelope_write
    );
    s.nothing_queued();
}

#[test]
fn refusing_statuses() {
    let s = setup();
    for (filter, code) in [
        ("cat >/dev/null; exit 100", 31),
        ("cat >/dev/null; exit 31", 31),
        ("cat >/dev/null; exit 7", 71),
        ("exit 1", 71),
        ("cat >/dev/null; kill -9 $$", 123),
        ("kill -TERM $$", 123),
    ] {
        let r = s.injection(filter).run();
        r.assert_exit(code);
        assert!(r.stderr.is_empty(), "{filter}: {}", r.stderr_text());
        s.nothing_queued();
    }
}

#[test]
fn status_88_passes_the_filters_text_to_the_caller() {
    let s = setup();
    let r = s
        .injection("cat >/dev/null; echo 'Dmessage refused by policy' >&2; exit 88")
        .run();
    r.assert_exit(88);
    assert_eq!(r.stderr_text(), "Dmessage refused by policy\n");
    s.nothing_queued();
}

#[test]
fn make_seekable_gives_the_filter_a_regular_file() {
    let s = setup();
    let filter = "test -f /dev/stdin || exit 7; cat";
    s.injection(filter).run().assert_exit(71);
    s.nothing_queued();
    s.injection(filter)
        .var("MAKE_SEEKABLE", "1")
        .run()
        .assert_exit(0);
    assert_eq!(s.queued_text(), b"Subject: test\n\nhello\n");
}

#[test]
fn the_filter_does_not_see_filterargs_or_spamfilter() {
    let s = setup();
    let seen = s.path("filter-env");
    let queue_seen = s.path("queue-env");
    let queue_prog = script(
        s.dir.path(),
        "env-queue",
        &format!(
            "env > {}; exec {}",
            queue_seen.display(),
            depositor().display()
        ),
    );
    s.injection(&format!("env > {}; cat", seen.display()))
        .var("SPAMFILTER", "spamc")
        .var("MARK", "passed")
        .var("QUEUEPROG", &queue_prog)
        .run()
        .assert_exit(0);
    let env = fs::read_to_string(&seen).unwrap();
    assert!(env.lines().any(|l| l == "MARK=passed"), "{env}");
    assert!(!env.lines().any(|l| l.starts_with("FILTERARGS=")), "{env}");
    assert!(!env.lines().any(|l| l.starts_with("SPAMFILTER=")), "{env}");
    // The queue program gets qmail-multi's own environment, as upstream.
    let env = fs::read_to_string(&queue_seen).unwrap();
    assert!(env.lines().any(|l| l == "SPAMFILTER=spamc"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("FILTERARGS=")), "{env}");
}

#[test]
fn the_spool_lives_unlinked_in_tmpdir_and_a_bad_tmpdir_is_68() {
    let s = setup();
    let seen = s.path("spool-name");
    s.injection(&format!(
        "n=$(readlink /proc/$$/fd/1); echo \"$n\" > {}; cat",
        seen.display()
    ))
    .run()
    .assert_exit(0);
    let name = fs::read_to_string(&seen).unwrap();
    let expected = format!("{}/qmail-multi.", s.path("tmp").display());
    assert!(name.starts_with(&expected), "{name}");
    assert!(name.trim_end().ends_with("(deleted)"), "{name}");

    let r = s
        .injection("cat")
        .var("TMPDIR", s.path("no-such-tmp"))
        .var("QMAIL_MULTI_DEBUG", "1")
        .run();
    r.assert_exit(68);
    assert!(
        r.stderr_text().contains("no-such-tmp"),
        "{}",
        r.stderr_text()
    );
}

/// Peak RSS (KiB) of qmail-multi and everything it ran, for a message of
/// `chunks` × 64 KiB through `cat` into a queue program that streams.
fn peak_rss(s: &Setup, chunks: usize) -> i64 {
    let size_file = s.path("size");
    let queue_prog = script(
        s.dir.path(),
        "count-queue",
        &format!("wc -c > {0}; cat <&1 > {0}.envelope", size_file.display()),
    );
    let mut inj = s.injection("cat").var("QUEUEPROG", &queue_prog);
    inj.message = vec![b'm'; 64 * 1024];
    inj.repeat = chunks;
    let r = inj.run();
    r.assert_exit(0);
    let size: usize = fs::read_to_string(&size_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(size, chunks * 64 * 1024);
    r.max_rss_kib
}

#[test]
fn a_64_mb_message_goes_through_the_filter_in_constant_memory() {
    let s = setup();
    let small = peak_rss(&s, 1);
    let large = peak_rss(&s, 1024);
    eprintln!("peak RSS: 64 KiB message {small} KiB, 64 MiB message {large} KiB");
    // Holding the message would take 64 MiB; streaming keeps the peak at
    // the programs' own size, whatever the message's.
    assert!(
        large < 16 * 1024,
        "peak RSS {large} KiB for a 64 MiB message"
    );
    assert!(large < small + 4 * 1024, "grew from {small} to {large} KiB");
}
