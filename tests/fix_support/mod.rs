//! Shared helpers of the queue-fix integration tests: running the real
//! binary, filling queues with the real depositor, snapshots of trees.
#![allow(dead_code)]

use qmail_multi::queue::deposit::{deposit, DepositOptions, Envelope};
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether the qmail accounts exist (tests that need them skip otherwise).
pub fn have_qmail_users() -> bool {
    qmail_multi::queue::users::resolve(qmail_multi::queue::users::Owners::Qmail { qmta: false })
        .is_ok()
}

/// Prints why a test is skipped; the caller returns.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_queue-fix")
}

/// Runs queue-fix with `args`.
pub fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    // No host settings but the test's own: a machine's
    // /etc/indimail/control/defaultqueue or ~/.defaultqueue would
    // otherwise choose the layout (queue::settings).
    c.args(args)
        .env_remove("CONFSPLIT")
        .env_remove("QUEUE_FIX_CRASH_AFTER")
        .env("CONTROLDIR", "/nonexistent/qmail-multi-test/control")
        .env("SKIP_LOCAL_ENVIRONMENT", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("running queue-fix")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard output after the settings line every run starts with
/// (queue-fix's `BIGTODO` and split and where they came from), which is
/// checked to be there.
#[track_caller]
pub fn after_settings(o: &Output) -> String {
    let text = out(o);
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    assert!(
        first.starts_with("queue-fix: CONFSPLIT") && first.contains("BIGTODO"),
        "no settings line first: {text}"
    );
    rest.to_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs queue-fix and insists on the exit status.
#[track_caller]
pub fn expect(args: &[&str], status: i32) -> Output {
    let o = run(args);
    assert_eq!(
        code(&o),
        status,
        "queue-fix {args:?}\nstdout:\n{}\nstderr:\n{}",
        out(&o),
        err(&o)
    );
    o
}

/// Deposits `n` small messages (distinct texts and envelopes) into `queue`.
pub fn fill(queue: &Path, n: usize, split: u32) -> Vec<u64> {
    fill_layout(queue, n, qmail_multi::queue::layout::Layout::new(split))
}

/// `n` messages deposited as qmail-queue writes them in `layout` (split
/// and `BIGTODO`); their inodes.
pub fn fill_layout(queue: &Path, n: usize, layout: qmail_multi::queue::layout::Layout) -> Vec<u64> {
    let opts = DepositOptions {
        layout,
        sync: false,
        received_line: false,
    };
    (0..n)
        .map(|i| {
            let env = Envelope {
                sender: format!("sender{i}@example.org").into_bytes(),
                recipients: vec![format!("rcpt{i}@example.net").into_bytes()],
            };
            let text = format!("Subject: message {i}\n\nbody {i}\n");
            deposit(queue, &mut text.as_bytes(), &env, opts).expect("deposit")
        })
        .collect()
}

/// Adds `info` and `remote` files, as qmail-send writes them, to a message
/// whose files are in subdirectory `sub` under `name`.
pub fn add_info_remote(queue: &Path, sub: u32, name: &str) {
    for (dir, body) in [
        ("info", "Fsender@example.org\0"),
        ("remote", "Trcpt@example.net\0"),
    ] {
        write_0600(&queue.join(dir).join(sub.to_string()).join(name), body);
    }
}

/// Writes a file with mode 0600 (the mode of info, local, remote, bounce).
pub fn write_0600(p: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(p, body).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// One entry of a tree snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub size: u64,
    pub ino: u64,
    pub hash: u64,
}

/// Every path below `root` (relative) with type, owner, group, mode, size,
/// inode and a hash of a regular file's content.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut map = BTreeMap::new();
    walk(root, root, &mut map);
    map
}

fn walk(root: &Path, dir: &Path, map: &mut BTreeMap<PathBuf, Node>) {
    let m = std::fs::symlink_metadata(dir).unwrap();
    map.insert(dir.strip_prefix(root).unwrap().to_owned(), node(dir, &m));
    if !m.is_dir() {
        return;
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        walk(root, &p, map);
    }
}

fn node(p: &Path, m: &std::fs::Metadata) -> Node {
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_file() {
        'f'
    } else if ft.is_fifo() {
        'p'
    } else {
        '?'
    };
    let hash = if ft.is_file() {
        hash_of(&std::fs::read(p).unwrap())
    } else {
        0
    };
    Node {
        kind,
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode() & 0o7777,
        size: m.size(),
        ino: m.ino(),
        hash,
    }
}

pub fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The messages of a queue as content hashes `(mess, envelope)`, sorted:
/// the envelope is `todo` (or `info` once qmail-send took it over). Every
/// `mess` file counts, so a message present twice shows twice.
pub fn messages(queue: &Path) -> Vec<(u64, u64)> {
    let mut v = Vec::new();
    let Ok(subs) = std::fs::read_dir(queue.join("mess")) else {
        return v;
    };
    for sub in subs {
        let sub = sub.unwrap();
        if !sub.file_type().unwrap().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(sub.path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name();
            let s = sub.file_name();
            let env = ["todo", "info"]
                .iter()
                .find_map(|d| std::fs::read(queue.join(d).join(&s).join(&name)).ok())
                .unwrap_or_default();
            v.push((hash_of(&std::fs::read(f.path()).unwrap()), hash_of(&env)));
        }
    }
    v.sort_unstable();
    v
}

/// Renames every file of message `ino` (found in subdirectory `from_sub`
/// of each split directory) to `new_name` in subdirectory `to_sub`: a
/// misnamed or misplaced message.
pub fn misplace(queue: &Path, ino: u64, from_sub: u32, to_sub: u32, new_name: &str) {
    for d in ["mess", "info", "local", "remote", "todo", "intd"] {
        let from = queue
            .join(d)
            .join(from_sub.to_string())
            .join(ino.to_string());
        if from.exists() {
            std::fs::create_dir_all(queue.join(d).join(to_sub.to_string())).unwrap();
            std::fs::rename(&from, queue.join(d).join(to_sub.to_string()).join(new_name)).unwrap();
        }
    }
}

/// A scratch directory under /tmp (a tempfile dir), as a path string.
pub fn scratch() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::Builder::new()
        .prefix("queue-fix-test")
        .tempdir()
        .unwrap();
    let p = t.path().to_owned();
    (t, p)
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
