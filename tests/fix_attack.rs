//! queue-fix against an attacker who owns a qmail account (and so can write
//! into the queue): hard links, hostile names, wrong file types, symlinks,
//! permutations of names; plus the durability of moves (system calls
//! recorded with strace) and a whole-base check racing real injections.

mod fix_support;
use fix_support::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INV: &str = "--as-invoker";

fn q_args<'a>(q: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![INV, "-s", "7"];
    v.extend_from_slice(extra);
    v.push(s(q));
    v
}

/// Split 7 over the range queue1..queue`count` of `base`.
fn base_args<'a>(base: &'a Path, count: &'a str) -> [&'a str; 7] {
    ["-s", "7", INV, "--base", s(base), "--count", count]
}

/// A queue of split 7 holding `n` messages.
fn queue_with(dir: &Path, n: usize) -> (PathBuf, Vec<u64>) {
    let q = dir.join("q");
    run(&[INV, "-s", "7", s(&q)]);
    let inos = fill(&q, n, 7);
    (q, inos)
}

fn at(q: &Path, d: &str, ino: u64) -> PathBuf {
    q.join(d).join((ino % 7).to_string()).join(ino.to_string())
}

/// A tree outside the queue an attacker would like root to change: files
/// of distinctive modes (and, as root, a distinctive owner).
fn victim_tree(dir: &Path, files: usize) -> PathBuf {
    let v = dir.join("victim");
    std::fs::create_dir_all(v.join("sub")).unwrap();
    for i in 0..files {
        let p = v.join(format!("f{i}"));
        std::fs::write(&p, format!("secret {i}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    std::fs::write(v.join("sub/inner"), "inner\n").unwrap();
    std::fs::set_permissions(v.join("sub"), std::fs::Permissions::from_mode(0o711)).unwrap();
    if is_root() {
        for e in walk_all(&v) {
            std::os::unix::fs::lchown(&e, Some(4321), Some(4321)).unwrap();
        }
    }
    v
}

fn walk_all(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![p.to_owned()];
    if std::fs::symlink_metadata(p).unwrap().is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            out.extend(walk_all(&e.unwrap().path()));
        }
    }
    out
}

fn quarantined(q: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(q.join("quarantine"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn hard_links_to_outside_files_are_never_changed_and_set_aside_or_reported() {
    let (_t, dir) = scratch();
    let (q, inos) = queue_with(&dir, 8);
    let victim = victim_tree(&dir, 12);
    let f = |i: usize| victim.join(format!("f{i}"));
    // The layout's own files: replaced by links to victims.
    for (i, name) in ["lock/sendmutex", "lock/tcpto"].iter().enumerate() {
        std::fs::remove_file(q.join(name)).unwrap();
        std::fs::hard_link(f(i), q.join(name)).unwrap();
    }
    // Message files of existing messages: links to victims.
    let planted = [
        ("info", inos[0]),
        ("local", inos[1]),
        ("remote", inos[2]),
        ("intd", inos[3]), // its todo is the real one: unpaired
    ];
    for (i, (d, ino)) in planted.iter().enumerate() {
        let p = at(&q, d, *ino);
        let _ = std::fs::remove_file(&p);
        std::fs::hard_link(f(2 + i), &p).unwrap();
    }
    std::fs::hard_link(f(6), q.join("bounce").join(inos[4].to_string())).unwrap();
    // A "message" that is a victim: named by the victim's own inode.
    let vino = std::fs::metadata(f(7)).unwrap().ino();
    std::fs::create_dir_all(at(&q, "mess", vino).parent().unwrap()).unwrap();
    std::fs::hard_link(f(7), at(&q, "mess", vino)).unwrap();
    let snap = snapshot(&victim);
    let o = run(&q_args(&q, &[]));
    assert!((1..=99).contains(&code(&o)), "{}\n{}", out(&o), err(&o));
    assert_eq!(snapshot(&victim), snap, "a file outside the queue changed");
    assert!(err(&o).contains("hard links"), "{}", err(&o));
    // Set aside (renamed: the victim keeps its other name), made anew.
    let aside = quarantined(&q);
    for name in ["lock_sendmutex", "lock_tcpto"] {
        assert!(aside.contains(&name.to_string()), "{aside:?}");
    }
    for (d, ino) in &planted[..3] {
        let name = format!("{d}_{}_{ino}", ino % 7);
        assert!(aside.contains(&name), "{name} not in {aside:?}");
    }
    assert!(aside.contains(&format!("bounce_{}", inos[4])), "{aside:?}");
    assert_eq!(std::fs::metadata(q.join("lock/tcpto")).unwrap().len(), 2048);
    assert_eq!(std::fs::metadata(q.join("lock/tcpto")).unwrap().nlink(), 1);
    // The unpaired intd and the victim named as a message: reported and
    // left alone, run after run.
    let o = run(&q_args(&q, &[]));
    assert_eq!(snapshot(&victim), snap);
    assert!(
        err(&o).contains(&format!("mess/{}/{vino}", vino % 7)),
        "{}",
        err(&o)
    );
    assert!(at(&q, "intd", inos[3]).exists() && at(&q, "mess", vino).exists());
}

#[test]
fn every_printed_name_is_escaped() {
    let (_t, dir) = scratch();
    let (q, _) = queue_with(&dir, 2);
    let forged = "x\nchown 0:0 QUEUE (was 0:0)\x1b[2J";
    write_0600(&q.join("info/3").join(forged), "x");
    let non_utf8 = std::ffi::OsStr::new(std::str::from_utf8(b"\xce\xbb").unwrap());
    write_0600(&q.join("remote/4").join(non_utf8), "y");
    {
        use std::os::unix::ffi::OsStrExt;
        let raw = std::ffi::OsStr::from_bytes(b"bad\xff\x07");
        write_0600(&q.join("local/5").join(raw), "z");
    }
    for args in [q_args(&q, &["-N"]), q_args(&q, &["-v"])] {
        let o = run(&args);
        assert_eq!(
            code(&o) > 0,
            args.contains(&"-N"),
            "{}: {}",
            code(&o),
            err(&o)
        );
        for text in [&o.stdout, &o.stderr] {
            assert!(
                text.iter()
                    .all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)),
                "raw bytes printed: {:?}",
                String::from_utf8_lossy(text)
            );
        }
        let stdout = after_settings(&o);
        assert_eq!(stdout.lines().filter(|l| l.starts_with("chown")).count(), 0);
        assert!(stdout.contains("x\\x0achown 0:0"), "{stdout}");
        assert!(stdout.contains("\\xce\\xbb") && stdout.contains("bad\\xff\\x07"));
        assert_eq!(stdout.lines().count(), 3, "{stdout}");
    }
    expect(&q_args(&q, &["-N"]), 0);
}

#[test]
fn wrong_types_where_message_files_belong_are_set_aside_in_one_run() {
    let (_t, dir) = scratch();
    let (q, inos) = queue_with(&dir, 6);
    let before = messages(&q);
    let fifo = at(&q, "todo", inos[0]);
    std::fs::remove_file(&fifo).unwrap();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::fs::create_dir(q.join("bounce").join(inos[1].to_string())).unwrap();
    std::fs::write(q.join("bounce").join(inos[1].to_string()).join("x"), "x").unwrap();
    let sock = at(&q, "info", inos[2]);
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", at(&q, "local", inos[3])).unwrap();
    let mut expected = vec![
        format!("todo_{}_{}", inos[0] % 7, inos[0]),
        format!("bounce_{}", inos[1]),
        format!("info_{}_{}", inos[2] % 7, inos[2]),
        format!("local_{}_{}", inos[3] % 7, inos[3]),
    ];
    if is_root() {
        let dev = at(&q, "remote", inos[4]);
        nix::sys::stat::mknod(
            &dev,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        expected.push(format!("remote_{}_{}", inos[4] % 7, inos[4]));
    } else {
        skip("device in a queue", "mknod needs root");
    }
    let o = run(&q_args(&q, &["-N"]));
    assert_eq!(code(&o), expected.len() as i32, "{}", out(&o));
    let o = run(&q_args(&q, &[]));
    assert_eq!(code(&o), 0, "{}", err(&o));
    expect(&q_args(&q, &["-N"]), 0);
    expected.sort();
    assert_eq!(quarantined(&q), expected);
    assert!(std::fs::symlink_metadata(q.join("quarantine").join(&expected[0])).is_ok());
    // The texts are all there; the message whose todo was a FIFO now has
    // only its intd (an injection in progress, for qmail-send to clean).
    let after = messages(&q);
    assert_eq!(after.len(), before.len());
}

#[test]
fn long_stray_names_and_a_quarantine_that_is_no_directory_converge_in_one_run() {
    let (_t, dir) = scratch();
    let (q, _) = queue_with(&dir, 1);
    let long_a = format!("{}1", "9".repeat(248));
    let long_b = format!("{}2", "9".repeat(248));
    for n in [&long_a, &long_b] {
        write_0600(&q.join("info/5").join(n), "stray");
    }
    // quarantine as a file, a symlink to a directory elsewhere, a FIFO.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    for (round, plant) in ["file", "symlink", "fifo"].iter().enumerate() {
        let qdir = q.join("quarantine");
        match *plant {
            "file" => std::fs::write(&qdir, "not a directory").unwrap(),
            "symlink" => {
                std::fs::rename(&qdir, dir.join("old-quarantine")).unwrap();
                std::os::unix::fs::symlink(&elsewhere, &qdir).unwrap();
                write_0600(&q.join("info/6/123456"), "stray");
            }
            _ => {
                std::fs::remove_dir_all(&qdir).unwrap();
                nix::unistd::mkfifo(&qdir, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .unwrap();
                write_0600(&q.join("info/6/123457"), "stray");
            }
        }
        let o = run(&q_args(&q, &[]));
        assert!(code(&o) == 0, "round {round} ({plant}): {}", err(&o));
        expect(&q_args(&q, &["-N"]), 0);
        assert!(std::fs::symlink_metadata(&qdir).unwrap().is_dir());
    }
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // Round one quarantined them; its directory was moved out in round two.
    let names: Vec<String> = std::fs::read_dir(dir.join("old-quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let long: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("info_5_999"))
        .collect();
    assert_eq!(long.len(), 2, "{names:?}");
    assert!(long.iter().all(|n| n.len() <= 255) && long[0] != long[1]);
}

/// Renames every file of message `a` to the name of `b` (in b's
/// subdirectory), through a scratch name: a permutation of names.
fn permute(q: &Path, cycle: &[u64]) {
    let tmp = |ino: u64| format!("{ino}.perm");
    for &a in cycle {
        for d in ["mess", "todo", "intd", "info", "remote"] {
            let from = at(q, d, a);
            if from.exists() {
                std::fs::rename(&from, from.with_file_name(tmp(a))).unwrap();
            }
        }
    }
    for (i, &a) in cycle.iter().enumerate() {
        let b = cycle[(i + 1) % cycle.len()];
        for d in ["mess", "todo", "intd", "info", "remote"] {
            let from = at(q, d, a).with_file_name(tmp(a));
            if from.exists() {
                std::fs::rename(&from, at(q, d, b)).unwrap();
            }
        }
    }
}

#[test]
fn any_permutation_of_names_is_repaired_in_one_run() {
    let (_t, dir) = scratch();
    let (q, inos) = queue_with(&dir, 40);
    for &i in inos.iter().step_by(4) {
        add_info_remote(&q, (i % 7) as u32, &i.to_string());
    }
    let before = messages(&q);
    permute(&q, &inos[0..2]); // a swap
    permute(&q, &inos[2..5]); // a cycle of three
    permute(&q, &inos[5..25]); // a cycle of twenty
    let o = run(&q_args(&q, &[]));
    assert_eq!(code(&o), 0, "{}", err(&o));
    expect(&q_args(&q, &["-N"]), 0);
    assert_eq!(messages(&q), before);
    assert!(!q.join("quarantine").exists());
    // A queue copied file by file (hard links kept): every name is wrong.
    let copy = dir.join("copy");
    let ok = Command::new("cp")
        .args(["-a", s(&q), s(&copy)])
        .status()
        .unwrap();
    assert!(ok.success());
    let o = run(&q_args(&copy, &[]));
    assert_eq!(code(&o), 0, "{}", err(&o));
    expect(&q_args(&copy, &["-N"]), 0);
    assert_eq!(messages(&copy), before);
    assert!(!copy.join("quarantine").exists());
}

#[test]
fn symlinks_everywhere_change_nothing_outside_the_queue() {
    let (_t, dir) = scratch();
    let victim = victim_tree(&dir, 4);
    let (q, inos) = queue_with(&dir, 10);
    let link = |p: &Path, to: &Path| {
        let m = std::fs::symlink_metadata(p);
        match m {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).unwrap(),
            Ok(_) => std::fs::remove_file(p).unwrap(),
            Err(_) => {}
        }
        std::os::unix::fs::symlink(to, p).unwrap();
    };
    // Split directories, split subdirectories, the layout's files, the
    // quarantine, message files: each a link into the victim tree.
    link(&q.join("info"), &victim);
    link(&q.join("remote/3"), &victim.join("sub"));
    link(&q.join("bounce"), &victim);
    link(&q.join("lock/sendmutex"), &victim.join("f0"));
    link(&q.join("lock/tcpto"), &victim.join("f1"));
    link(&q.join("lock/trigger"), &victim.join("f2"));
    link(&q.join("quarantine"), &victim.join("sub"));
    link(&at(&q, "todo", inos[0]), &victim.join("f3"));
    link(&at(&q, "mess", inos[1]), &victim.join("f3"));
    link(&q.join("pid"), &victim);
    link(&q.join("trash"), &victim.join("sub"));
    link(&q.join("mess/6"), &victim);
    let snap = snapshot(&victim);
    let o = run(&q_args(&q, &[]));
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(snapshot(&victim), snap, "the victim tree changed");
    // Whatever was behind mess/6 is not mail: the messages there are gone
    // from the queue's view, the rest converge.
    let o = run(&q_args(&q, &[]));
    assert!(code(&o) < 100, "{}", err(&o));
    expect(&q_args(&q, &["-N"]), 0);
    assert_eq!(snapshot(&victim), snap, "the victim tree changed");
    for p in [
        "info",
        "bounce",
        "pid",
        "trash",
        "quarantine",
        "remote/3",
        "mess/6",
    ] {
        assert!(
            std::fs::symlink_metadata(q.join(p)).unwrap().is_dir(),
            "{p}"
        );
    }
    let trigger = std::fs::symlink_metadata(q.join("lock/trigger")).unwrap();
    assert!(trigger.file_type().is_fifo());
}

#[test]
fn a_split_directory_replaced_by_a_symlink_to_proc_is_fixed_in_one_run() {
    let (_t, dir) = scratch();
    let (q, _) = queue_with(&dir, 3);
    std::fs::remove_dir_all(q.join("info")).unwrap();
    std::os::unix::fs::symlink("/proc", q.join("info")).unwrap();
    let o = run(&q_args(&q, &["-N"]));
    assert!(
        !out(&o).contains("chown") && !out(&o).contains("chmod"),
        "planned through the link: {}",
        out(&o)
    );
    let o = run(&q_args(&q, &[]));
    assert_eq!(code(&o), 0, "{}", err(&o));
    expect(&q_args(&q, &["-N"]), 0);
    assert!(q.join("quarantine/info").is_symlink());
}

/// A tmpfs for a queue on another filesystem; unmounted when dropped.
struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn tmpfs(p: &Path) -> Option<Mount> {
    std::fs::create_dir_all(p).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs", s(p)])
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(p.to_owned()))
}

/// Runs queue-fix; a run still going after `secs` is killed and fails.
fn run_bounded(args: &[&str], secs: u64) -> std::process::Output {
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("CONFSPLIT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("queue-fix {args:?} hung (killed): {}", err(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_retire_across_filesystems_never_opens_a_fifo_nor_copies_a_hard_link() {
    if !is_root() {
        return skip("cross-filesystem retire", "mounting a tmpfs needs root");
    }
    let (_t, base) = scratch();
    let Some(_m) = tmpfs(&base.join("queue5")) else {
        return skip("cross-filesystem retire", "mount -t tmpfs failed");
    };
    let victim = victim_tree(&base, 2);
    let args = base_args(&base, "2");
    expect(&args, 0);
    let q5 = base.join("queue5");
    run(&q_args(&q5, &[]));
    let inos = fill(&q5, 6, 7);
    let before: Vec<_> = messages(&q5);
    let fifo = at(&q5, "todo", inos[0]);
    std::fs::remove_file(&fifo).unwrap();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::os::unix::fs::symlink(victim.join("f0"), at(&q5, "info", inos[1])).unwrap();
    std::fs::create_dir(at(&q5, "remote", inos[2])).unwrap();
    // A hard link across filesystems is impossible: the victim is a file
    // of the tmpfs itself, outside the queue.
    std::fs::write(base.join("queue5/secret"), "tmpfs secret\n").unwrap();
    std::fs::hard_link(base.join("queue5/secret"), at(&q5, "local", inos[3])).unwrap();
    let snap = snapshot(&victim);
    let mut retire: Vec<&str> = args.to_vec();
    retire.push("--retire");
    let o = run_bounded(&retire, 120);
    assert_eq!(code(&o), 0, "{}", err(&o));
    let o = run_bounded(&retire, 120);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(snapshot(&victim), snap);
    let mut after = Vec::new();
    for n in 1..=2 {
        after.extend(messages(&base.join(format!("queue{n}"))));
    }
    after.sort_unstable();
    assert_eq!(after.len(), before.len(), "messages lost or doubled");
    assert_eq!(messages(&q5), vec![]);
    // Nothing of the tmpfs secret was copied into the queues.
    let grep = Command::new("grep")
        .args([
            "-r",
            "-l",
            "tmpfs secret",
            s(&base.join("queue1")),
            s(&base.join("queue2")),
        ])
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty(), "{}", out(&grep));
    assert_eq!(
        std::fs::read_to_string(base.join("queue5/secret")).unwrap(),
        "tmpfs secret\n"
    );
}

/// Counts `fstatat`-like system calls of one run with strace.
fn stat_calls(args: &[&str]) -> Option<usize> {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = vec!["-f", "-c", "-o", s(log.path()), bin()];
    cmd.extend_from_slice(args);
    let st = Command::new("strace")
        .args(&cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    st.code()?;
    let text = std::fs::read_to_string(log.path()).ok()?;
    Some(
        text.lines()
            .filter(|l| {
                l.ends_with("newfstatat") || l.ends_with("statx") || l.ends_with(" fstatat64")
            })
            .filter_map(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
            .sum(),
    )
}

#[test]
fn a_stray_costs_a_few_stat_calls_not_one_per_subdirectory() {
    if Command::new("strace").arg("-V").output().is_err() {
        return skip("stray cost", "strace is not installed");
    }
    let (_t, dir) = scratch();
    let q = dir.join("q");
    run(&[INV, s(&q)]); // split 151
    let n = 2000u64;
    for i in 0..n {
        let p = q
            .join("info")
            .join((i % 151).to_string())
            .join((1_000_000_000 + i * 151).to_string());
        write_0600(&p, "stray");
    }
    let empty = dir.join("empty");
    run(&[INV, s(&empty)]);
    let base = stat_calls(&[INV, "-N", s(&empty)]).unwrap_or(0);
    let Some(calls) = stat_calls(&[INV, "-N", s(&q)]) else {
        return skip("stray cost", "strace could not run queue-fix");
    };
    let per = (calls.saturating_sub(base)) as f64 / n as f64;
    eprintln!("{calls} stat calls for {n} strays ({per:.1} each)");
    assert!(per < 4.0, "{per:.1} stat calls per stray");
}

/// The strace lines of a retire, with `-y` (descriptors shown as paths).
fn trace_retire(args: &[&str]) -> Option<Vec<String>> {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = vec![
        "-f",
        "-y",
        "-qq",
        "-e",
        "trace=fsync,fdatasync,syncfs,unlinkat,linkat,renameat,renameat2,openat,openat2",
        "-o",
        s(log.path()),
        bin(),
    ];
    cmd.extend_from_slice(args);
    let o = Command::new("strace").args(&cmd).output().ok()?;
    assert_eq!(code(&o), 0, "{}", err(&o));
    Some(
        std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .map(String::from)
            .collect(),
    )
}

/// For every message of `src` (by inode): the first unlink of any of its
/// old names (in batches: the envelope files, then `mess`) comes after an
/// fsync of the directory its new `mess` name is in, and, when `copied`,
/// after the new file was made durable: an fsync of it and of that
/// directory, or a `syncfs` of the destination's filesystem after it was
/// linked.
fn check_order(lines: &[String], src: &Path, inos: &[u64], copied: bool) {
    let base = s(src.parent().unwrap());
    let src = s(src);
    for &ino in inos {
        let sub = ino % 7;
        assert!(
            lines.iter().any(|l| call(l).starts_with("unlinkat(")
                && l.contains(&format!("{src}/mess/{sub}>"))
                && l.contains(&format!("\"{ino}\""))),
            "no unlink of {src}/mess/{sub}/{ino}"
        );
        let unlink = lines
            .iter()
            .position(|l| {
                call(l).starts_with("unlinkat(")
                    && l.contains(&format!("<{src}/"))
                    && l.contains(&format!("/{sub}>, \"{ino}\""))
            })
            .unwrap();
        // The new mess name: a link (same fs) or the link of the copy.
        let link = lines[..unlink]
            .iter()
            .rposition(|l| {
                call(l).starts_with("linkat(")
                    && if copied {
                        l.contains(&format!("retire.queue5.{ino}\""))
                    } else {
                        l.contains(&format!("{src}/mess/{sub}>, \"{ino}\""))
                    }
            })
            .unwrap_or_else(|| panic!("no link of message {ino} before its unlink"));
        let dest_dir = lines[link]
            .rsplit_once(", ")
            .and_then(|_| {
                let parts: Vec<&str> = lines[link].split(", ").collect();
                let d = parts.get(2)?;
                Some(d[d.find('<')? + 1..d.rfind('>')?].to_string())
            })
            .expect("destination directory of the link");
        // One syncfs per filesystem and batch, through any destination
        // queue's descriptor (all on one filesystem here, beside the
        // source's mount point), covers the copies and their names.
        let syncfs = lines[link..unlink].iter().any(|l| {
            let c = call(l);
            c.starts_with("syncfs(")
                && c.contains(&format!("<{base}/queue"))
                && !c.contains(&format!("<{src}"))
        });
        let synced = (copied && syncfs)
            || lines[link..unlink]
                .iter()
                .any(|l| l.starts_with_fsync(&format!("<{dest_dir}>")));
        assert!(
            synced,
            "message {ino}: no fsync of {dest_dir} between its link and the unlink of the old name"
        );
        if copied {
            let file_synced = lines[..unlink]
                .iter()
                .any(|l| l.starts_with_fsync(&format!("/pid/retire.queue5.{ino}>")))
                || syncfs;
            assert!(
                file_synced,
                "message {ino}: the copy was not synced before the unlink:\n{}",
                lines[link..=unlink].join("\n")
            );
        }
    }
}

/// An strace line without its leading process id.
fn call(l: &str) -> &str {
    match l.split_once(' ') {
        Some((pid, rest)) if pid.chars().all(|c| c.is_ascii_digit()) => rest.trim_start(),
        _ => l,
    }
}

trait FsyncLine {
    fn starts_with_fsync(&self, fd_path: &str) -> bool;
}
impl FsyncLine for String {
    fn starts_with_fsync(&self, fd_path: &str) -> bool {
        let l = call(self);
        (l.starts_with("fsync(") || l.starts_with("fdatasync(")) && l.contains(fd_path)
    }
}

#[test]
fn retire_syncs_every_new_name_before_the_old_one_goes() {
    if Command::new("strace").arg("-V").output().is_err() {
        return skip("retire durability", "strace is not installed");
    }
    let (_t, base) = scratch();
    let args = base_args(&base, "2");
    expect(&args, 0);
    let mut retire: Vec<&str> = args.to_vec();
    retire.push("--retire");
    // Same filesystem: queue5 beside the others.
    let q5 = base.join("queue5");
    run(&q_args(&q5, &[]));
    let inos = fill(&q5, 10, 7);
    let Some(lines) = trace_retire(&retire) else {
        return skip("retire durability", "strace could not run queue-fix");
    };
    check_order(&lines, &q5, &inos, false);
    assert_eq!(messages(&q5), vec![]);
    // Across filesystems: queue5 on a tmpfs.
    if !is_root() {
        return skip(
            "retire durability across filesystems",
            "mounting a tmpfs needs root",
        );
    }
    std::fs::remove_dir_all(&q5).unwrap();
    let Some(_m) = tmpfs(&q5) else {
        return skip(
            "retire durability across filesystems",
            "mount -t tmpfs failed",
        );
    };
    run(&q_args(&q5, &[]));
    let inos = fill(&q5, 10, 7);
    let lines = trace_retire(&retire).unwrap();
    check_order(&lines, &q5, &inos, true);
    assert_eq!(messages(&q5), vec![]);
}

#[test]
fn four_injectors_and_a_looping_check_lose_and_double_nothing() {
    let depositor = Path::new(env!("CARGO_BIN_EXE_qmail-multi"))
        .parent()
        .unwrap()
        .join("examples/test-qmail-queue");
    if !depositor.exists() {
        return skip(
            "injectors",
            "examples/test-qmail-queue is not built (cargo build --examples)",
        );
    }
    let (_t, base) = scratch();
    let args = base_args(&base, "10");
    expect(&args, 0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Stops the checker however the injectors end (a failed injection
    // must fail the test, not leave the checker looping).
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let mut checks = 0;
    std::thread::scope(|scope| {
        let injectors: Vec<_> = (0..4)
            .map(|t| {
                let (base, depositor) = (&base, &depositor);
                scope.spawn(move || {
                    for i in 0..100 {
                        inject(base, depositor, &format!("injector {t} message {i}"));
                    }
                })
            })
            .collect();
        let checker = scope.spawn(|| {
            let mut n = 0;
            let mut dry: Vec<&str> = args.to_vec();
            dry.push("-N");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let o = run(&dry);
                assert!(code(&o) < 100, "{}", err(&o));
                n += 1;
            }
            n
        });
        let results: Vec<_> = {
            let _stop = Stop(&stop);
            injectors.into_iter().map(|i| i.join()).collect()
        };
        checks = checker.join().unwrap();
        for r in results {
            r.unwrap();
        }
    });
    eprintln!("{checks} checks ran during the injections");
    assert!(checks >= 1);
    let mut subjects = Vec::new();
    for n in 1..=10 {
        let q = base.join(format!("queue{n}"));
        for e in walk_all(&q.join("mess")) {
            if std::fs::symlink_metadata(&e).unwrap().is_file() {
                let text = std::fs::read_to_string(&e).unwrap();
                let subj = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .unwrap()
                    .to_string();
                subjects.push(subj);
            }
        }
    }
    subjects.sort();
    let mut expected: Vec<String> = (0..4)
        .flat_map(|t| (0..100).map(move |i| format!("injector {t} message {i}")))
        .collect();
    expected.sort();
    assert_eq!(subjects, expected, "a message is missing or present twice");
    expect(&args, 0);
}

/// One injection through qmail-multi into the test depositor: message on
/// descriptor 0, envelope on descriptor 1, as qmail-smtpd does.
fn inject(base: &Path, depositor: &Path, subject: &str) {
    use std::io::Write;
    let (m_r, m_w) = nix::unistd::pipe().unwrap();
    let (e_r, e_w) = nix::unistd::pipe().unwrap();
    std::fs::File::from(m_w)
        .write_all(format!("Subject: {subject}\n\nbody\n").as_bytes())
        .unwrap();
    std::fs::File::from(e_w)
        .write_all(b"Fsender@example.org\0Trcpt@example.net\0\0")
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_qmail-multi"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("QMAILHOME", base)
        .env("QUEUE_BASE", base)
        .env("QUEUE_COUNT", "10")
        .env("QUEUE_START", "1")
        .env("QUEUEPROG", depositor)
        .env("CONFSPLIT", "7")
        .env("SYNC", "0")
        .stdin(Stdio::from(m_r))
        .stdout(Stdio::from(e_r))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{subject}: {}", err(&o));
}
