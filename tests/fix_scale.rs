//! queue-fix on one subdirectory too big to hold at once: with split 1
//! every message is in bucket 0, which queue-fix then reads in parts (by a
//! hash of the name, about 4,096 names each). Every message must still be
//! planned once, repaired once, and kept with all its files.

mod fix_support;
use fix_support::*;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const INV: &str = "--as-invoker";
/// About three parts' worth of names in one subdirectory.
const MESSAGES: u64 = 12_000;
/// Files in `info` with no message anywhere.
const STRAYS: u64 = 300;

/// Writes `n` messages named by their inode + 1000000007 (every one
/// misnamed) into subdirectory 0 of a queue split 1, with `info` and
/// `remote` beside each; returns body by inode.
fn fill_misnamed(q: &Path, n: u64) -> HashMap<u64, String> {
    let mut bodies = HashMap::new();
    for i in 0..n {
        let tmp = q.join("pid").join(format!("scale.{i}"));
        let body = format!("Subject: scale {i}\n\nbody {i}\n");
        std::fs::write(&tmp, &body).unwrap();
        let ino = std::fs::metadata(&tmp).unwrap().ino();
        let name = (ino + 1_000_000_007).to_string();
        std::fs::rename(&tmp, q.join("mess/0").join(&name)).unwrap();
        add_info_remote(q, 0, &name);
        bodies.insert(ino, body);
    }
    bodies
}

#[test]
fn a_subdirectory_read_in_parts_has_every_message_repaired_exactly_once() {
    in_parts(&[]);
}

#[test]
fn a_subdirectory_too_big_to_keep_its_names_is_read_again_for_each_part() {
    // QUEUE_FIX_NAMES_HELD (a test hook) lowers what queue-fix keeps of
    // a directory's names (1 MiB) so this queue's are read again per part.
    in_parts(&[("QUEUE_FIX_NAMES_HELD", "10000")]);
}

fn in_parts(env: &[(&str, &str)]) {
    let run = |args: &[&str]| run_env(args, env);
    let expect = |args: &[&str], want: i32| {
        let o = run(args);
        assert_eq!(code(&o), want, "{args:?}\n{}", err(&o));
    };
    let (_t, dir) = scratch();
    let q = dir.join("q");
    run(&[INV, "-s", "1", s(&q)]);
    let bodies = fill_misnamed(&q, MESSAGES);
    for k in 0..STRAYS {
        write_0600(
            &q.join("info/0").join((3_000_000_000 + k).to_string()),
            "F\0",
        );
    }

    // The plan names every message's move once: no part skipped one, no
    // two parts both took it.
    let o = run(&[INV, "-s", "1", "-N", s(&q)]);
    let mut planned = HashSet::new();
    let prefix = format!("rename {}/mess/0/", q.display());
    for line in out(&o).lines() {
        if let Some(rest) = line.strip_prefix(&prefix) {
            let from = rest.split(' ').next().unwrap().to_owned();
            assert!(planned.insert(from.clone()), "{from} planned twice");
        }
    }
    assert_eq!(planned.len() as u64, MESSAGES, "messages planned");
    let strays = out(&o)
        .lines()
        .filter(|l| l.starts_with("quarantine ") && l.contains("/info/0/3"))
        .count();
    assert_eq!(strays as u64, STRAYS, "strays planned");

    let o = run(&[INV, "-s", "1", s(&q)]);
    assert!(code(&o) < 100, "repair failed:\n{}", err(&o));
    expect(&[INV, "-s", "1", "-N", s(&q)], 0);

    // Every message once, by its inode, its body intact, with both files.
    let mut seen = 0u64;
    for f in std::fs::read_dir(q.join("mess/0")).unwrap() {
        let f = f.unwrap();
        let ino = f.metadata().unwrap().ino();
        assert_eq!(f.file_name().to_str().unwrap(), ino.to_string());
        let body = bodies.get(&ino).expect("a message that was not there");
        assert_eq!(&std::fs::read_to_string(f.path()).unwrap(), body);
        for d in ["info/0", "remote/0"] {
            assert!(q.join(d).join(ino.to_string()).is_file(), "{d}/{ino} lost");
        }
        seen += 1;
    }
    assert_eq!(seen, MESSAGES, "messages kept");
    for d in ["info/0", "remote/0"] {
        assert_eq!(
            std::fs::read_dir(q.join(d)).unwrap().count() as u64,
            MESSAGES,
            "{d}: files left besides the messages'"
        );
    }
    let aside = std::fs::read_dir(q.join("quarantine")).unwrap().count() as u64;
    assert_eq!(aside, STRAYS, "strays set aside");
}

/// A scratch directory on a tmpfs when there is one (the test makes
/// thousands of durable moves, each with its fsyncs), else under /tmp.
fn fast_scratch() -> (tempfile::TempDir, std::path::PathBuf) {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::Builder::new()
            .prefix("queue-fix-test")
            .tempdir_in(shm)
        {
            let p = t.path().to_owned();
            return (t, p);
        }
    }
    scratch()
}

#[test]
fn more_blocked_moves_than_are_remembered_are_found_again_and_finished() {
    // One cycle of names: message k is named by the inode of message k+1,
    // so every message's new name is held by another misnamed message and
    // every move is blocked in the first pass: more than queue-fix keeps
    // by path (4,096), so it finds them again by a pass over mess.
    const CYCLE: usize = 4_500;
    let (_t, dir) = fast_scratch();
    let q = dir.join("q");
    run(&[INV, "-s", "1", s(&q)]);
    let mut made = Vec::new();
    for i in 0..CYCLE {
        let tmp = q.join("pid").join(format!("cycle.{i}"));
        let body = format!("Subject: cycle {i}\n\nbody {i}\n");
        std::fs::write(&tmp, &body).unwrap();
        made.push((tmp.clone(), std::fs::metadata(&tmp).unwrap().ino(), body));
    }
    let mut bodies = HashMap::new();
    for k in 0..CYCLE {
        let (tmp, ino, body) = &made[k];
        let name = made[(k + 1) % CYCLE].1.to_string();
        std::fs::rename(tmp, q.join("mess/0").join(&name)).unwrap();
        add_info_remote(&q, 0, &name);
        // The info file says whose message it is.
        write_0600(&q.join("info/0").join(&name), &format!("F{ino}\0"));
        bodies.insert(*ino, body.clone());
    }

    let o = run(&[INV, "-s", "1", s(&q)]);
    assert!(code(&o) < 100, "repair failed:\n{}", err(&o));
    expect(&[INV, "-s", "1", "-N", s(&q)], 0);

    let mut seen = 0;
    for f in std::fs::read_dir(q.join("mess/0")).unwrap() {
        let f = f.unwrap();
        let ino = f.metadata().unwrap().ino();
        assert_eq!(f.file_name().to_str().unwrap(), ino.to_string());
        assert_eq!(
            &std::fs::read_to_string(f.path()).unwrap(),
            bodies.get(&ino).expect("a message that was not there")
        );
        // Its own info file came with it, not another message's.
        assert_eq!(
            std::fs::read_to_string(q.join("info/0").join(ino.to_string())).unwrap(),
            format!("F{ino}\0")
        );
        assert!(q.join("remote/0").join(ino.to_string()).is_file());
        seen += 1;
    }
    assert_eq!(seen, CYCLE, "messages kept");
}

#[test]
fn more_strays_than_are_held_are_found_again_and_each_set_aside_once() {
    // More stray candidates than queue-fix holds for their second look
    // (4,096): found again by a second pass over the buckets.
    const MANY: u64 = 5_000;
    let (_t, dir) = fast_scratch();
    let q = dir.join("q");
    run(&[INV, "-s", "3", s(&q)]);
    fill(&q, 20, 3);
    let mut before = messages(&q);
    before.sort_unstable();
    for k in 0..MANY {
        let name = 3_000_000_000 + k;
        write_0600(
            &q.join("info")
                .join((name % 3).to_string())
                .join(name.to_string()),
            "F\0",
        );
    }
    let o = run(&[INV, "-s", "3", "-N", s(&q)]);
    let mut listed = HashSet::new();
    for line in out(&o).lines().filter(|l| l.starts_with("quarantine ")) {
        assert!(listed.insert(line.to_owned()), "listed twice: {line}");
    }
    assert_eq!(listed.len() as u64, MANY, "strays listed by -N");

    let o = run(&[INV, "-s", "3", s(&q)]);
    assert!(code(&o) < 100, "repair failed:\n{}", err(&o));
    expect(&[INV, "-s", "3", "-N", s(&q)], 0);
    let aside = std::fs::read_dir(q.join("quarantine")).unwrap().count() as u64;
    assert_eq!(aside, MANY, "strays set aside");
    // The messages untouched.
    let mut after = messages(&q);
    after.sort_unstable();
    assert_eq!(after, before);
}
