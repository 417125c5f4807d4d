//! BIGTODO: flat `todo`/`intd` (IndiMail 3.x's default) checked, repaired,
//! converted both ways (also killed and rerun) and retired into, through
//! the real queue-fix and the real test depositor.

mod fix_support;
use fix_support::*;
use qmail_multi::queue::layout::Layout;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const INV: &str = "--as-invoker";
const SPLIT: u32 = 23;

/// queue-fix with `BIGTODO` set as given.
fn qf(big_todo: bool, args: &[&str]) -> std::process::Output {
    let mut a = vec![INV, "-s", "23"];
    a.extend_from_slice(args);
    run_env(&a, &[("BIGTODO", if big_todo { "1" } else { "0" })])
}

#[track_caller]
fn qf_expect(big_todo: bool, args: &[&str], status: i32) -> std::process::Output {
    let o = qf(big_todo, args);
    assert_eq!(
        code(&o),
        status,
        "BIGTODO={} queue-fix {args:?}\nstdout:\n{}\nstderr:\n{}",
        u8::from(big_todo),
        out(&o),
        err(&o)
    );
    o
}

/// A repair: it leaves the queue correct, so it exits 0 (what IndiMail
/// 3.x's callers require); the `-N` after it checks the queue again.
#[track_caller]
fn repair(big_todo: bool, args: &[&str]) {
    let o = qf(big_todo, args);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(!err(&o).contains("fatal"), "{}", err(&o));
}

/// `n` messages written as qmail-queue writes them under this `BIGTODO`.
fn fill_as(q: &Path, n: usize, big_todo: bool) -> Vec<u64> {
    let layout = Layout {
        big_todo,
        ..Layout::new(SPLIT)
    };
    fill_layout(q, n, layout)
}

/// Where the configured layout puts message `ino`'s file in `dir`.
fn at(q: &Path, dir: &str, ino: u64, big_todo: bool) -> PathBuf {
    let split_dir = big_todo || !matches!(dir, "todo" | "intd");
    let mut p = q.join(dir);
    if split_dir {
        p.push((ino % u64::from(SPLIT)).to_string());
    }
    p.join(ino.to_string())
}

/// Every message of the queue as `(mess, todo)` content hashes, sorted,
/// checking on the way that each `mess` is named by its inode and that
/// its todo and intd files are exactly where this `BIGTODO` puts them
/// (nowhere else: a count of every file in todo and intd), one inode.
#[track_caller]
fn pending(q: &Path, big_todo: bool) -> Vec<(u64, u64)> {
    let mut v = Vec::new();
    for sub in std::fs::read_dir(q.join("mess")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let ino = f.metadata().unwrap().ino();
            assert_eq!(f.file_name().to_str(), Some(&*ino.to_string()));
            let (todo, intd) = (at(q, "todo", ino, big_todo), at(q, "intd", ino, big_todo));
            let (t, i) = (todo.metadata().unwrap(), intd.metadata().unwrap());
            assert_eq!(t.ino(), i.ino(), "{}: todo/intd pair split", todo.display());
            assert_eq!(t.nlink(), 2);
            v.push((
                hash_of(&std::fs::read(f.path()).unwrap()),
                hash_of(&std::fs::read(&todo).unwrap()),
            ));
        }
    }
    for dir in ["todo", "intd"] {
        let (mut files, mut subdirs) = (0, 0);
        for e in std::fs::read_dir(q.join(dir)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                subdirs += 1;
                files += std::fs::read_dir(e.path()).unwrap().count();
            } else {
                files += 1;
            }
        }
        assert_eq!(files, v.len(), "{dir}: files not of a message");
        let want = if big_todo { SPLIT as usize } else { 0 };
        assert_eq!(subdirs, want, "{dir}: numbered subdirectories");
    }
    assert!(!q.join("quarantine").exists(), "something was quarantined");
    v.sort_unstable();
    v
}

/// The test depositor, as a 3.x qmail-queue under `BIGTODO=0`.
fn depositor() -> Option<PathBuf> {
    let p = Path::new(bin())
        .parent()
        .unwrap()
        .join("examples/test-qmail-queue");
    p.exists().then_some(p)
}

#[test]
fn a_3x_queue_holding_46_flat_pending_messages_is_clean_and_kept() {
    let (_t, dir) = scratch();
    let q = dir.join("queue1");
    qf(false, &[s(&q)]);
    for d in ["todo", "intd"] {
        assert_eq!(std::fs::read_dir(q.join(d)).unwrap().count(), 0, "{d}");
    }
    // The depositor binary with BIGTODO=0, as the 3.x qmail-queue.
    let Some(depositor) = depositor() else {
        return skip(
            "flat pending mail",
            "examples/test-qmail-queue is not built (cargo build --examples)",
        );
    };
    let env = dir.join("envelope");
    std::fs::write(&env, b"Fa@example.org\0Tb@example.net\0\0").unwrap();
    for i in 0..46 {
        let mut c = Command::new(&depositor)
            .env("QUEUEDIR", &q)
            .env("CONFSPLIT", "23")
            .env("BIGTODO", "0")
            .stdin(Stdio::piped())
            .stdout(std::fs::File::open(&env).unwrap())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = c.stdin.take().unwrap();
        write!(stdin, "Subject: {i}\n\nbody\n").unwrap();
        drop(stdin);
        assert!(c.wait().unwrap().success());
    }
    let before = pending(&q, false);
    assert_eq!(before.len(), 46);
    let o = qf_expect(false, &["-N", s(&q)], 0);
    assert_eq!(after_settings(&o) + &err(&o), "");
    let snap = snapshot(&q);
    qf_expect(false, &[s(&q)], 0);
    assert_eq!(snapshot(&q), snap, "a clean flat queue was changed");
    // A flat todo file with a wrong mode is fixed, one whose mess is gone
    // (older than qmail-send's 36 hours) set aside: the rules of split.
    let ino = std::fs::read_dir(q.join("todo"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let todo = q.join("todo").join(&ino);
    std::fs::set_permissions(&todo, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let stray = q.join("intd/999999999");
    std::fs::write(&stray, "").unwrap();
    // The todo file and its intd partner (one inode): two chmods, a stray.
    qf_expect(false, &["-N", s(&q)], 3);
    repair(false, &[s(&q)]);
    assert_eq!(todo.metadata().unwrap().mode() & 0o7777, 0o644);
    assert!(!stray.exists() && q.join("quarantine/intd_999999999").exists());
    std::fs::remove_dir_all(q.join("quarantine")).unwrap();
    assert_eq!(pending(&q, false), before);
    // Under BIGTODO=1 the same queue is one problem naming the setting.
    let o = qf_expect(true, &["-N", s(&q)], 1);
    assert_eq!(after_settings(&o), "", "no per-file or per-directory plan");
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("todo, intd: flat on disk, but BIGTODO=1") && e.contains("BIGTODO=0"),
        "{e}"
    );
}

#[test]
fn conversion_both_ways_keeps_every_message_where_the_layout_puts_it() {
    let (_t, dir) = scratch();
    let q = dir.join("q");
    qf(true, &[s(&q)]);
    fill_as(&q, 200, true);
    let before = pending(&q, true);
    // A split todo under BIGTODO=0: one problem, nothing changed by -N.
    let snap = snapshot(&q);
    let o = qf_expect(false, &["-N", s(&q)], 1);
    assert!(
        err(&o).contains("todo, intd: split on disk, but BIGTODO=0 (flat)"),
        "{}",
        err(&o)
    );
    assert_eq!(snapshot(&q), snap);
    repair(false, &[s(&q)]);
    assert_eq!(pending(&q, false), before);
    qf_expect(false, &["-N", s(&q)], 0);
    // Mail that arrives flat meanwhile converts back with the rest.
    fill_as(&q, 20, false);
    let before = pending(&q, false);
    repair(true, &[s(&q)]);
    assert_eq!(pending(&q, true), before);
    qf_expect(true, &["-N", s(&q)], 0);
}

#[test]
fn a_conversion_killed_anywhere_and_rerun_loses_and_doubles_nothing() {
    std::env::set_var("QUEUE_FIX_UNSAFE_NO_FSYNC", "1");
    let (_t, dir) = scratch();
    let q = dir.join("q");
    qf(true, &[s(&q)]);
    fill_as(&q, 300, true);
    let before = pending(&q, true);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("conversion kill test: seed {seed}");
    let mut x = seed;
    let mut cut = 0;
    for round in 0..24u32 {
        let big_todo = round % 2 == 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // About 2 changes per message, plus the subdirectories.
        let n = (x % 700).to_string();
        let o = run_env(
            &[INV, "-s", "23", s(&q)],
            &[
                ("BIGTODO", if big_todo { "1" } else { "0" }),
                ("QUEUE_FIX_CRASH_AFTER", &n),
            ],
        );
        cut += u32::from(o.status.code().is_none());
        repair(big_todo, &[s(&q)]);
        assert_eq!(
            pending(&q, big_todo),
            before,
            "round {round}, crash after {n}"
        );
        qf_expect(big_todo, &["-N", s(&q)], 0);
    }
    assert!(cut >= 12, "only {cut} of 24 runs were cut short");
}

#[test]
fn retiring_into_flat_and_into_split_destinations() {
    for (orphan_big, dest_big) in [(false, false), (true, false), (false, true)] {
        let (_t, base) = scratch();
        let (q1, q2) = (base.join("queue1"), base.join("queue2"));
        qf(dest_big, &[s(&q1)]);
        qf(orphan_big, &[s(&q2)]);
        fill_as(&q1, 5, dest_big);
        fill_as(&q2, 40, orphan_big);
        let mut want = pending(&q1, dest_big);
        want.extend(pending(&q2, orphan_big));
        want.sort_unstable();
        let args = ["--base", s(&base), "--count", "1", "--retire"];
        repair(dest_big, &args);
        assert_eq!(pending(&q1, dest_big), want, "{orphan_big} -> {dest_big}");
        assert_eq!(std::fs::read_dir(q1.join("pid")).unwrap().count(), 0);
        qf_expect(dest_big, &["--base", s(&base), "--count", "1", "-N"], 0);
    }
}

#[test]
fn a_live_queue_is_converted_only_with_force() {
    if Command::new("flock").arg("--version").output().is_err() {
        return skip("live conversion", "flock(1) is not installed");
    }
    let (_t, dir) = scratch();
    let q = dir.join("q");
    qf(true, &[s(&q)]);
    fill_as(&q, 30, true);
    let before = pending(&q, true);
    let mut holder = Command::new("flock")
        .args(["--no-fork", "-x", s(&q.join("lock/sendmutex"))])
        .args(["sh", "-c", "echo locked; exec sleep 30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "locked\n");
    let snap = snapshot(&q);
    let o = qf_expect(false, &[s(&q)], 112);
    assert!(err(&o).contains("live"), "{}", err(&o));
    assert_eq!(snapshot(&q), snap, "a live queue was converted");
    repair(false, &["--force", s(&q)]);
    assert_eq!(pending(&q, false), before);
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn a_misnamed_message_moves_with_its_flat_todo_and_intd() {
    let (_t, dir) = scratch();
    let q = dir.join("q");
    qf(false, &[s(&q)]);
    let inos = fill_as(&q, 10, false);
    let before = pending(&q, false);
    for &i in &inos[..4] {
        let wrong = i + 1_000_003;
        let sub = |n: u64| (n % u64::from(SPLIT)).to_string();
        std::fs::rename(
            q.join("mess").join(sub(i)).join(i.to_string()),
            q.join("mess").join(sub(wrong)).join(wrong.to_string()),
        )
        .unwrap();
        for d in ["todo", "intd"] {
            let p = q.join(d);
            std::fs::rename(p.join(i.to_string()), p.join(wrong.to_string())).unwrap();
        }
    }
    let o = qf_expect(false, &["-N", s(&q)], 4);
    assert!(out(&o).contains("/todo/"), "{}", out(&o));
    repair(false, &[s(&q)]);
    assert_eq!(pending(&q, false), before);
    qf_expect(false, &["-N", s(&q)], 0);
}

/// Unmounts on drop.
struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A message of inode 5 under split 23 has the flat name `todo/5` and the
/// split name `todo/5/5`: the file and the directory swap places both
/// ways, also when killed. Inodes that low come from a fresh tmpfs.
#[test]
fn messages_named_like_subdirectories_convert_both_ways_even_killed() {
    if !is_root() {
        return skip("inodes below the split", "mounting a tmpfs needs root");
    }
    let (_t, dir) = scratch();
    let m = dir.join("m");
    std::fs::create_dir(&m).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs", s(&m)])
        .status()
        .is_ok_and(|st| st.success());
    if !ok {
        return skip("inodes below the split", "mount -t tmpfs failed");
    }
    let _mount = Mount(m.clone());
    let q = m.join("q");
    std::fs::create_dir_all(q.join("pid")).unwrap();
    // The first files of the file system: their inodes are its lowest.
    let mut low = Vec::new();
    for i in 0..6 {
        let p = q.join("pid").join(i.to_string());
        std::fs::write(&p, format!("Subject: low {i}\n\nbody\n")).unwrap();
        low.push((p.clone(), p.metadata().unwrap().ino()));
    }
    if low.iter().any(|&(_, ino)| ino >= u64::from(SPLIT)) {
        return skip("inodes below the split", "this tmpfs numbers inodes high");
    }
    qf(false, &[s(&q)]);
    for (p, ino) in &low {
        let name = ino.to_string();
        let sub = (ino % u64::from(SPLIT)).to_string();
        std::fs::hard_link(p, q.join("mess").join(sub).join(&name)).unwrap();
        std::fs::remove_file(p).unwrap();
        let intd = q.join("intd").join(&name);
        std::fs::write(&intd, format!("u0\0p1\0Fa@b\0Tlow{name}@c\0\0")).unwrap();
        std::fs::hard_link(&intd, q.join("todo").join(&name)).unwrap();
    }
    fill_as(&q, 30, false);
    let before = pending(&q, false);
    for big_todo in [true, false] {
        repair(big_todo, &[s(&q)]);
        assert_eq!(pending(&q, big_todo), before, "to BIGTODO={big_todo}");
        qf_expect(big_todo, &["-N", s(&q)], 0);
    }
    std::env::set_var("QUEUE_FIX_UNSAFE_NO_FSYNC", "1");
    for round in 0..40u32 {
        let big_todo = round % 2 == 0;
        let n = (u64::from(round) * 7 % 160).to_string();
        run_env(
            &[INV, "-s", "23", s(&q)],
            &[
                ("BIGTODO", if big_todo { "1" } else { "0" }),
                ("QUEUE_FIX_CRASH_AFTER", &n),
            ],
        );
        repair(big_todo, &[s(&q)]);
        assert_eq!(
            pending(&q, big_todo),
            before,
            "round {round}, crash after {n}"
        );
        qf_expect(big_todo, &["-N", s(&q)], 0);
    }
}
