//! `DYNAMIC_QUEUE` with real qscheduler segments: files under /dev/shm in
//! the exact layout (C ints: `/qscheduler` = count; `/queueN` = local used,
//! remote used, local max, remote max, disabled flag), root-owned mode 0644
//! as qscheduler makes them. Root only (segments must be root's); the
//! segment names are global, so every case runs in this one test, in order.

mod multi_support;

use multi_support::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const SHM: &str = "/dev/shm";

/// The segments this test made; removed at the end, whatever happens.
struct Segments {
    made: Vec<PathBuf>,
}

impl Segments {
    fn write(&mut self, name: &str, ints: &[i32]) {
        let bytes: Vec<u8> = ints.iter().flat_map(|i| i.to_ne_bytes()).collect();
        self.write_bytes(name, &bytes);
    }

    fn write_bytes(&mut self, name: &str, bytes: &[u8]) {
        let p = Path::new(SHM).join(name);
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        if !self.made.contains(&p) {
            self.made.push(p);
        }
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

impl Drop for Segments {
    fn drop(&mut self) {
        for p in &self.made {
            let _ = fs::remove_file(p);
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

/// One injection that must fall back: succeeds, one warning naming why.
fn falls_back(base: &Path, why: &str) {
    let r = inject(base, &[]);
    r.assert_exit(0);
    let text = r.stderr_text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("DYNAMIC_QUEUE"))
        .collect();
    assert_eq!(warnings.len(), 1, "{why}: {text}");
    assert!(warnings[0].contains("at random"), "{why}: {text}");
}

#[test]
fn least_loaded_choice_disabled_flag_growth_health_and_every_fallback() {
    if !is_root() {
        println!("skipped: qscheduler's segments are root's; needs root");
        return;
    }
    if Path::new(SHM).join("qscheduler").exists() {
        println!("skipped: {SHM}/qscheduler exists (a qscheduler runs here)");
        return;
    }
    if !Path::new(SHM).is_dir() {
        println!("skipped: no {SHM}");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    let queues = make_queues(&base, 1, 4);
    let mut shm = Segments { made: Vec::new() };

    // queue2 least loaded (0.1); queue3 idle but disabled; queue4 idle but
    // without remote concurrency; queue1 at 0.5.
    let state = [
        [5, 1, 10, 10, 0],
        [1, 2, 10, 20, 0],
        [0, 0, 10, 10, 1],
        [0, 0, 10, 0, 0],
    ];
    shm.set(4, &state);
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
}
