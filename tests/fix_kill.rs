//! Crash safety: queue-fix killed at random moments (aborted after a random
//! number of changes through the test hook QUEUE_FIX_CRASH_AFTER, or
//! SIGKILLed after a random delay); rerunning always finishes the job and
//! every message is there exactly once.

mod fix_support;
use fix_support::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const INV: &str = "--as-invoker";

/// A kill tests the order of the steps, not a power cut: the fsyncs that
/// make moves durable (tested in fix_attack) only add time here.
fn no_fsync() {
    std::env::set_var("QUEUE_FIX_UNSAFE_NO_FSYNC", "1");
}

/// xorshift64*: reproducible randomness from a printed seed.
struct Rng(u64);
impl Rng {
    fn new(what: &str) -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("{what}: seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// One interrupted run: either aborted after `rng` changes, or SIGKILLed
/// after a random delay. Returns whether it was really cut short.
fn interrupted_run(args: &[&str], rng: &mut Rng, max_steps: u64, i: u32) -> bool {
    if i % 4 == 3 {
        let mut child = Command::new(bin())
            .args(args)
            .env_remove("CONFSPLIT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(40_000)));
        let _ = child.kill(); // SIGKILL
        !child.wait().unwrap().success()
    } else {
        let n = rng.below(max_steps).to_string();
        let o = run_env(args, &[("QUEUE_FIX_CRASH_AFTER", &n)]);
        o.status.code().is_none()
    }
}

fn misname_all(q: &Path, inos: &[u64], offset: u64) {
    for &i in inos {
        let wrong = i + offset;
        misplace(
            q,
            i,
            (i % 23) as u32,
            (wrong % 23) as u32,
            &wrong.to_string(),
        );
    }
}

#[test]
fn renaming_2000_messages_survives_100_random_kills() {
    no_fsync();
    let (_t, dir) = scratch();
    let q = dir.join("q");
    run(&[INV, "-s", "23", s(&q)]);
    let inos = fill(&q, 2000, 23);
    for &i in inos.iter().step_by(3) {
        add_info_remote(&q, (i % 23) as u32, &i.to_string());
    }
    let before = messages(&q);
    let mut rng = Rng::new("rename kill test");
    let args = [INV, "-s", "23", s(&q)];
    let mut cut = 0;
    for i in 0..100u32 {
        // Break every message again (a fresh wrong name each round), kill
        // a run somewhere in its ~10,000 changes, then finish.
        misname_all(&q, &inos, 10_000_000 + u64::from(i) * 1_000_003);
        if interrupted_run(&args, &mut rng, 10_000, i) {
            cut += 1;
        }
        let o = run(&args);
        assert!((0..=99).contains(&code(&o)), "round {i}: {}", err(&o));
        expect(&[INV, "-s", "23", "-N", s(&q)], 0);
        assert_eq!(
            messages(&q),
            before,
            "round {i}: a message was lost or doubled"
        );
        assert!(
            !q.join("quarantine").exists(),
            "round {i}: a message file was taken for a stray"
        );
    }
    assert!(cut >= 50, "only {cut} of 100 runs were interrupted");
}

/// Mounts a small tmpfs (root only) so a retire crosses filesystems; the
/// guard unmounts it.
struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn retiring_7_of_10_queues_with_3000_messages_survives_kills() {
    no_fsync();
    let (_t, base) = scratch();
    let mut mounts = Vec::new();
    if is_root() {
        // queue9 and queue10 on their own filesystems: copied, not renamed.
        for n in [9, 10] {
            let p = base.join(format!("queue{n}"));
            std::fs::create_dir(&p).unwrap();
            let ok = Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    "size=64m,nr_inodes=20000",
                    "tmpfs",
                    s(&p),
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                mounts.push(Mount(p));
            } else {
                skip("cross-filesystem part", "mount -t tmpfs failed");
            }
        }
    } else {
        skip("cross-filesystem part", "mounting a tmpfs needs root");
    }
    let mut before = Vec::new();
    for n in 1..=10 {
        let q = base.join(format!("queue{n}"));
        run(&[INV, "-s", "23", s(&q)]);
        let inos = fill(&q, 300, 23);
        for &i in inos.iter().step_by(2) {
            add_info_remote(&q, (i % 23) as u32, &i.to_string());
        }
        before.extend(messages(&q));
    }
    before.sort_unstable();
    let args = [
        INV,
        "-s",
        "23",
        "--base",
        s(&base),
        "--count",
        "3",
        "--retire",
    ];
    let mut rng = Rng::new("retire kill test");
    let mut kills = 0;
    for i in 0..200u32 {
        if !interrupted_run(&args, &mut rng, 3_000, i) {
            break;
        }
        kills += 1;
        // Every message is somewhere exactly once at every moment between runs
        // (a hard link counts once per name, so compare after completion).
    }
    let o = run(&args);
    assert!((0..=99).contains(&code(&o)), "{}", err(&o));
    eprintln!("retire finished after {kills} interruptions");
    assert!(kills >= 3, "only {kills} interruptions");
    let mut after = Vec::new();
    for n in 1..=3 {
        let q = base.join(format!("queue{n}"));
        expect(&[INV, "-s", "23", "-N", s(&q)], 0);
        after.extend(messages(&q));
        assert!(!q.join("quarantine").exists());
        let pid: Vec<_> = std::fs::read_dir(q.join("pid")).unwrap().collect();
        assert!(pid.is_empty(), "markers left in {}/pid", q.display());
    }
    after.sort_unstable();
    assert_eq!(after.len(), 3000);
    assert_eq!(after, before, "messages lost or doubled");
    for n in 4..=10 {
        let q = base.join(format!("queue{n}"));
        assert!(messages(&q).is_empty(), "{} not empty", q.display());
    }
    expect(
        &[INV, "-s", "23", "--base", s(&base), "--count", "3", "-N"],
        0,
    );
    drop(mounts);
}
