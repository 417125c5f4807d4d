//! Figures for `bench/qmail-multi.sh` (never packaged).
//!
//! `multi-bench startup COUNT TRIVIAL OURS CREF BASE plain|dynamic` — per
//! call start-up: ours against the C reference multiplexer (both in front
//! of a trivial queue program), paired and interleaved.
//!
//! `multi-bench dynamic-cost N BASE DEPOSITOR QMAIL_MULTI` — DYNAMIC_QUEUE
//! selection over N queues against one injection (segments made by the
//! script).
//!
//! `multi-bench queues BASE SPLIT` — creates BASE/queue1..queue10 from the
//! layout table, owned by the invoking user.
//!
//! `multi-bench select BASE` — in process, over the 10 real queues
//! BASE/queue1..queue10: max/mean after a burst of 10,000 selections for
//! upstream's 2021 `now % count`, plain uniform random and ours, and how
//! many of 1,000 injections fail with one queue missing for each.
//!
//! `multi-bench inject COUNT DEPOSITOR QMAIL_MULTI BASE` — COUNT injections
//! straight into the depositor (QUEUEDIR=BASE/queue1) against COUNT through
//! qmail-multi (QUEUE_BASE=BASE) and through qmail-multi with
//! FILTERARGS=cat, alternating one by one so drift hits all alike; real
//! pipes on descriptors 0 and 1, the depositor fsyncs as qmail-queue does
//! (`SYNC=0` in the environment turns that off). `BENCH_QUEUE_COUNT=1`
//! makes qmail-multi use queue1 only, like the direct path. A fourth path,
//! the depositor behind `/usr/bin/env`, prices one bare extra exec.

use qmail_multi::multi::select::{choose, FsProbe, Random, SplitMix};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const COUNT: u32 = 10;

fn max_over_mean(counts: &[u64]) -> f64 {
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    *counts.iter().max().unwrap() as f64 / mean
}

fn upstream(now: u64) -> u64 {
    1 + now % u64::from(COUNT)
}

fn select(base: &Path) {
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let mut probe = FsProbe {
        base: base.into(),
        min_free: None,
    };
    let mut rng = SplitMix::from_os();
    let (mut up, mut uni, mut ours) = ([0u64; 10], [0u64; 10], [0u64; 10]);
    let started = Instant::now();
    for _ in 0..10_000 {
        up[(upstream(now()) - 1) as usize] += 1;
        uni[rng.below(u64::from(COUNT)) as usize] += 1;
        let c = choose(1, COUNT, &mut probe, &mut rng).expect("10 queues exist");
        ours[(c.queue - 1) as usize] += 1;
    }
    println!(
        "(a) burst of 10,000 selections over 10 queues (took {:?}), max/mean:",
        started.elapsed()
    );
    println!(
        "    upstream now%count : {:.2}   {up:?}",
        max_over_mean(&up)
    );
    println!(
        "    uniform random     : {:.2}   {uni:?}",
        max_over_mean(&uni)
    );
    println!(
        "    qmail-multi (ours) : {:.2}   {ours:?}",
        max_over_mean(&ours)
    );

    // How often a whole burst misses the bound: 1,000 bursts of 10,000 (the
    // policy equals uniform choice while every queue is healthy, so the
    // probe here answers from memory to keep this quick).
    struct AllHealthy;
    impl qmail_multi::multi::select::Probe for AllHealthy {
        fn health(&mut self, _: u64) -> qmail_multi::multi::select::Health {
            qmail_multi::multi::select::Health::Usable
        }
    }
    let mut worst = 0f64;
    let over = (0..1000)
        .filter(|_| {
            let mut c = [0u64; 10];
            for _ in 0..10_000 {
                c[(choose(1, COUNT, &mut AllHealthy, &mut rng).unwrap().queue - 1) as usize] += 1;
            }
            worst = worst.max(max_over_mean(&c));
            max_over_mean(&c) > 1.10
        })
        .count();
    println!("    ours, 1,000 bursts : {over} over 1.10, worst {worst:.3}");

    let missing = 5u64;
    let hidden = base.join(format!("queue{missing}"));
    let aside = base.join(format!("queue{missing}.aside"));
    std::fs::rename(&hidden, &aside).expect("moving one queue aside");
    let t0 = now();
    // Upstream over time: one injection a second for 1,000 seconds; in a
    // burst: all 1,000 in the current second(s) of the real clock.
    let up_spread = (0..1000).filter(|i| upstream(t0 + i) == missing).count();
    let up_burst = (0..1000).filter(|_| upstream(now()) == missing).count();
    let uni_fail = (0..1000)
        .filter(|_| 1 + rng.below(u64::from(COUNT)) == missing)
        .count();
    let ours_fail = (0..1000)
        .filter(|_| choose(1, COUNT, &mut probe, &mut rng).is_err())
        .count();
    std::fs::rename(&aside, &hidden).expect("putting the queue back");
    println!("(a) failed injections of 1,000 with queue{missing} of 10 missing:");
    println!(
        "    upstream now%count : {up_spread} (one a second), {up_burst} (a burst, this second)"
    );
    println!("    uniform random     : {uni_fail}");
    println!("    qmail-multi (ours) : {ours_fail}");
}

/// One injection through `cmd` with real pipes; panics unless it queued.
fn inject_once(cmd: &mut Command, message: &[u8], envelope: &[u8]) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    cmd.stdin(Stdio::piped()).stdout(Stdio::from(r));
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(message).unwrap();
    drop(stdin);
    let mut w = std::fs::File::from(w);
    w.write_all(envelope).unwrap();
    drop(w);
    let status = child.wait().unwrap();
    assert!(status.success(), "injection failed: {status}");
}

fn inject(count: usize, depositor: PathBuf, multi: PathBuf, base: PathBuf) {
    let message = b"From: a@example.org\nTo: b@example.net\nSubject: bench\n\nhello\n".repeat(20);
    let envelope = b"Fa@example.org\0Tb@example.net\0\0";
    let split = std::env::var("CONFSPLIT").unwrap_or_else(|_| "151".into());
    let mut direct = Command::new(&depositor);
    direct
        .env("QUEUEDIR", base.join("queue1"))
        .env("CONFSPLIT", &split);
    // The same, but behind one extra exec of a small C program: the least
    // any exec-ing multiplexer can cost.
    let mut shim = Command::new("/usr/bin/env");
    shim.arg(&depositor)
        .env("QUEUEDIR", base.join("queue1"))
        .env("CONFSPLIT", &split);
    let mut through = Command::new(&multi);
    through
        .env_remove("QUEUEDIR")
        .env("QUEUE_BASE", &base)
        .env("QUEUEPROG", &depositor)
        .env("QMAILHOME", "/")
        .env("CONFSPLIT", &split);
    let mut filtered = Command::new(&multi);
    filtered
        .env_remove("QUEUEDIR")
        .env("QUEUE_BASE", &base)
        .env("QUEUEPROG", &depositor)
        .env("QMAILHOME", "/")
        .env("CONFSPLIT", &split)
        .env("FILTERARGS", "cat");
    if let Ok(n) = std::env::var("BENCH_QUEUE_COUNT") {
        through.env("QUEUE_COUNT", &n);
        filtered.env("QUEUE_COUNT", &n);
    }
    // Alternating injection by injection, so disk and load drift hit the
    // three paths alike; medians, as fsync has a long tail.
    let mut spent: [Vec<Duration>; 4] = Default::default();
    for _ in 0..count {
        for (i, cmd) in [&mut direct, &mut through, &mut filtered, &mut shim]
            .into_iter()
            .enumerate()
        {
            let t = Instant::now();
            inject_once(cmd, &message, envelope);
            spent[i].push(t.elapsed());
        }
    }
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        let mean = v.iter().sum::<Duration>().as_secs_f64() * 1e6 / v.len() as f64;
        (v[v.len() / 2].as_secs_f64() * 1e6, mean)
    };
    let [d, t, f, e] = spent.each_mut().map(stats);
    println!(
        "(b) {count} injections each, message {} bytes, depositor {} (median / mean µs):",
        message.len(),
        if std::env::var("SYNC").is_ok_and(|v| v == "0") {
            "does not fsync (SYNC=0)"
        } else {
            "fsyncs"
        }
    );
    println!(
        "    straight into the depositor : {:8.1} / {:8.1}",
        d.0, d.1
    );
    println!(
        "    through qmail-multi         : {:8.1} / {:8.1}",
        t.0, t.1
    );
    println!(
        "    ratio                       : {:8.3} / {:8.3}",
        t.0 / d.0,
        t.1 / d.1
    );
    println!(
        "    behind /usr/bin/env instead : {:8.1} / {:8.1}",
        e.0, e.1
    );
    println!(
        "    ratio, env to the depositor : {:8.3} / {:8.3}",
        e.0 / d.0,
        e.1 / d.1
    );
    println!(
        "    qmail-multi's cost in execs of env: {:.2}",
        (t.0 - d.0) / (e.0 - d.0)
    );
    println!("(c) through qmail-multi with FILTERARGS=cat:");
    println!(
        "    with the filter             : {:8.1} / {:8.1}",
        f.0, f.1
    );
    println!(
        "    ratio to the depositor      : {:8.3} / {:8.3}",
        f.0 / d.0,
        f.1 / d.1
    );
}

/// Medians of paired, interleaved timings: `a` and `b` run back to back
/// `count` times, which one goes first alternating, so drift and cache
/// warmth hit both alike.
fn paired(count: usize, a: &mut Command, b: &mut Command) -> (f64, f64, f64) {
    let message = b"Subject: start-up\n\nhello\n";
    let envelope = b"Fa@example.org\0Tb@example.net\0\0";
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..count {
        let time = |cmd: &mut Command| {
            let t = Instant::now();
            inject_once(cmd, message, envelope);
            t.elapsed().as_secs_f64() * 1e6
        };
        let (x, y) = if i % 2 == 0 {
            let x = time(a);
            (x, time(b))
        } else {
            let y = time(b);
            (time(a), y)
        };
        ta.push(x);
        tb.push(y);
        ratios.push(x / y);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        v[v.len() / 2]
    };
    (median(&mut ta), median(&mut tb), median(&mut ratios))
}

/// Per-call start-up cost, ours against the C reference multiplexer, both
/// in front of a trivial queue program; with `dynamic`, DYNAMIC_QUEUE set
/// (the caller has made qscheduler's segments).
fn startup(count: usize, trivial: &Path, ours: &Path, cref: &Path, base: &Path, dynamic: bool) {
    let setup = |prog: &Path| {
        let mut c = Command::new(prog);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("QUEUE_BASE", base)
            .env("QUEUE_COUNT", COUNT.to_string())
            .env("QUEUEPROG", trivial)
            .env("QMAILHOME", "/");
        if dynamic {
            c.env("DYNAMIC_QUEUE", "1");
        }
        c
    };
    let (mut a, mut b) = (setup(ours), setup(cref));
    let mut bare = Command::new(trivial);
    bare.env_clear().env("QUEUEDIR", base.join("queue1"));
    let (o, c, r) = paired(count, &mut a, &mut b);
    let (_, e, _) = paired(count / 4 + 1, &mut a, &mut bare);
    println!(
        "    {:<18}: ours {o:7.1} µs, C {c:7.1} µs, bare exec {e:7.1} µs; ours/C {:.3} (median of pairs {r:.3})",
        if dynamic { "DYNAMIC_QUEUE" } else { "no filter" },
        o / c
    );
}

/// What DYNAMIC_QUEUE's selection costs in process (read qscheduler's
/// segments + choose with the health probe), over `n` queues made under
/// `base`, against one whole injection through qmail-multi.
fn dynamic_cost(n: u32, base: &Path, injection_us: f64) {
    use qmail_multi::multi::dynamic;
    use qmail_multi::queue::scheduler;
    let mut probe = FsProbe {
        base: base.into(),
        min_free: None,
    };
    let mut rng = SplitMix::from_os();
    let rounds = 2000;
    let t = Instant::now();
    for _ in 0..rounds {
        let loads = scheduler::read().expect("the bench made the segments");
        assert_eq!(loads.len(), n as usize);
        dynamic::choose(1, &loads, &mut probe, &mut rng).expect("a usable queue");
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!(
        "    selection over {n:3} queues: {us:7.1} µs = {:.1}% of one injection ({injection_us:.0} µs)",
        100.0 * us / injection_us
    );
}

/// Median µs of one whole injection into the depositor through qmail-multi.
fn injection_us(count: usize, depositor: &Path, multi: &Path, base: &Path) -> f64 {
    let message = b"From: a@example.org\nTo: b@example.net\nSubject: bench\n\nhello\n".repeat(20);
    let envelope = b"Fa@example.org\0Tb@example.net\0\0";
    let mut cmd = Command::new(multi);
    cmd.env_remove("QUEUEDIR")
        .env("QUEUE_BASE", base)
        .env("QUEUEPROG", depositor)
        .env("QMAILHOME", "/");
    let mut v: Vec<f64> = (0..count)
        .map(|_| {
            let t = Instant::now();
            inject_once(&mut cmd, &message, envelope);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    v.sort_by(|x, y| x.partial_cmp(y).unwrap());
    v[v.len() / 2]
}

/// Queues 1..=10 under `base`, as the invoking user, from the layout table.
fn make_queues(base: &Path, split: u32) {
    make_n_queues(base, split, COUNT)
}

fn make_n_queues(base: &Path, split: u32, count: u32) {
    use qmail_multi::queue::layout::{Kind, Layout};
    use std::os::unix::fs::PermissionsExt;
    let shape = Layout::new(split);
    for n in 1..=count {
        let root = base.join(format!("queue{n}"));
        for e in shape.entries() {
            let path = if e.path == "." {
                root.clone()
            } else {
                root.join(e.path)
            };
            match e.kind {
                Kind::Dir => {
                    std::fs::create_dir_all(&path).unwrap();
                    for i in 0..if shape.is_split(e) { split } else { 0 } {
                        std::fs::create_dir(path.join(i.to_string())).unwrap();
                    }
                }
                Kind::File { size } => std::fs::File::create(&path).unwrap().set_len(size).unwrap(),
                Kind::Fifo => nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap(),
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.mode)).unwrap();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["queues", base, split] => make_queues(Path::new(base), split.parse().expect("SPLIT")),
        ["select", base] => select(Path::new(base)),
        ["startup", count, trivial, ours, cref, base, mode] => startup(
            count.parse().expect("COUNT is a number"),
            Path::new(trivial),
            Path::new(ours),
            Path::new(cref),
            Path::new(base),
            *mode == "dynamic",
        ),
        ["queues-n", base, split, n] => make_n_queues(
            Path::new(base),
            split.parse().expect("SPLIT"),
            n.parse().expect("N"),
        ),
        ["dynamic-cost", n, base, depositor, multi] => {
            let one = injection_us(300, Path::new(depositor), Path::new(multi), Path::new(base));
            dynamic_cost(n.parse().expect("N"), Path::new(base), one)
        }
        ["inject", count, depositor, multi, base] => inject(
            count.parse().expect("COUNT is a number"),
            depositor.into(),
            multi.into(),
            base.into(),
        ),
        _ => {
            eprintln!("usage: multi-bench queues BASE SPLIT | queues-n BASE SPLIT N | select BASE | inject COUNT DEPOSITOR QMAIL_MULTI BASE | startup COUNT TRIVIAL OURS CREF BASE plain|dynamic | dynamic-cost N BASE DEPOSITOR QMAIL_MULTI");
            std::process::exit(2);
        }
    }
}
