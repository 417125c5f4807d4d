//! queue-stat through the real binary, on queues whose contents are known
//! exactly: messages placed by the test depositor, moved on as qmail-send
//! would, backdated with `touch -d`; a missing queue, an orphan, a live
//! queue, a full tmpfs; the table, `--prometheus` (through promtool when
//! installed) and `--check` at each threshold.

mod multi_support;

use multi_support::{is_root, make_queue, make_queues, Tmpfs, SPLIT};
use qmail_multi::queue::deposit::{deposit, DepositOptions, Envelope};
use std::collections::BTreeMap;
use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

fn queue_stat(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queue-stat"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        // No host settings but the test's own (queue::settings).
        .env("CONTROLDIR", "/nonexistent/qmail-multi-test/control")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("running queue-stat")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn expect_status(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(o),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Deposits one message whose `mess` file is `size` bytes; its inode.
fn put(queue: &Path, size: usize) -> u64 {
    let env = Envelope {
        sender: b"sender@example.org".to_vec(),
        recipients: vec![b"rcpt@example.net".to_vec()],
    };
    let opts = DepositOptions {
        layout: qmail_multi::queue::layout::Layout::new(SPLIT),
        sync: false,
        received_line: false,
    };
    let body = vec![b'x'; size];
    deposit(queue, &mut body.as_slice(), &env, opts).expect("deposit")
}

fn file(queue: &Path, dir: &str, ino: u64) -> PathBuf {
    let p = queue.join(dir);
    if dir == "bounce" {
        p.join(ino.to_string())
    } else {
        p.join((ino % u64::from(SPLIT)).to_string())
            .join(ino.to_string())
    }
}

/// `touch -d <when>` (GNU date syntax, e.g. "3 hours ago").
fn touch(path: &Path, when: &str) {
    let ok = Command::new("touch")
        .args(["-d", when])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success(), "touch -d {when} {}", path.display());
}

/// What qmail-send does with a message from `todo`: drops intd and todo,
/// writes info and one file per kind of pending delivery.
fn preprocess(queue: &Path, ino: u64, deliveries: &[&str]) {
    fs::remove_file(file(queue, "intd", ino)).unwrap();
    fs::remove_file(file(queue, "todo", ino)).unwrap();
    fs::write(file(queue, "info", ino), "Fsender@example.org\0").unwrap();
    for d in deliveries {
        fs::write(file(queue, d, ino), "Trcpt@example.net\0").unwrap();
    }
}

/// The samples of a Prometheus text, `name{labels}` → value.
fn samples(prom: &str) -> BTreeMap<String, u64> {
    prom.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[track_caller]
fn sample(m: &BTreeMap<String, u64>, key: &str) -> u64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {m:#?}"))
}

/// The base of the known-contents tests:
/// - queue1: three fresh messages of 10, 20 and 30 bytes, the last two
///   backdated 7 and 15 minutes (mess only: no info yet);
/// - queue2: four messages, dated by injection (their mess files). a:
///   injected 5 hours ago, its info written 30 minutes ago (ignored: age
///   is since injection), remote pending; b: 3 hours, local and remote;
///   c: an injection in progress (intd, no todo); d: 1 hour, local, and a
///   bounce;
/// - queue3: empty; queue4: missing;
/// - queue7: an orphan with 2 messages; queue9: outside the range, empty.
struct Known {
    _dir: tempfile::TempDir,
    base: PathBuf,
}

fn known() -> Known {
    let dir = tempfile::Builder::new()
        .prefix("stat-test")
        .tempdir()
        .unwrap();
    let base = dir.path().to_path_buf();
    let q = make_queues(&base, 1, 4);
    fs::remove_dir_all(&q[3]).unwrap();
    let m1 = [put(&q[0], 10), put(&q[0], 20), put(&q[0], 30)];
    touch(&file(&q[0], "mess", m1[1]), "7 minutes ago");
    touch(&file(&q[0], "mess", m1[2]), "15 minutes ago");

    let [a, b, c, d] = [
        put(&q[1], 100),
        put(&q[1], 200),
        put(&q[1], 300),
        put(&q[1], 400),
    ];
    preprocess(&q[1], a, &["remote"]);
    preprocess(&q[1], b, &["local", "remote"]);
    fs::remove_file(file(&q[1], "todo", c)).unwrap();
    preprocess(&q[1], d, &["local", "bounce"]);
    touch(&file(&q[1], "mess", a), "5 hours ago");
    touch(&file(&q[1], "info", a), "30 minutes ago");
    touch(&file(&q[1], "mess", b), "3 hours ago");
    touch(&file(&q[1], "mess", d), "1 hour ago");

    let orphan = base.join("queue7");
    make_queue(&orphan);
    put(&orphan, 5);
    put(&orphan, 5);
    make_queue(&base.join("queue9"));
    Known { _dir: dir, base }
}

#[test]
fn known_queues_give_exact_figures_in_every_format() {
    let started = Instant::now();
    let k = known();
    let base = k.base.to_str().unwrap();
    let o = queue_stat(
        &["--prometheus"],
        &[("QUEUE_BASE", base), ("QUEUE_COUNT", "4")],
    );
    // Every queue that exists was read: a missing one is reported, not an error.
    expect_status(&o, 0);
    let prom = text(&o);
    let m = samples(&prom);
    let slack = started.elapsed().as_secs() + 2;
    let q =
        |n: u32, metric: &str| sample(&m, &format!("qmail_queue_{metric}{{queue=\"queue{n}\"}}"));

    assert_eq!(
        [q(1, "messages"), q(2, "messages"), q(3, "messages")],
        [3, 4, 0]
    );
    assert_eq!(q(1, "unpreprocessed_messages"), 3);
    assert_eq!(
        q(2, "unpreprocessed_messages"),
        1,
        "c (intd only) is counted once"
    );
    assert_eq!(q(2, "local_pending_messages"), 2);
    assert_eq!(q(2, "remote_pending_messages"), 2);
    assert_eq!(q(2, "bounce_pending_messages"), 1);
    assert_eq!(q(1, "mess_bytes"), 60);
    assert_eq!(q(2, "mess_bytes"), 1000);
    assert_eq!(q(3, "mess_bytes"), 0);
    let oldest1 = q(1, "oldest_message_age_seconds");
    assert!((900..=900 + slack).contains(&oldest1), "{oldest1}");
    // a's injection (5 hours), not its info (30 minutes).
    let oldest2 = q(2, "oldest_message_age_seconds");
    assert!((18_000..=18_000 + slack).contains(&oldest2), "{oldest2}");
    assert_eq!(q(3, "oldest_message_age_seconds"), 0);

    // The age histogram, cumulative: queue1 has one message in each of
    // 0-5, 5-10, 10-20 minutes; queue2 has c (fresh), d (1 h), b (3 h) and
    // a (5 h), the last two beyond 160 min.
    let bucket = |n: u32, le: &str| {
        sample(
            &m,
            &format!("qmail_queue_message_age_seconds_bucket{{queue=\"queue{n}\",le=\"{le}\"}}"),
        )
    };
    let les = ["300", "600", "1200", "2400", "4800", "9600", "+Inf"];
    assert_eq!(les.map(|le| bucket(1, le)), [1, 2, 3, 3, 3, 3, 3]);
    assert_eq!(les.map(|le| bucket(2, le)), [1, 1, 1, 1, 2, 2, 4]);
    assert_eq!(les.map(|le| bucket(3, le)), [0; 7]);
    assert_eq!(
        sample(
            &m,
            "qmail_queue_message_age_seconds_count{queue=\"queue2\"}"
        ),
        4
    );
    let sum = sample(&m, "qmail_queue_message_age_seconds_sum{queue=\"queue2\"}");
    let expected = 18_000 + 10_800 + 3600;
    assert!((expected..=expected + 4 * slack).contains(&sum), "{sum}");

    // Health as qmail-multi judges it; queue4 is missing, read as such.
    let health = |n: u32, state: &str| {
        sample(
            &m,
            &format!("qmail_queue_health{{queue=\"queue{n}\",state=\"{state}\"}}"),
        )
    };
    assert_eq!(
        [
            health(1, "usable"),
            health(2, "usable"),
            health(3, "usable")
        ],
        [1, 1, 1]
    );
    assert_eq!([health(4, "usable"), health(4, "missing")], [0, 1]);
    assert!(!m.contains_key("qmail_queue_messages{queue=\"queue4\"}"));
    assert_eq!(q(4, "readable"), 0);
    assert_eq!(q(1, "live"), 0, "nothing holds lock/sendmutex");
    // The filesystem figures are statvfs's (the same tmp filesystem).
    let vfs = nix::sys::statvfs::statvfs(k.base.as_path()).unwrap();
    let free = q(1, "filesystem_free_bytes");
    let now_free = vfs.blocks_available() * vfs.fragment_size();
    assert!(free.abs_diff(now_free) < 64 << 20, "{free} vs {now_free}");
    // Orphans exactly as queue-fix --base names them: queue7 with 2.
    assert_eq!(
        sample(&m, "qmail_queue_orphan_messages{queue=\"queue7\"}"),
        2
    );
    assert!(
        !prom.contains("queue9"),
        "an empty queue outside the range is no orphan"
    );

    promtool(&prom);

    // The same figures in the table, with the same configuration given
    // on the command line.
    let o = queue_stat(&["--base", base, "--count", "4"], &[]);
    expect_status(&o, 0);
    let t = text(&o);
    let row = |label: &str| -> Vec<String> {
        t.lines()
            .find(|l| l.split_whitespace().next() == Some(label))
            .unwrap_or_else(|| panic!("no row {label} in\n{t}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(
        row("queue1")[..7],
        ["queue1", "3", "3", "0", "0", "0", "60B"]
    );
    assert_eq!(
        row("queue2")[..7],
        ["queue2", "4", "1", "2", "2", "1", "1000B"]
    );
    assert_eq!(
        row("queue3")[..8],
        ["queue3", "0", "0", "0", "0", "0", "0B", "-"]
    );
    assert_eq!(
        row("total")[..7],
        ["total", "7", "4", "2", "2", "1", "1.0K"]
    );
    assert!(row("queue4").contains(&"(missing)".to_string()), "{t}");
    assert!(t.contains("orphan: queue7 holds 2 messages"), "{t}");
    // The second table: health, send, and the age buckets.
    let ages: Vec<String> = t
        .lines()
        .filter(|l| l.starts_with("queue2 ") && l.contains("usable"))
        .flat_map(|l| {
            l.split_whitespace()
                .skip(5)
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ages, ["1", "0", "0", "0", "1", "0", "2"], "{t}");
}

#[test]
fn the_table_fits_80_columns_for_ten_queues_with_a_bar_per_queue() {
    let dir = tempfile::tempdir().unwrap();
    let q = make_queues(dir.path(), 1, 10);
    // queue5 holds twice as many as queue1..4, the others none.
    for (i, n) in [(0, 4), (1, 4), (2, 4), (3, 4), (4, 8)] {
        for _ in 0..n {
            put(&q[i], 1);
        }
    }
    let o = queue_stat(&[], &[("QUEUE_BASE", dir.path().to_str().unwrap())]);
    expect_status(&o, 0);
    let t = text(&o);
    for line in t.lines() {
        assert!(
            line.chars().count() < 80,
            "{} columns: {line:?}",
            line.len()
        );
    }
    let bar = |label: &str| {
        t.lines()
            .find(|l| l.starts_with(&format!("{label} ")))
            .unwrap()
            .chars()
            .filter(|&c| c == '#')
            .count()
    };
    let full = bar("queue5");
    assert!(full >= 10, "{t}");
    assert_eq!(bar("queue1"), full.div_ceil(2), "{t}");
    assert_eq!(bar("queue6"), 0, "{t}");
    assert_eq!(
        t.lines().filter(|l| l.starts_with("queue")).count(),
        22,
        "{t}"
    );
}

#[test]
fn queues_named_on_the_command_line_or_by_queuedir() {
    let k = known();
    let q2 = k.base.join("queue2");
    let q3 = k.base.join("queue3");
    let o = queue_stat(
        &["--prometheus", q2.to_str().unwrap(), q3.to_str().unwrap()],
        &[],
    );
    expect_status(&o, 0);
    let m = samples(&text(&o));
    assert_eq!(
        sample(
            &m,
            &format!("qmail_queue_messages{{queue=\"{}\"}}", q2.display())
        ),
        4
    );
    assert_eq!(
        m.keys()
            .filter(|k| k.starts_with("qmail_queue_messages"))
            .count(),
        2
    );
    assert!(
        !m.keys().any(|k| k.contains("orphan")),
        "no orphan search for named queues"
    );
    let o = queue_stat(&["--prometheus"], &[("QUEUEDIR", q2.to_str().unwrap())]);
    expect_status(&o, 0);
    let m = samples(&text(&o));
    assert_eq!(
        m.keys()
            .filter(|k| k.starts_with("qmail_queue_messages"))
            .count(),
        1
    );
    // A bad setting is named, as qmail-multi names it.
    let o = queue_stat(&[], &[("QUEUE_COUNT", "ten")]);
    expect_status(&o, 111);
    assert!(String::from_utf8_lossy(&o.stderr).contains("QUEUE_COUNT=\"ten\""));
    let o = queue_stat(&["--bogus"], &[]);
    expect_status(&o, 100);
}

#[test]
fn check_exit_codes_at_each_threshold() {
    let k = known();
    let base = k.base.to_str().unwrap();
    // queue1..3 exist; queue2 holds 4 messages, the oldest injected 5
    // hours ago.
    let check = |extra: &[&str], code: i32| -> String {
        let mut args = vec!["--check", "--base", base, "--count", "3"];
        args.extend_from_slice(extra);
        let o = queue_stat(&args, &[]);
        expect_status(&o, code);
        let out = text(&o);
        assert_eq!(out.lines().count(), 1, "one status line: {out}");
        let want = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][code as usize];
        assert!(out.starts_with(&format!("QMAIL-QUEUE {want} - ")), "{out}");
        assert!(out.contains(" | messages=7;"), "perfdata: {out}");
        out
    };
    // The orphan queue7 alone is a warning; without it everything is OK.
    let out = check(&[], 1);
    assert!(out.contains("orphan queue7 holds 2 messages"), "{out}");
    fs::remove_dir_all(k.base.join("queue7")).unwrap();
    let out = check(&[], 0);
    assert!(
        out.contains("3 queues usable, 7 messages, oldest 5h0"),
        "{out}"
    );

    // Age: 5 hours old (a few seconds more by now).
    check(&["--warn-age", "6h", "--crit-age", "1d"], 0);
    let out = check(&["--warn-age", "4h", "--crit-age", "1d"], 1);
    assert!(out.contains("queue2 oldest message 5h0"), "{out}");
    check(&["--warn-age", "7200", "--crit-age", "170m"], 2);
    // Depth: queue2 holds 4; a threshold alerts above its value.
    check(&["--warn-depth", "4"], 0);
    let out = check(&["--warn-depth", "3", "--crit-depth", "5"], 1);
    assert!(out.contains("queue2 holds 4 messages"), "{out}");
    assert!(out.contains("'queue2_messages'=4;3;5;0;"), "{out}");
    check(&["--warn-depth", "1", "--crit-depth", "3"], 2);
    // Free space and inodes: alert below the value.
    check(&["--warn-free", "1", "--warn-inodes", "1"], 0);
    check(&["--warn-free", "16383T"], 1);
    check(&["--warn-free", "1", "--crit-free", "16383T"], 2);
    check(&["--crit-inodes", "18446744073709551615"], 2);
    // qmail-send is not running on any of them.
    let out = check(&["--need-live"], 2);
    assert!(out.contains("queue1: qmail-send is not running"), "{out}");
    // Unknown: a bad threshold, a bad configuration.
    let o = queue_stat(&["--check", "--warn-age", "5x"], &[]);
    expect_status(&o, 3);
    let o = queue_stat(&["--check", "--bogus"], &[]);
    expect_status(&o, 3);
    let o = queue_stat(&["--check"], &[("QUEUE_START", "-1")]);
    expect_status(&o, 3);
    assert!(
        text(&o).starts_with("QMAIL-QUEUE UNKNOWN - QUEUE_START="),
        "{}",
        text(&o)
    );

    // A missing queue is a warning (qmail-multi routes around it); no
    // usable queue at all is critical.
    let o = queue_stat(&["--check", "--base", base, "--count", "4"], &[]);
    expect_status(&o, 1);
    assert!(text(&o).contains("queue4 does not exist"), "{}", text(&o));
    let o = queue_stat(
        &["--check", "--base", base, "--start", "20", "--count", "2"],
        &[],
    );
    expect_status(&o, 2);
    assert!(text(&o).contains("no queue is usable"), "{}", text(&o));
}

/// Starts a lock holder and returns once it says "locked".
fn hold(cmd: &mut Command) -> std::process::Child {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n", "the lock holder failed");
    child
}

#[test]
fn a_live_queue_is_told_by_its_lock_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let q = make_queues(dir.path(), 1, 2);
    put(&q[1], 1);
    let mutex = q[1].join("lock/sendmutex");
    let lockers: [(&str, String); 2] = [
        (
            "flock",
            format!(
                "exec flock --no-fork -x {} sh -c 'echo locked; exec sleep 30'",
                mutex.display()
            ),
        ),
        (
            "python3",
            format!(
                "exec python3 -c 'import fcntl,time; f=open(\"{}\",\"r+\"); fcntl.lockf(f, fcntl.LOCK_EX); print(\"locked\", flush=True); time.sleep(30)'",
                mutex.display()
            ),
        ),
    ];
    for (tool, script) in lockers {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("skipped: live queue held by {tool}: {tool} is not installed");
            continue;
        }
        let mut holder = hold(Command::new("sh").args(["-c", &script]));
        let o = queue_stat(
            &[
                "--prometheus",
                "--base",
                dir.path().to_str().unwrap(),
                "--count",
                "2",
            ],
            &[],
        );
        expect_status(&o, 0);
        let m = samples(&text(&o));
        assert_eq!(
            sample(&m, "qmail_queue_live{queue=\"queue1\"}"),
            0,
            "{tool}"
        );
        assert_eq!(
            sample(&m, "qmail_queue_live{queue=\"queue2\"}"),
            1,
            "{tool}"
        );
        let o = queue_stat(
            &[
                "--check",
                "--need-live",
                dir.path().join("queue2").to_str().unwrap(),
            ],
            &[],
        );
        expect_status(&o, 0);
        // The holder still holds it and is still running: nothing was taken.
        assert!(
            holder.try_wait().unwrap().is_none(),
            "{tool}: the holder died"
        );
        let _ = holder.kill();
        let _ = holder.wait();
    }
}

#[test]
fn a_full_tmpfs_queue_is_judged_as_qmail_multi_judges_it() {
    if !is_root() {
        eprintln!("skipped: a full tmpfs queue: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let q = make_queues(dir.path(), 1, 2);
    fs::remove_dir_all(&q[1]).unwrap();
    let mount = match Tmpfs::mount(&q[1], "size=1m,nr_inodes=400,mode=0750") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: a full tmpfs queue: {e}");
            return;
        }
    };
    make_queue(&q[1]);
    for _ in 0..5 {
        put(&q[1], 1000);
    }
    // Fill the bytes, then the inodes, to the last one.
    // trash/, which no queue needs (queue-fix -t), holds the filler.
    let trash = q[1].join("trash");
    fs::create_dir(&trash).unwrap();
    {
        use std::io::Write;
        let mut f = fs::File::create(trash.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
    }
    let mut made = 0;
    while fs::File::create(trash.join(format!("inode{made}"))).is_ok() {
        made += 1;
    }
    assert!(made > 0);
    let args = [
        "--prometheus",
        "--base",
        dir.path().to_str().unwrap(),
        "--count",
        "2",
    ];
    let run = |env: &[(&str, &str)]| {
        let o = queue_stat(&args, env);
        expect_status(&o, 0);
        samples(&text(&o))
    };
    let m = run(&[]);
    let g = |m: &BTreeMap<String, u64>, k: &str| sample(m, &format!("qmail_queue_{k}"));
    assert_eq!(g(&m, "messages{queue=\"queue2\"}"), 5);
    assert_eq!(g(&m, "mess_bytes{queue=\"queue2\"}"), 5000);
    assert_eq!(g(&m, "filesystem_free_bytes{queue=\"queue2\"}"), 0);
    assert_eq!(g(&m, "filesystem_free_inodes{queue=\"queue2\"}"), 0);
    assert_eq!(g(&m, "health{queue=\"queue2\",state=\"low-inodes\"}"), 1);
    assert_eq!(g(&m, "health{queue=\"queue1\",state=\"usable\"}"), 1);
    // Inodes back, bytes still gone: usable without MIN_FREE, below it with.
    for i in 0..made {
        fs::remove_file(trash.join(format!("inode{i}"))).unwrap();
    }
    let m = run(&[]);
    assert_eq!(g(&m, "health{queue=\"queue2\",state=\"usable\"}"), 1);
    assert_eq!(g(&m, "filesystem_free_bytes{queue=\"queue2\"}"), 0);
    let m = run(&[("MIN_FREE", "1")]);
    assert_eq!(g(&m, "health{queue=\"queue2\",state=\"low-space\"}"), 1);
    assert_eq!(g(&m, "health{queue=\"queue1\",state=\"usable\"}"), 1);
    let o = queue_stat(
        &[
            "--check",
            "--base",
            dir.path().to_str().unwrap(),
            "--count",
            "2",
        ],
        &[("MIN_FREE", "1")],
    );
    expect_status(&o, 1);
    assert!(text(&o).contains("below MIN_FREE=1"), "{}", text(&o));
    drop(mount);
}

#[test]
fn messages_delivered_during_the_scan_are_no_error() {
    let dir = tempfile::tempdir().unwrap();
    let q = make_queues(dir.path(), 1, 1).remove(0);
    let inodes: Vec<u64> = (0..4000).map(|_| put(&q, 1)).collect();
    for &i in inodes.iter().step_by(2) {
        preprocess(&q, i, &["remote"]);
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let runs = std::thread::scope(|s| {
        s.spawn(|| {
            // qmail-clean's order: the envelope files, then mess.
            for &i in &inodes {
                for d in ["info", "remote", "intd", "todo", "mess"] {
                    let _ = fs::remove_file(file(&q, d, i));
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut runs = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let o = queue_stat(&["--prometheus", q.to_str().unwrap()], &[]);
            expect_status(&o, 0);
            assert!(
                o.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            runs += 1;
        }
        runs
    });
    eprintln!("{runs} scans while the queue emptied");
    assert!(runs >= 1);
    let m = samples(&text(&queue_stat(
        &["--prometheus", q.to_str().unwrap()],
        &[],
    )));
    assert_eq!(
        sample(
            &m,
            &format!("qmail_queue_messages{{queue=\"{}\"}}", q.display())
        ),
        0
    );
}

#[test]
fn an_unreadable_queue_is_named_and_unknown_to_monitoring() {
    if !is_root() {
        eprintln!("skipped: an unreadable queue: switching to nobody needs root");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: an unreadable queue: setpriv is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let q = make_queues(dir.path(), 1, 1).remove(0);
    put(&q, 1);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |extra: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_queue-stat"))
            .args(extra)
            .arg(&q)
            .env_clear()
            .output()
            .unwrap()
    };
    let o = as_nobody(&[]);
    expect_status(&o, 111);
    let t = text(&o);
    let row = t
        .lines()
        .find(|l| l.contains("unreadable") && l.contains('?'))
        .unwrap_or_else(|| panic!("{t}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert!(
        fields[3] != "-" && fields[4] != "-",
        "free space is still known: {row}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains(q.to_str().unwrap()));
    let o = as_nobody(&["--check"]);
    expect_status(&o, 3);
    assert!(
        text(&o).contains("cannot be read: Permission denied"),
        "{}",
        text(&o)
    );
    let o = as_nobody(&["--prometheus"]);
    expect_status(&o, 111);
    let m = samples(&text(&o));
    assert_eq!(
        sample(
            &m,
            &format!("qmail_queue_readable{{queue=\"{}\"}}", q.display())
        ),
        0
    );
    assert!(m.contains_key(&format!(
        "qmail_queue_filesystem_free_bytes{{queue=\"{}\"}}",
        q.display()
    )));
}

/// `queue-fix --disable`, the real binary, as an administrator does it.
fn set_disabled(queue: &Path, disabled: bool) {
    let o = Command::new(env!("CARGO_BIN_EXE_queue-fix"))
        .arg(if disabled { "--disable" } else { "--enable" })
        .arg(queue)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

#[test]
fn a_disabled_queue_is_shown_as_such_and_is_no_fault() {
    let dir = tempfile::Builder::new()
        .prefix("stat-test")
        .tempdir()
        .unwrap();
    let base = dir.path().to_str().unwrap();
    let q = make_queues(dir.path(), 1, 3);
    put(&q[0], 10);
    // queue2 keeps its mail while disabled: qmail-send still delivers it.
    for _ in 0..3 {
        put(&q[1], 10);
    }
    set_disabled(&q[1], true);

    let o = queue_stat(&["--base", base, "--count", "3"], &[]);
    expect_status(&o, 0);
    let t = text(&o);
    let health_row = |label: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.split_whitespace().next() == Some(label))
            .nth(1)
            .unwrap_or_else(|| panic!("no second row {label} in\n{t}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(health_row("queue1")[..3], ["queue1", "usable", "down"]);
    assert_eq!(health_row("queue2")[..3], ["queue2", "disabled", "down"]);
    assert_eq!(health_row("queue3")[..3], ["queue3", "usable", "down"]);
    assert!(
        t.lines()
            .any(|l| l == format!("queue2: {base}/queue2 is disabled")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().take(2).eq(["queue2", "3"])),
        "its mail is still counted: {t}"
    );

    let o = queue_stat(&["--check", "--base", base, "--count", "3"], &[]);
    expect_status(&o, 0);
    assert!(
        text(&o).starts_with(
            "QMAIL-QUEUE OK - 2 queues usable (disabled: queue2), 4 messages, oldest "
        ),
        "{}",
        text(&o)
    );

    let o = queue_stat(&["--prometheus", "--base", base, "--count", "3"], &[]);
    expect_status(&o, 0);
    let m = samples(&text(&o));
    let health = |n: u32, state: &str| {
        sample(
            &m,
            &format!("qmail_queue_health{{queue=\"queue{n}\",state=\"{state}\"}}"),
        )
    };
    assert_eq!(
        ["usable", "disabled"].map(|s| [health(1, s), health(2, s), health(3, s)]),
        [[1, 0, 1], [0, 1, 0]]
    );
    for state in ["missing", "not-dir", "low-space", "low-inodes", "error"] {
        assert_eq!(health(2, state), 0, "{state}");
    }
    assert_eq!(sample(&m, "qmail_queue_messages{queue=\"queue2\"}"), 3);
    assert_eq!(sample(&m, "qmail_queue_readable{queue=\"queue2\"}"), 1);

    // Every queue disabled: injections fail, so monitoring must alert.
    set_disabled(&q[0], true);
    set_disabled(&q[2], true);
    let o = queue_stat(&["--check", "--base", base, "--count", "3"], &[]);
    expect_status(&o, 2);
    assert!(
        text(&o).starts_with("QMAIL-QUEUE CRITICAL - no queue is usable"),
        "{}",
        text(&o)
    );
    // Enabled again: plain usable queues.
    for queue in &q {
        set_disabled(queue, false);
    }
    let o = queue_stat(&["--check", "--base", base, "--count", "3"], &[]);
    expect_status(&o, 0);
    assert!(
        text(&o).starts_with("QMAIL-QUEUE OK - 3 queues usable, 4 messages, oldest "),
        "{}",
        text(&o)
    );
}

/// Deposits one message as IndiMail 3.x's qmail-queue does under
/// `BIGTODO=0`: `todo/<inode>` and `intd/<inode>` flat.
fn put_flat(queue: &Path) -> u64 {
    let env = Envelope {
        sender: b"sender@example.org".to_vec(),
        recipients: vec![b"rcpt@example.net".to_vec()],
    };
    let opts = DepositOptions {
        layout: qmail_multi::queue::layout::Layout {
            big_todo: false,
            ..qmail_multi::queue::layout::Layout::new(SPLIT)
        },
        sync: false,
        received_line: false,
    };
    deposit(queue, &mut &b"flat"[..], &env, opts).expect("deposit")
}

/// A queue made by the real queue-fix with `BIGTODO=0`.
fn make_flat_queue(q: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_queue-fix"))
        .env("BIGTODO", "0")
        .args(["--as-invoker", "-s", &SPLIT.to_string()])
        .arg(q)
        .output()
        .unwrap();
    assert!(
        q.join("todo").is_dir() && !q.join("todo/0").exists(),
        "{o:?}"
    );
}

#[test]
fn a_flat_todo_is_counted_and_a_layout_bigtodo_does_not_choose_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("queue1");
    make_flat_queue(&q);
    for _ in 0..150 {
        put_flat(&q);
    }
    let qs = q.to_str().unwrap();
    let prom = |env: &[(&str, &str)]| {
        let o = queue_stat(&["--prometheus", qs], env);
        expect_status(&o, 0);
        samples(&text(&o))
    };
    let g = |m: &BTreeMap<String, u64>, k: &str| {
        sample(m, &format!("qmail_queue_{k}{{queue=\"{qs}\"}}"))
    };
    // As the services of a 3.x installation see it.
    let m = prom(&[("BIGTODO", "0")]);
    assert_eq!(g(&m, "messages"), 150);
    assert_eq!(g(&m, "unpreprocessed_messages"), 150);
    assert_eq!(g(&m, "misplaced_todo_messages"), 0);
    let o = queue_stat(&["--check", qs], &[("BIGTODO", "0")]);
    expect_status(&o, 0);
    // BIGTODO set nowhere: the todo is read as it is laid out, as
    // queue-fix then keeps it (queue::settings); nothing is misplaced.
    let m = prom(&[]);
    assert_eq!(g(&m, "unpreprocessed_messages"), 150);
    assert_eq!(g(&m, "misplaced_todo_messages"), 0);
    // BIGTODO=1: the flat files are still counted, and named as what
    // qmail-send would not see.
    let one = [("BIGTODO", "1")];
    let m = prom(&one);
    assert_eq!(g(&m, "unpreprocessed_messages"), 150);
    assert_eq!(g(&m, "misplaced_todo_messages"), 150);
    let o = queue_stat(&[qs], &one);
    expect_status(&o, 0);
    assert!(
        text(&o).contains("150 messages waiting in a flat todo/intd although BIGTODO=1"),
        "{}",
        text(&o)
    );
    let o = queue_stat(&["--check", qs], &one);
    expect_status(&o, 1);
    assert!(text(&o).contains("although BIGTODO=1"), "{}", text(&o));

    // A split queue under BIGTODO=0: its numbered todo subdirectories are
    // counted too, never 0.
    let s = dir.path().join("queue2");
    make_queue(&s);
    for _ in 0..5 {
        put(&s, 1);
    }
    let ss = s.to_str().unwrap();
    let o = queue_stat(&["--prometheus", ss], &[("BIGTODO", "0")]);
    expect_status(&o, 0);
    let m = samples(&text(&o));
    let g = |k: &str| sample(&m, &format!("qmail_queue_{k}{{queue=\"{ss}\"}}"));
    assert_eq!(
        [g("unpreprocessed_messages"), g("misplaced_todo_messages")],
        [5, 5]
    );
    let o = queue_stat(&[ss], &[("BIGTODO", "0")]);
    assert!(
        text(&o).contains("5 messages waiting in a split todo/intd although BIGTODO=0"),
        "{}",
        text(&o)
    );
    // A bad setting is named, as queue-fix names it.
    let o = queue_stat(&[ss], &[("BIGTODO", "2")]);
    expect_status(&o, 111);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("BIGTODO \"2\""),
        "{o:?}"
    );
}

#[test]
fn a_queue_without_a_real_mess_directory_is_unreadable_never_ok_with_0() {
    let dir = tempfile::tempdir().unwrap();
    let q = make_queues(dir.path(), 1, 3);
    put(&q[0], 1);
    fs::remove_dir_all(q[1].join("mess")).unwrap();
    // A symlink to a real, full mess directory is not followed.
    fs::remove_dir_all(q[2].join("mess")).unwrap();
    std::os::unix::fs::symlink(q[0].join("mess"), q[2].join("mess")).unwrap();
    let base = dir.path().to_str().unwrap();
    let o = queue_stat(&["--base", base, "--count", "3"], &[]);
    expect_status(&o, 111);
    let t = text(&o);
    for (label, why) in [
        ("queue2", "mess: missing"),
        ("queue3", "mess: a symbolic link"),
    ] {
        assert!(
            t.lines()
                .any(|l| l.starts_with(&format!("{label} ")) && l.contains("(unreadable)")),
            "{t}"
        );
        assert!(t.contains(&format!("{label}: cannot read: {why}")), "{t}");
    }
    let o = queue_stat(&["--check", "--base", base, "--count", "3"], &[]);
    expect_status(&o, 3);
    assert!(
        text(&o).contains("queue2 cannot be read: mess: missing"),
        "{}",
        text(&o)
    );
    let o = queue_stat(&["--prometheus", "--base", base, "--count", "3"], &[]);
    expect_status(&o, 111);
    let m = samples(&text(&o));
    assert_eq!(sample(&m, "qmail_queue_readable{queue=\"queue1\"}"), 1);
    assert_eq!(sample(&m, "qmail_queue_readable{queue=\"queue2\"}"), 0);
    assert_eq!(sample(&m, "qmail_queue_readable{queue=\"queue3\"}"), 0);
    assert!(!m.contains_key("qmail_queue_messages{queue=\"queue3\"}"));
}

#[test]
fn a_pipe_in_operator_text_never_starts_the_perfdata() {
    let dir = tempfile::tempdir().unwrap();
    // A queue whose path holds `|` and a forged perfdata, unreadable (no
    // mess), so the path appears in the status text; and a base holding
    // one, so the configuration error names it.
    let q = dir.path().join("q| messages=0;;;0;");
    make_queue(&q);
    fs::remove_dir_all(q.join("mess")).unwrap();
    let o = queue_stat(&["--check", q.to_str().unwrap()], &[]);
    expect_status(&o, 3);
    let line = text(&o);
    assert_eq!(line.matches('|').count(), 1, "{line}");
    assert!(line.contains("q\\x7c messages=0"), "{line}");
    let (status, perf) = line.split_once('|').unwrap();
    assert!(status.starts_with("QMAIL-QUEUE UNKNOWN - "), "{line}");
    assert!(perf.starts_with(" messages=0;"), "{line}");
    let o = queue_stat(&["--check"], &[("QUEUE_COUNT", "1| queues=0;;;0;")]);
    expect_status(&o, 3);
    let line = text(&o);
    assert!(
        line.starts_with("QMAIL-QUEUE UNKNOWN - QUEUE_COUNT="),
        "{line}"
    );
    assert!(!line.contains('|') && line.contains("\\x7c"), "{line}");
}

#[test]
fn special_queues_are_rows_and_never_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    make_queues(base, 1, 2);
    for name in ["nqueue", "slowq", "qmta"] {
        make_queue(&base.join(name));
    }
    put(&base.join("slowq"), 7);
    put(&base.join("slowq"), 7);
    put(&base.join("nqueue"), 3);
    make_queue(&base.join("queue3"));
    put(&base.join("queue3"), 1);
    let b = base.to_str().unwrap();
    let o = queue_stat(&["--prometheus", "--base", b, "--count", "2"], &[]);
    expect_status(&o, 0);
    let prom = text(&o);
    let m = samples(&prom);
    assert_eq!(sample(&m, "qmail_queue_messages{queue=\"slowq\"}"), 2);
    assert_eq!(sample(&m, "qmail_queue_messages{queue=\"nqueue\"}"), 1);
    assert_eq!(sample(&m, "qmail_queue_messages{queue=\"qmta\"}"), 0);
    assert_eq!(
        sample(&m, "qmail_queue_orphan_messages{queue=\"queue3\"}"),
        1
    );
    for special in ["nqueue", "slowq", "qmta"] {
        assert!(
            !m.contains_key(&format!(
                "qmail_queue_orphan_messages{{queue=\"{special}\"}}"
            )),
            "{prom}"
        );
    }
    let o = queue_stat(&["--base", b, "--count", "2"], &[]);
    let t = text(&o);
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().take(2).eq(["slowq", "2"])),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().take(2).eq(["total", "3"])),
        "{t}"
    );
    // Absent special queues are no rows.
    fs::remove_dir_all(base.join("qmta")).unwrap();
    let o = queue_stat(&["--base", b, "--count", "2"], &[]);
    assert!(!text(&o).contains("qmta"), "{}", text(&o));
}

/// Runs queue-stat as root in a mount namespace of its own, with a fresh
/// tmpfs on /dev/shm holding exactly `segments` (name, C ints), as
/// qscheduler makes them: root's, mode 0644. The host's /dev/shm is never
/// touched. `None` when the namespace cannot be had.
fn with_segments(
    segments: &[(&str, Vec<i32>)],
    running: bool,
    args: &[&str],
    env: &[(&str, &str)],
) -> Option<Output> {
    if !is_root() {
        eprintln!("skipped: qscheduler segments: a private /dev/shm needs root");
        return None;
    }
    let segs = tempfile::tempdir().unwrap();
    for (name, ints) in segments {
        let bytes: Vec<u8> = ints.iter().flat_map(|i| i.to_ne_bytes()).collect();
        let p = segs.path().join(name);
        fs::write(&p, bytes).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: qscheduler segments: unshare --mount failed");
        return None;
    }
    // qscheduler runs while it holds an exclusive flock on
    // QMAILHOME/queue/qscheduler: the exec'd queue-stat inherits it (fd 9).
    let home = segs.path().join("qmailhome");
    fs::create_dir_all(home.join("queue")).unwrap();
    let lock = if running {
        "exec 9>\"$QMAILHOME/queue/qscheduler\" && flock -x 9 || exit 99; "
    } else {
        ""
    };
    let script = format!(
        "mount -t tmpfs -o mode=1777 tmpfs /dev/shm || exit 99; \
         cp -p \"$0\"/q* /dev/shm/ 2>/dev/null; {lock}exec \"$@\""
    );
    Some(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(segs.path())
            .arg(env!("CARGO_BIN_EXE_queue-stat"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("QMAILHOME", &home)
            .envs(env.iter().copied())
            .output()
            .unwrap(),
    )
}

#[test]
fn qschedulers_concurrency_and_grown_queues_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let q = make_queues(base, 1, 4);
    put(&q[2], 1); // queue3: grown by qscheduler, served
    put(&q[3], 1); // queue4: beyond what qscheduler serves: an orphan
    let b = base.to_str().unwrap();
    let env = [
        ("QUEUE_BASE", b),
        ("QUEUE_COUNT", "2"),
        ("DYNAMIC_QUEUE", "1"),
    ];
    // qscheduler: 3 queues in use (4 directories); queue2 disabled.
    let segments = [
        ("qscheduler", vec![3, 4]),
        ("queue1", vec![2, 5, 10, 20, 0]),
        ("queue2", vec![0, 0, 10, 20, 1]),
        ("queue3", vec![1, 0, 8, 16, 0]),
    ];
    let Some(o) = with_segments(&segments, true, &["--prometheus"], &env) else {
        return;
    };
    expect_status(&o, 0);
    let prom = text(&o);
    let m = samples(&prom);
    let c = |metric: &str, queue: &str, delivery: &str| {
        sample(
            &m,
            &format!("qmail_queue_scheduler_concurrency_{metric}{{queue=\"{queue}\",delivery=\"{delivery}\"}}"),
        )
    };
    assert_eq!(
        [
            c("used", "queue1", "local"),
            c("used", "queue1", "remote"),
            c("max", "queue1", "local"),
            c("max", "queue1", "remote")
        ],
        [2, 5, 10, 20]
    );
    assert_eq!(
        [c("used", "queue3", "local"), c("max", "queue3", "remote")],
        [1, 16]
    );
    let d = |queue: &str| {
        sample(
            &m,
            &format!("qmail_queue_scheduler_disabled{{queue=\"{queue}\"}}"),
        )
    };
    assert_eq!([d("queue1"), d("queue2"), d("queue3")], [0, 1, 0]);
    // queue3 is in service (a row), queue4 is not (an orphan).
    assert_eq!(sample(&m, "qmail_queue_messages{queue=\"queue3\"}"), 1);
    assert!(
        !m.contains_key("qmail_queue_orphan_messages{queue=\"queue3\"}"),
        "{prom}"
    );
    assert_eq!(
        sample(&m, "qmail_queue_orphan_messages{queue=\"queue4\"}"),
        1
    );
    promtool(&prom);

    let o = with_segments(&segments, true, &[], &env).unwrap();
    expect_status(&o, 0);
    let t = text(&o);
    let row = |label: &str| -> Vec<String> {
        t.lines()
            .rfind(|l| l.split_whitespace().next() == Some(label))
            .unwrap_or_else(|| panic!("no row {label} in\n{t}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("queue1"), ["queue1", "2/10", "5/20", "enabled"], "{t}");
    assert_eq!(row("queue2"), ["queue2", "0/10", "0/20", "disabled"], "{t}");
    assert_eq!(row("queue3"), ["queue3", "1/8", "0/16", "enabled"], "{t}");
    assert!(t.contains("grown by qscheduler"), "{t}");
    assert!(t.contains("orphan: queue4 holds 1 message"), "{t}");
    assert!(!t.contains("orphan: queue3"), "{t}");
    for line in t.lines() {
        assert!(line.chars().count() < 80, "{line:?}");
    }

    // Without segments: no such table, no such metrics, queue3 an orphan.
    let o = with_segments(&[], false, &["--prometheus"], &env).unwrap();
    expect_status(&o, 0);
    let m = samples(&text(&o));
    assert!(!m.keys().any(|k| k.contains("scheduler")), "{}", text(&o));
    assert_eq!(
        sample(&m, "qmail_queue_orphan_messages{queue=\"queue3\"}"),
        1
    );
    // The same segments left by a qscheduler that no longer runs: queue3
    // has no qmail-send, so it is an orphan again.
    let o = with_segments(&segments, false, &["--prometheus"], &env).unwrap();
    expect_status(&o, 0);
    let m = samples(&text(&o));
    assert_eq!(
        sample(&m, "qmail_queue_orphan_messages{queue=\"queue3\"}"),
        1
    );
    // A short segment is named in the table, never an error.
    let short = [("qscheduler", vec![3, 4]), ("queue1", vec![1, 2])];
    let o = with_segments(&short, true, &[], &env).unwrap();
    expect_status(&o, 0);
    assert!(
        text(&o).contains("qscheduler: not shown: /dev/shm/queue1 is too short"),
        "{}",
        text(&o)
    );
}

/// `promtool check metrics` on a Prometheus text, when installed.
fn promtool(prom: &str) {
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Err(e) => eprintln!("skipped: promtool check metrics: promtool not installed ({e})"),
        Ok(mut p) => {
            use std::io::Write;
            p.stdin.take().unwrap().write_all(prom.as_bytes()).unwrap();
            let r = p.wait_with_output().unwrap();
            assert!(
                r.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr)
            );
        }
    }
}

/// A queue split 40 ways with more than a chunk of entries in every
/// bucket: read in three groups of buckets, several turns each (see
/// `src/stat/scan.rs`), every file is counted once and nothing else is.
#[test]
fn buckets_read_in_step_count_every_file_once() {
    const SPLIT_WIDE: u64 = 40;
    const MESSAGES: u64 = 40 * 300;
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("queue1");
    let made = Command::new(env!("CARGO_BIN_EXE_queue-fix"))
        .args(["--as-invoker", "-s", &SPLIT_WIDE.to_string()])
        .arg(&q)
        .output()
        .unwrap();
    assert_eq!(made.status.code(), Some(0), "{made:?}");
    let at = |d: &str, n: u64| {
        q.join(d)
            .join((n % SPLIT_WIDE).to_string())
            .join(n.to_string())
    };
    let (mut bytes, mut remote, mut local, mut waiting) = (0, 0, 0, 0);
    for i in 0..MESSAGES {
        let n = 1_000_000 + i;
        let size = (i % 97) as usize;
        fs::write(at("mess", n), vec![b'm'; size]).unwrap();
        bytes += size as u64;
        match i % 10 {
            // Waiting to be preprocessed: a todo/intd pair (one inode,
            // counted once) or an injection in progress (intd alone).
            0 => {
                fs::write(at("intd", n), "x").unwrap();
                fs::hard_link(at("intd", n), at("todo", n)).unwrap();
                waiting += 1;
            }
            1 => {
                fs::write(at("intd", n), "x").unwrap();
                waiting += 1;
            }
            2 => {
                fs::write(at("local", n), "x").unwrap();
                local += 1;
            }
            _ => {
                fs::write(at("remote", n), "x").unwrap();
                remote += 1;
            }
        }
    }
    // Neither is a message: a pipe and a directory among the files.
    let fifo = at("mess", 999);
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    fs::create_dir(at("mess", 998)).unwrap();

    let out = queue_stat(&["--prometheus", q.to_str().unwrap()], &[]);
    expect_status(&out, 0);
    let m = samples(&text(&out));
    let key = |name: &str| format!("{name}{{queue=\"{}\"}}", q.display());
    assert_eq!(sample(&m, &key("qmail_queue_messages")), MESSAGES);
    assert_eq!(sample(&m, &key("qmail_queue_mess_bytes")), bytes);
    assert_eq!(
        sample(&m, &key("qmail_queue_unpreprocessed_messages")),
        waiting
    );
    assert_eq!(
        sample(&m, &key("qmail_queue_local_pending_messages")),
        local
    );
    assert_eq!(
        sample(&m, &key("qmail_queue_remote_pending_messages")),
        remote
    );
}
