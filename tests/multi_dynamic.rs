//! `DYNAMIC_QUEUE` with real qscheduler segments: files under /dev/shm in
//! the exact layout (C ints: `/qscheduler` = count, directories; `/queueN`
//! = local used, remote used, local max, remote max, disabled flag), owned
//! as qscheduler makes them (`/qscheduler` root:qmail 0644, `/queueN`
//! qmails:qmail 0644). Root only, and always inside a private mount
//! namespace (a tmpfs on /dev/shm, our own /etc with a `qmails` user), so
//! the host's /dev/shm and users are never touched; every case runs in
//! this one test, in order.

mod multi_support;

use multi_support::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const SHM: &str = "/dev/shm";
/// The qmail-send user of the private /etc, and a stranger.
const QMAILS: u32 = 7001;
const STRANGER: u32 = 7002;
const QMAIL_GID: u32 = 7000;

struct Segments;

impl Segments {
    /// Written as qscheduler leaves it: `/qscheduler` root's, the
    /// `/queueN` segments the qmail-send user's; mode 0644, one link.
    fn write(&mut self, name: &str, ints: &[i32]) {
        let bytes: Vec<u8> = ints.iter().flat_map(|i| i.to_ne_bytes()).collect();
        self.write_bytes(name, &bytes);
    }

    fn write_bytes(&mut self, name: &str, bytes: &[u8]) {
        let p = Path::new(SHM).join(name);
        let _ = fs::remove_file(&p);
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let owner = if name == "qscheduler" { 0 } else { QMAILS };
        std::os::unix::fs::chown(&p, Some(owner), Some(QMAIL_GID)).unwrap();
    }

    fn remove(&mut self, name: &str) {
        let _ = fs::remove_file(Path::new(SHM).join(name));
    }

    /// qscheduler's state: the count, then each queue's five ints.
    fn set(&mut self, count: i32, queues: &[[i32; 5]]) {
        self.write("qscheduler", &[count, count]);
        for (i, q) in queues.iter().enumerate() {
            self.write(&format!("queue{}", i + 1), q);
        }
    }
}

fn inject(base: &Path, extra: &[(&str, &str)]) -> Outcome {
    let mut inj = Injection::new(&[])
        .var("QUEUE_BASE", base)
        .var("QUEUE_COUNT", "4")
        .depositing()
        .var("DYNAMIC_QUEUE", "1")
        .var("QMAIL_MULTI_DEBUG", "1");
    for (k, v) in extra {
        inj = inj.var(k, v);
    }
    inj.run()
}

/// `n` injections; the queue counts they added.
fn added(base: &Path, queues: &[PathBuf], n: usize, extra: &[(&str, &str)]) -> Vec<usize> {
    let before = counts(queues);
    for _ in 0..n {
        let r = inject(base, extra);
        r.assert_exit(0);
        assert!(
            !r.stderr_text().contains("DYNAMIC_QUEUE"),
            "no fallback expected: {}",
            r.stderr_text()
        );
    }
    counts(queues)
        .iter()
        .zip(before)
        .map(|(a, b)| a - b)
        .collect()
}

/// One injection that must fall back: succeeds, one warning naming why
/// (`said` is part of it).
fn falls_back_saying(base: &Path, why: &str, said: &str) {
    let r = inject(base, &[]);
    r.assert_exit(0);
    let text = r.stderr_text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("DYNAMIC_QUEUE"))
        .collect();
    assert_eq!(warnings.len(), 1, "{why}: {text}");
    assert!(warnings[0].contains("at random"), "{why}: {text}");
    assert!(warnings[0].contains(said), "{why}: {text}");
}

fn falls_back(base: &Path, why: &str) {
    falls_back_saying(base, why, "");
}

#[test]
fn least_loaded_choice_disabled_flag_growth_health_and_every_fallback() {
    let Some(etc) = in_private_world(
        "least_loaded_choice_disabled_flag_growth_health_and_every_fallback",
        &[("qmails", QMAILS), ("stranger", STRANGER)],
    ) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    let queues = make_queues(&base, 1, 4);
    let mut shm = Segments;

    // queue2 least loaded (0.1); queue3 idle but disabled; queue4 idle but
    // without remote concurrency; queue1 at 0.5.
    let state = [
        [5, 1, 10, 10, 0],
        [1, 2, 10, 20, 0],
        [0, 0, 10, 10, 1],
        [0, 0, 10, 0, 0],
    ];
    shm.set(4, &state);
    // The public reader (queue-stat's): each segment with its queue number.
    let figures = qmail_multi::queue::scheduler::read_queues(3).unwrap();
    let seen: Vec<(u64, u32, i32, i32)> = figures
        .iter()
        .map(|f| (f.queue, f.segment, f.load.remote_max, f.load.disabled))
        .collect();
    assert_eq!(
        seen,
        [(3, 1, 10, 0), (4, 2, 20, 0), (5, 3, 10, 1), (6, 4, 0, 0)]
    );
    assert_eq!(added(&base, &queues, 30, &[]), [0, 30, 0, 0]);

    // Health still applies on top: queue2 missing → the next least loaded.
    let aside = base.join("queue2.aside");
    fs::rename(&queues[1], &aside).unwrap();
    let r = inject(&base, &[]);
    r.assert_exit(0);
    assert!(r.stderr_text().contains("queue2"), "{}", r.stderr_text());
    fs::rename(&aside, &queues[1]).unwrap();
    assert_eq!(counts(&queues), [1, 30, 0, 0]);

    // ... and full on disk (a real small tmpfs below MIN_FREE).
    fs::rename(&queues[1], &aside).unwrap();
    match Tmpfs::mount(&queues[1], "size=1m") {
        Ok(m) => {
            make_queue(&queues[1]);
            assert_eq!(
                added(&base, &queues, 5, &[("MIN_FREE", "10000000")]),
                [5, 0, 0, 0]
            );
            drop(m);
        }
        Err(e) => println!("skipped (full-on-disk case): {e}"),
    }
    fs::remove_dir(&queues[1]).unwrap();
    fs::rename(&aside, &queues[1]).unwrap();

    // Ties are broken at random: queue1 and queue2 both at 0.5.
    shm.set(
        4,
        &[[5, 0, 10, 10, 0], [0, 5, 10, 10, 0], state[2], state[3]],
    );
    let tie = added(&base, &queues, 60, &[]);
    assert!(
        tie[0] > 10 && tie[1] > 10 && tie[0] + tie[1] == 60,
        "{tie:?}"
    );

    // The count grows: qscheduler says 2 queues, then 4 with queue4 idle.
    shm.set(
        2,
        &[
            [5, 5, 10, 10, 0],
            [9, 9, 10, 10, 0],
            [0, 0, 10, 10, 0],
            [0, 0, 10, 10, 0],
        ],
    );
    assert_eq!(added(&base, &queues, 10, &[]), [10, 0, 0, 0]);
    shm.set(
        4,
        &[
            [5, 5, 10, 10, 0],
            [9, 9, 10, 10, 0],
            [3, 3, 10, 10, 0],
            [0, 0, 10, 10, 0],
        ],
    );
    assert_eq!(added(&base, &queues, 10, &[]), [0, 0, 0, 10]);

    // Every queue ruled out by qscheduler: a temporary failure saying so.
    shm.set(2, &[[0, 0, 10, 10, 1], [0, 0, 0, 0, 0]]);
    let r = inject(&base, &[]);
    r.assert_exit(62);
    assert!(
        r.stderr_text().contains("every queue is disabled"),
        "{}",
        r.stderr_text()
    );

    // Fallbacks: each injection still queues, with one warning.
    shm.set(4, &state);
    shm.remove("qscheduler");
    falls_back(&base, "absent");
    shm.write_bytes("qscheduler", &[4, 0]);
    falls_back(&base, "short count");
    shm.write("qscheduler", &[0]);
    falls_back(&base, "count 0");
    shm.write("qscheduler", &[-3]);
    falls_back(&base, "negative count");
    shm.write("qscheduler", &[100_001]);
    falls_back(&base, "count above the cap");
    shm.write("qscheduler", &[5]);
    falls_back(&base, "a queue segment missing");
    shm.write("qscheduler", &[4]);
    shm.write("queue3", &[0, 0, 10, 10]);
    falls_back(&base, "a short queue segment");
    shm.write("queue3", &state[2]);
    fs::set_permissions(
        Path::new(SHM).join("queue2"),
        fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    falls_back(&base, "a segment anyone could write");
    // The fallback is today's random choice: with queue2 the least loaded,
    // the random spread still reaches the other queues.
    let before = counts(&queues);
    for _ in 0..40 {
        inject(&base, &[]).assert_exit(0);
    }
    let spread: Vec<usize> = counts(&queues)
        .iter()
        .zip(before)
        .map(|(a, b)| a - b)
        .collect();
    assert!(spread.iter().filter(|&&k| k > 0).count() >= 3, "{spread:?}");

    // The trust rule, one breach at a time, each on a segment that is
    // otherwise as qscheduler writes it; the choice is the least loaded
    // (queue2) whenever everything is trusted.
    shm.set(4, &state);
    assert_eq!(added(&base, &queues, 3, &[]), [0, 3, 0, 0]);
    let q2 = Path::new(SHM).join("queue2");
    std::os::unix::fs::chown(&q2, Some(STRANGER), None).unwrap();
    falls_back_saying(&base, "owned by a stranger", "owned by uid 7002");
    std::os::unix::fs::chown(&q2, Some(0), None).unwrap();
    assert_eq!(added(&base, &queues, 2, &[]), [0, 2, 0, 0], "root's own");
    std::os::unix::fs::chown(&q2, Some(QMAILS), None).unwrap();
    fs::set_permissions(&q2, fs::Permissions::from_mode(0o664)).unwrap();
    falls_back_saying(&base, "group-writable", "mode 0664");
    fs::set_permissions(&q2, fs::Permissions::from_mode(0o644)).unwrap();
    // A second name (as a user could make with fs.protected_hardlinks=0;
    // made here as root, which the sysctl never stops).
    let link = Path::new(SHM).join("elsewhere");
    fs::hard_link(&q2, &link).unwrap();
    falls_back_saying(&base, "hard-linked", "2 hard links");
    fs::remove_file(&link).unwrap();
    assert_eq!(
        added(&base, &queues, 2, &[]),
        [0, 2, 0, 0],
        "one link again"
    );
    // A symlink to a perfectly good segment, and a FIFO.
    let real = Path::new(SHM).join("real-queue2");
    fs::rename(&q2, &real).unwrap();
    std::os::unix::fs::symlink(&real, &q2).unwrap();
    falls_back_saying(&base, "a symlink", "queue2");
    fs::remove_file(&q2).unwrap();
    nix::unistd::mkfifo(&q2, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::os::unix::fs::chown(&q2, Some(QMAILS), None).unwrap();
    falls_back_saying(&base, "a FIFO", "not a regular file");
    fs::remove_file(&q2).unwrap();
    fs::rename(&real, &q2).unwrap();
    assert_eq!(added(&base, &queues, 2, &[]), [0, 2, 0, 0]);
    // qmails unknown (looked up in /etc/passwd only): its segments are not
    // trusted; root's still are.
    let passwd = fs::read_to_string(etc.join("passwd")).unwrap();
    fs::write(etc.join("passwd"), passwd.replace("qmails:", "someone:")).unwrap();
    falls_back_saying(&base, "no qmails", "owned by uid 7001");
    fs::write(etc.join("passwd"), &passwd).unwrap();
    // Empty: qscheduler made it, its qmail-send has not filled it yet.
    shm.write_bytes("queue3", &[]);
    falls_back_saying(&base, "empty segment", "empty");
    shm.set(4, &state);

    // Growth past QUEUE_COUNT (4): qscheduler says 5 and made queue5,
    // the least loaded: it gets the mail. When its segment cannot be
    // trusted, the random fallback spans the 5 queues in service (the
    // rule of queue::served), so queue5 still gets its share.
    let mut all = queues.clone();
    all.extend(make_queues(&base, 5, 1));
    let mut grown = state.to_vec();
    grown.push([0, 0, 10, 10, 0]);
    shm.set(5, &grown);
    assert_eq!(added(&base, &all, 10, &[]), [0, 0, 0, 0, 10]);
    fs::set_permissions(
        Path::new(SHM).join("queue5"),
        fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let before = counts(&all);
    for _ in 0..60 {
        inject(&base, &[]).assert_exit(0);
    }
    let spread: Vec<usize> = counts(&all)
        .iter()
        .zip(before)
        .map(|(a, b)| a - b)
        .collect();
    assert!(
        spread[4] > 0,
        "queue5 in service gets its share: {spread:?}"
    );
}
