//! The disabled marker means the same to every tool: only a regular file
//! disables a queue. A directory, named pipe, symlink or socket under its
//! name is ignored by qmail-multi (as root, which can see it, and as an
//! unprivileged injector, which sees only the root's bit), reported by
//! `queue-fix -N` as one problem and set aside into quarantine by a repair.
//! The root's bit alone disables for every injector (an unprivileged one
//! cannot look further) until queue-fix, which follows the marker, clears
//! it. queue-stat judges it as qmail-multi does. Through the real binaries,
//! on a base whose name needs escaping.

mod multi_support;

use multi_support::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An injector that is neither root nor in the queue's group.
const INJECTOR: u32 = 4321;

fn queue_fix(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_queue-fix"))
        .args(["--as-invoker", "-s", "7"])
        .args(args)
        .env_remove("CONFSPLIT")
        .env_remove("BIGTODO")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Nothing but printable ASCII and newlines: every name was escaped.
fn escaped(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b'\n' || (0x20..0x7f).contains(&c))
}

/// One injection into the single queue of `base`; `as_user` runs it as
/// [`INJECTOR`]. The queue program only says where it was sent.
fn inject(base: &Path, prog: &Path, as_user: bool) -> Outcome {
    let mut i = Injection::new(&[])
        .var("QUEUE_BASE", base)
        .var("QUEUE_COUNT", "1")
        .var("QUEUEPROG", prog)
        .var("QMAILHOME", "/")
        .var("QMAIL_MULTI_DEBUG", "1");
    if as_user {
        i.via = as_user_via();
    }
    i.run()
}

fn as_user_via() -> Vec<std::ffi::OsString> {
    as_user(INJECTOR)
}

/// Whether qmail-multi sends mail to the queue (as root, and as an
/// unprivileged injector when the test runs as root).
fn takes_mail(base: &Path, prog: &Path) -> Vec<bool> {
    let mut v = Vec::new();
    let runs: &[bool] = if is_root() { &[false, true] } else { &[false] };
    for &as_user in runs {
        let r = inject(base, prog, as_user);
        let err = r.stderr_text();
        assert!(escaped(&r.stderr), "raw bytes printed: {err:?}");
        match r.code() {
            Some(0) => {
                assert!(err.contains("queued into"), "{err}");
                v.push(true);
            }
            Some(62) => {
                assert!(err.contains("every queue is disabled"), "{err}");
                v.push(false);
            }
            _ => r.assert_exit(0),
        }
    }
    // queue-stat judges it with the same probe.
    let o = Command::new(env!("CARGO_BIN_EXE_queue-stat"))
        .arg(base.join("queue1"))
        .output()
        .unwrap();
    let says_disabled = text(&o.stdout).contains(" disabled ");
    assert_eq!(says_disabled, !v[0], "queue-stat: {}", text(&o.stdout));
    v
}

/// A repair that leaves the queue correct: status 0 (IndiMail 3.x) or,
/// before that, the count of what it repaired; nothing said on stderr.
fn repair(q: &Path, problems: i32) {
    let o = queue_fix(&[q.as_os_str()]);
    let code = o.status.code();
    assert!(
        code == Some(0) || code == Some(problems),
        "{code:?}: {}",
        text(&o.stderr)
    );
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

enum Kind {
    Dir,
    Fifo,
    Symlink,
    Dangling,
    Socket,
}

fn plant(marker: &Path, kind: &Kind, keep: &mut Vec<std::os::unix::net::UnixListener>) {
    match kind {
        Kind::Dir => {
            fs::create_dir(marker).unwrap();
            fs::write(marker.join("inside"), "x").unwrap();
        }
        Kind::Fifo => {
            nix::unistd::mkfifo(marker, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap()
        }
        // To a regular file: lstat must decide, never stat.
        Kind::Symlink => std::os::unix::fs::symlink("/etc/passwd", marker).unwrap(),
        Kind::Dangling => std::os::unix::fs::symlink("/nonexistent/x", marker).unwrap(),
        Kind::Socket => keep.push(std::os::unix::net::UnixListener::bind(marker).unwrap()),
    }
}

#[test]
fn only_a_regular_marker_disables_anything_else_is_ignored_reported_and_set_aside() {
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let base: PathBuf = t.path().join("b\x1b[2Jase\n");
    fs::create_dir(&base).unwrap();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    let prog = script(t.path(), "qq", "echo \"queued into ${QUEUEDIR##*/}\" >&2");
    let q = base.join("queue1");
    let o = queue_fix(&[q.as_os_str()]);
    assert!(
        o.status.code().is_some_and(|c| c < 100),
        "{}",
        text(&o.stderr)
    );
    let marker = q.join("disabled");
    let both = |b: bool| if is_root() { vec![b, b] } else { vec![b] };
    assert_eq!(takes_mail(&base, &prog), both(true));

    // Regular (queue-fix --disable: marker and bit): disabled for all, a
    // state and not a problem for queue-fix.
    assert!(queue_fix(&["--disable".as_ref(), q.as_os_str()])
        .status
        .success());
    assert_eq!(takes_mail(&base, &prog), both(false));
    let o = queue_fix(&["-N".as_ref(), q.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("disabled: qmail-multi sends it no new mail"));
    assert!(queue_fix(&["--enable".as_ref(), q.as_os_str()])
        .status
        .success());
    // A regular marker with a second link still disables (nothing writes
    // to it or changes its owner or mode).
    let other = t.path().join("other-name");
    fs::write(&other, "").unwrap();
    fs::hard_link(&other, &marker).unwrap();
    assert!(!takes_mail(&base, &prog)[0], "seen by root");
    fs::remove_file(&marker).unwrap();

    let mut keep = Vec::new();
    for (kind, word) in [
        (Kind::Dir, "a directory"),
        (Kind::Fifo, "a named pipe"),
        (Kind::Symlink, "a symbolic link"),
        (Kind::Dangling, "a symbolic link"),
        (Kind::Socket, "a socket"),
    ] {
        plant(&marker, &kind, &mut keep);
        assert_eq!(takes_mail(&base, &prog), both(true), "{word}");
        let o = queue_fix(&["-N".as_ref(), q.as_os_str()]);
        let out = text(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "{word}: one problem: {out}");
        assert!(escaped(&o.stdout) && escaped(&o.stderr), "{out:?}");
        let line = out.lines().find(|l| l.contains("quarantine")).unwrap();
        assert!(
            line.contains("disabled") && line.contains(word) && line.contains("b\\x1b[2Jase\\x0a"),
            "{line}"
        );
        assert!(!out.contains("disabled: qmail-multi"), "{out}");
        // The repair sets it aside, whole; the queue is then clean.
        repair(&q, 1);
        assert!(fs::symlink_metadata(&marker).is_err(), "{word} still there");
        let aside = q.join("quarantine").join("disabled");
        let st = fs::symlink_metadata(&aside).unwrap();
        if let Kind::Dir = kind {
            assert!(aside.join("inside").exists());
        }
        assert_eq!(st.file_type().is_symlink(), word == "a symbolic link");
        fs::remove_dir_all(&aside)
            .or_else(|_| fs::remove_file(&aside))
            .unwrap();
        let o = queue_fix(&["-N".as_ref(), q.as_os_str()]);
        assert_eq!(o.status.code(), Some(0), "{word}: {}", text(&o.stdout));
        assert_eq!(takes_mail(&base, &prog), both(true), "{word}");
    }

    // The root's bit without a regular marker: disabled for every injector
    // alike; queue-fix follows the marker: two problems (the bit, the
    // directory), both repaired, and the queue takes mail again.
    plant(&marker, &Kind::Dir, &mut keep);
    let mode = fs::metadata(&q).unwrap().permissions().mode();
    fs::set_permissions(&q, fs::Permissions::from_mode(mode | 0o1000)).unwrap();
    assert_eq!(takes_mail(&base, &prog), both(false));
    let o = queue_fix(&["-N".as_ref(), q.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    repair(&q, 2);
    assert_eq!(fs::metadata(&q).unwrap().permissions().mode() & 0o1000, 0);
    assert_eq!(takes_mail(&base, &prog), both(true));
}
