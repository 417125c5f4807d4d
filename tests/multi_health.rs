//! Health-aware selection through the real binary: missing, misnamed, full
//! and inode-exhausted queues are skipped; only when none is usable does
//! the injection fail, temporarily (53 all short, 62 none exists).

mod multi_support;

use multi_support::*;
use std::fs;
use std::path::{Path, PathBuf};

fn inject(base: &Path, count: u32, extra: &[(&str, &str)]) -> Outcome {
    let mut inj = Injection::new(&[])
        .var("QUEUE_BASE", base)
        .var("QUEUE_COUNT", count.to_string())
        .depositing();
    for (k, v) in extra {
        inj = inj.var(k, v);
    }
    inj.run()
}

/// `n` injections into 10 queues must all succeed, none in `avoided`, and
/// every other queue used (P(a healthy queue unused) ≈ 9·(8/9)^n).
fn assert_skipped(
    base: &Path,
    queues: &[PathBuf],
    avoided: usize,
    n: usize,
    extra: &[(&str, &str)],
) {
    for _ in 0..n {
        inject(base, 10, extra).assert_exit(0);
    }
    let c = counts(queues);
    assert_eq!(c.iter().sum::<usize>(), n, "{c:?}");
    assert_eq!(c[avoided], 0, "the unusable queue was used: {c:?}");
    for (i, &k) in c.iter().enumerate() {
        assert!(i == avoided || k > 0, "queue{} unused: {c:?}", i + 1);
    }
}

#[test]
fn one_missing_queue_of_ten_loses_no_injection() {
    let t = tempfile::tempdir().unwrap();
    let queues = make_queues(t.path(), 1, 10);
    fs::remove_dir_all(&queues[6]).unwrap();
    assert_skipped(t.path(), &queues, 6, 200, &[]);
    assert!(!queues[6].exists(), "qmail-multi must not create a queue");
}

#[test]
fn a_file_where_a_queue_should_be_is_skipped() {
    let t = tempfile::tempdir().unwrap();
    let queues = make_queues(t.path(), 1, 10);
    fs::remove_dir_all(&queues[2]).unwrap();
    fs::write(&queues[2], "not a queue").unwrap();
    for _ in 0..100 {
        inject(t.path(), 10, &[]).assert_exit(0);
    }
    let c: usize = queues
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, q)| messages_in(q))
        .sum();
    assert_eq!(c, 100);
}

#[test]
fn every_queue_short_of_space_is_53_and_none_existing_is_62() {
    let t = tempfile::tempdir().unwrap();
    let queues = make_queues(t.path(), 1, 3);
    // No filesystem has 2^64-1 bytes free.
    let r = inject(
        t.path(),
        3,
        &[
            ("MIN_FREE", "18446744073709551615"),
            ("QMAIL_MULTI_DEBUG", "1"),
        ],
    );
    r.assert_exit(53);
    let err = r.stderr_text();
    for q in &queues {
        assert!(
            err.contains(&q.display().to_string()),
            "names every queue: {err}"
        );
    }
    assert!(err.contains("MIN_FREE"), "{err}");
    // A mixture of missing and short queues: the existing ones are full.
    fs::remove_dir_all(&queues[0]).unwrap();
    inject(t.path(), 3, &[("MIN_FREE", "18446744073709551615")]).assert_exit(53);
    // Nothing at all.
    let r = inject(&t.path().join("absent"), 10, &[]);
    r.assert_exit(62);
    assert!(r.stderr.is_empty(), "{}", r.stderr_text());
    let total: usize = queues.iter().map(|q| files_written(q)).sum();
    assert_eq!(total, 0);
    // A modest MIN_FREE on a normal filesystem is met.
    inject(t.path(), 3, &[("MIN_FREE", "1")]).assert_exit(0);
}

/// Mounts a tmpfs as queue number `index + 1` and builds the queue in it.
fn tmpfs_queue(queues: &[PathBuf], index: usize, options: &str) -> Option<Tmpfs> {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return None;
    }
    fs::remove_dir_all(&queues[index]).unwrap();
    match Tmpfs::mount(&queues[index], options) {
        Ok(m) => {
            make_queue(&queues[index]);
            Some(m)
        }
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

#[test]
fn a_queue_below_min_free_is_skipped() {
    let t = tempfile::tempdir().unwrap();
    let queues = make_queues(t.path(), 1, 10);
    let Some(_mount) = tmpfs_queue(&queues, 4, "size=1m,mode=0755") else {
        return;
    };
    // 8 MiB: the 1 MiB tmpfs is short, the scratch filesystem is not.
    let stat = nix::sys::statvfs::statvfs(t.path()).unwrap();
    let free = stat.blocks_available() as u128 * stat.fragment_size() as u128;
    if free < 64 << 20 {
        eprintln!("skipped: {} has under 64 MiB free", t.path().display());
        return;
    }
    assert_skipped(t.path(), &queues, 4, 150, &[("MIN_FREE", "8388608")]);
}

#[test]
fn a_queue_without_free_inodes_is_skipped() {
    let t = tempfile::tempdir().unwrap();
    let queues = make_queues(t.path(), 1, 10);
    let Some(_mount) = tmpfs_queue(&queues, 7, "size=4m,nr_inodes=200,mode=0755") else {
        return;
    };
    // Use up every remaining inode.
    // trash/, which no queue needs (queue-fix -t), holds the filler.
    let filler = queues[7].join("trash");
    fs::create_dir(&filler).unwrap();
    for i in 0.. {
        if fs::File::create(filler.join(i.to_string())).is_err() {
            break;
        }
    }
    let stat = nix::sys::statvfs::statvfs(&queues[7]).unwrap();
    assert_eq!(stat.files_available(), 0, "the tmpfs still has inodes");
    // No MIN_FREE: a full inode table is unusable on its own.
    assert_skipped(t.path(), &queues, 7, 150, &[]);
}
