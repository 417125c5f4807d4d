//! A flat `todo`/`intd` (BIGTODO=0) full of what a qmail account could put
//! there — hard links to a file outside the queue, FIFOs, symlinks,
//! directories with numeric names holding more of the same, names with odd
//! bytes — converted both ways and cut short at every change: no message
//! lost, and the file outside the queue never changed nor opened (a FIFO
//! opened would hang the run).

mod fix_support;
use fix_support::*;
use qmail_multi::queue::layout::Layout;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const INV: &str = "--as-invoker";
const SPLIT: u32 = 23;

fn env(big_todo: bool) -> &'static str {
    if big_todo {
        "1"
    } else {
        "0"
    }
}

fn at(q: &Path, dir: &str, ino: u64, big_todo: bool) -> PathBuf {
    let mut p = q.join(dir);
    if big_todo {
        p.push((ino % u64::from(SPLIT)).to_string());
    }
    p.join(ino.to_string())
}

/// Each deposited message: its mess, and its todo/intd pair (one inode)
/// exactly where this BIGTODO puts them, with the content it had.
#[track_caller]
fn check_messages(q: &Path, msgs: &[(u64, u64, u64)], big_todo: bool, when: &str) {
    for &(ino, mess_hash, todo_hash) in msgs {
        let sub = (ino % u64::from(SPLIT)).to_string();
        let mess = q.join("mess").join(sub).join(ino.to_string());
        let m = std::fs::read(&mess).unwrap_or_else(|e| panic!("{when}: {mess:?}: {e}"));
        assert_eq!(hash_of(&m), mess_hash, "{when}: {mess:?}");
        let (t, i) = (at(q, "todo", ino, big_todo), at(q, "intd", ino, big_todo));
        let tm = std::fs::symlink_metadata(&t).unwrap_or_else(|e| panic!("{when}: {t:?}: {e}"));
        let im = std::fs::symlink_metadata(&i).unwrap_or_else(|e| panic!("{when}: {i:?}: {e}"));
        assert_eq!((tm.ino(), tm.nlink()), (im.ino(), 2), "{when}: {t:?}");
        assert_eq!(hash_of(&std::fs::read(&t).unwrap()), todo_hash, "{when}");
    }
}

#[test]
fn hostile_flat_todo_entries_through_conversions_cut_at_every_change() {
    if !is_root() {
        return skip(
            "hostile flat todo",
            "needs root (a victim owned by another user)",
        );
    }
    std::env::set_var("QUEUE_FIX_UNSAFE_NO_FSYNC", "1");
    let (_t, dir) = scratch();
    let q = dir.join("q");
    expect(&[INV, "-s23", "-b0", s(&q)], 0);
    let layout = Layout {
        big_todo: false,
        ..Layout::new(SPLIT)
    };
    let msgs: Vec<(u64, u64, u64)> = fill_layout(&q, 12, layout)
        .into_iter()
        .map(|ino| {
            let mess = std::fs::read(q.join(layout.message_path("mess", ino))).unwrap();
            let todo = std::fs::read(q.join(layout.message_path("todo", ino))).unwrap();
            (ino, hash_of(&mess), hash_of(&todo))
        })
        .collect();
    // The file outside the queue: another user's, private.
    let victim = dir.join("victim");
    std::fs::write(&victim, "secret\n").unwrap();
    std::os::unix::fs::chown(&victim, Some(4242), Some(4242)).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let look = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid(), m.mode(), std::fs::read(p).unwrap())
    };
    let victim_was = look(&victim);
    let todo = q.join("todo");
    let intd = q.join("intd");
    let mut rounds = 0;
    for big_todo in [true, false] {
        let mut n = 0u32;
        loop {
            // From the other layout, with every hostile entry in place.
            let r = qf(&q, !big_todo, None);
            assert!(code(&r) < 100, "setup: {}", err(&r));
            // Emptied as an administrator would: each name set aside
            // again would otherwise cost one more try per round.
            let _ = std::fs::remove_dir_all(q.join("quarantine"));
            plant(&q, &victim);
            let o = qf(&q, big_todo, Some(n));
            let when = format!("BIGTODO={} crash after {n}", env(big_todo));
            // Aborted: timeout(1) dies of the same signal, or says 128+6.
            let cut = o.status.code().is_none() || code(&o) == 134;
            assert!(cut || code(&o) < 100, "{when}: {}", err(&o));
            assert_eq!(look(&victim), victim_was, "{when}: the victim changed");
            let r = qf(&q, big_todo, None);
            assert!(code(&r) < 100, "{when}: rerun: {}", err(&r));
            assert!(!err(&r).contains('\x1b'), "{when}: unescaped name printed");
            check_messages(&q, &msgs, big_todo, &when);
            assert_eq!(look(&victim), victim_was, "{when}: the victim changed");
            // Nothing but message files (and what hard links kept) left in
            // todo and intd; no FIFO, symlink or foreign directory.
            for dir in [&todo, &intd] {
                for e in walkdir(dir) {
                    let m = std::fs::symlink_metadata(&e).unwrap();
                    let ft = m.file_type();
                    assert!(
                        ft.is_file() || (ft.is_dir() && big_todo),
                        "{when}: {e:?} left in place ({ft:?})"
                    );
                }
            }
            rounds += 1;
            if !cut {
                break;
            }
            n += 2;
        }
    }
    assert!(rounds > 30, "only {rounds} runs");
}

/// What a qmail account could leave at the top of todo and intd (again:
/// what a run set aside is put back; what is still there stays).
fn plant(q: &Path, victim: &Path) {
    fn again<T>(r: std::io::Result<T>) {
        if let Err(e) = r {
            assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
        }
    }
    let fifo = |p: &Path| {
        again(
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644))
                .map_err(std::io::Error::from),
        )
    };
    let todo = q.join("todo");
    let intd = q.join("intd");
    // Two messages (mess files named by their inodes), one with its todo
    // name linked to the victim, one with its todo and intd names (a
    // "pair" of the victim's inode).
    for (i, n) in fakes(q).into_iter().enumerate() {
        again(std::fs::hard_link(victim, todo.join(n.to_string())));
        if i == 1 {
            again(std::fs::hard_link(victim, intd.join(n.to_string())));
        }
    }
    fifo(&todo.join("777"));
    fifo(&intd.join("779"));
    again(std::os::unix::fs::symlink(victim, todo.join("778")));
    again(std::fs::create_dir(todo.join("123456789012")));
    std::fs::write(todo.join("123456789012/5"), "x").unwrap();
    // A numbered directory in a flat todo, holding a FIFO, a symlink and
    // a hard link, each under a message-like name.
    let d = todo.join("40");
    again(std::fs::create_dir(&d));
    fifo(&d.join("41"));
    again(std::os::unix::fs::symlink(victim, d.join("42")));
    again(std::fs::hard_link(victim, d.join("43")));
    std::fs::write(todo.join("1\n2\x1b[2J"), "x").unwrap();
}

/// queue-fix on `q`, cut short after `crash` changes; a run that hangs
/// (a FIFO opened) is killed after 60 s and fails the test.
fn qf(q: &Path, big_todo: bool, crash: Option<u32>) -> std::process::Output {
    let mut c = std::process::Command::new("timeout");
    c.args(["60", bin(), INV, "-s", "23", s(q)])
        .env("BIGTODO", env(big_todo))
        .env_remove("CONFSPLIT")
        .env_remove("QUEUE_FIX_CRASH_AFTER");
    if let Some(n) = crash {
        c.env("QUEUE_FIX_CRASH_AFTER", n.to_string());
    }
    let o = c.output().expect("running queue-fix");
    assert_ne!(code(&o), 124, "queue-fix hung: {}", err(&o));
    o
}

/// Two well-named mess files of no deposited message, made once.
fn fakes(q: &Path) -> Vec<u64> {
    let mark = q.parent().unwrap().join("fakes");
    if let Ok(text) = std::fs::read_to_string(&mark) {
        return text
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
    }
    let mut v = Vec::new();
    for i in 0..2 {
        let tmp = q.join("mess").join(format!("fake{i}"));
        std::fs::write(&tmp, "x").unwrap();
        let ino = tmp.metadata().unwrap().ino();
        let sub = (ino % u64::from(SPLIT)).to_string();
        std::fs::rename(&tmp, q.join("mess").join(sub).join(ino.to_string())).unwrap();
        v.push(ino);
    }
    let text: Vec<String> = v.iter().map(u64::to_string).collect();
    std::fs::write(&mark, text.join(" ")).unwrap();
    v
}

fn walkdir(d: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            v.extend(walkdir(&p));
        }
        v.push(p);
    }
    v
}

/// A re-split (`-s 23` on a queue made with split 151) moves every `mess`
/// file to another subdirectory under the same name; the message's files
/// in the flat directories (`bounce`; `todo` and `intd` under BIGTODO=0)
/// keep that name and must stay. They were once "moved" onto themselves
/// and the old name (the only one) removed: every pending message lost
/// its todo and intd, and every bounce file went.
#[test]
fn a_resplit_keeps_every_flat_todo_intd_and_bounce_file() {
    // With BIGTODO changed at the same time too: conversion and re-split
    // in one run.
    for (big_todo, to_big) in [(false, false), (true, true), (false, true), (true, false)] {
        let (_t, dir) = scratch();
        let q = dir.join("q");
        let msgs = queue_with_bounces(&q, 40, big_todo);
        let o = run_env(&[INV, "-s", "23", s(&q)], &[("BIGTODO", env(to_big))]);
        let when = format!("re-split, BIGTODO={} to {}", env(big_todo), env(to_big));
        assert_eq!(code(&o), 0, "{when}: {}", err(&o));
        assert_kept(&q, &msgs, to_big, &when);
    }
}

/// A split-151 queue at `q` holding `n` messages written as qmail-queue
/// writes them under this `BIGTODO`, each with a bounce file: `(inode,
/// hash of mess, hash of todo)` of each.
fn queue_with_bounces(q: &Path, n: usize, big_todo: bool) -> Vec<(u64, u64, u64)> {
    expect(&[INV, "-s151", "-b", env(big_todo), s(q)], 0);
    let layout = Layout {
        big_todo,
        ..Layout::new(151)
    };
    fill_layout(q, n, layout)
        .into_iter()
        .enumerate()
        .map(|(i, ino)| {
            let bounce = q.join("bounce").join(ino.to_string());
            std::fs::write(&bounce, format!("bounce {i}\n")).unwrap();
            std::fs::set_permissions(&bounce, std::fs::Permissions::from_mode(0o600)).unwrap();
            let mess = std::fs::read(q.join(layout.message_path("mess", ino))).unwrap();
            let todo = std::fs::read(q.join(layout.message_path("todo", ino))).unwrap();
            (ino, hash_of(&mess), hash_of(&todo))
        })
        .collect()
}

/// Every message of `msgs` intact where `to_big` puts it, its bounce file
/// kept, and the queue correct for `-N` afterwards.
fn assert_kept(q: &Path, msgs: &[(u64, u64, u64)], to_big: bool, when: &str) {
    check_messages(q, msgs, to_big, when);
    for &(ino, ..) in msgs {
        let b = q.join("bounce").join(ino.to_string());
        assert!(b.exists(), "{when}: {b:?} lost");
    }
    let o = run_env(&[INV, "-N", "-s", "23", s(q)], &[("BIGTODO", env(to_big))]);
    assert_eq!(code(&o), 0, "{when}: {}{}", out(&o), err(&o));
}

/// The same re-split with a conversion, cut short at every other change
/// and finished by a rerun: nothing lost, nothing doubled.
#[test]
fn a_resplit_with_a_conversion_cut_anywhere_loses_nothing() {
    std::env::set_var("QUEUE_FIX_UNSAFE_NO_FSYNC", "1");
    for (big_todo, to_big) in [(false, true), (true, false), (false, false)] {
        let mut n = 0u32;
        loop {
            let (_t, dir) = scratch();
            let q = dir.join("q");
            let msgs = queue_with_bounces(&q, 8, big_todo);
            let when = format!(
                "re-split, BIGTODO={} to {}, crash after {n}",
                env(big_todo),
                env(to_big)
            );
            let o = qf(&q, to_big, Some(n));
            let cut = o.status.code().is_none() || code(&o) == 134;
            assert!(cut || code(&o) == 0, "{when}: {}", err(&o));
            let r = qf(&q, to_big, None);
            assert_eq!(code(&r), 0, "{when}: rerun: {}", err(&r));
            assert_kept(&q, &msgs, to_big, &when);
            if !cut {
                break;
            }
            n += 5;
        }
    }
}
