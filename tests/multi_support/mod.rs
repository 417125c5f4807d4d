//! Shared helpers for the qmail-multi integration tests: queues built from
//! the layout table, and injections through the real binary with real
//! pipes on descriptors 0 and 1, the way qmail-smtpd calls qmail-queue.
#![allow(dead_code)]

use qmail_multi::queue::layout::{Kind, Layout, LAYOUT, PID};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Small split keeps queue creation quick.
pub const SPLIT: u32 = 7;

pub fn qmail_multi() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_qmail-multi"))
}

/// The test depositor, built by `cargo test` next to the binaries.
pub fn depositor() -> PathBuf {
    let p = qmail_multi()
        .parent()
        .unwrap()
        .join("examples/test-qmail-queue");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --examples` (plain `cargo test` builds it)",
        p.display()
    );
    p
}

/// Creates one queue owned by the invoking user, from the layout table.
pub fn make_queue(root: &Path) {
    let shape = Layout::new(SPLIT);
    for e in shape.entries() {
        let path = if e.path == "." {
            root.to_path_buf()
        } else {
            root.join(e.path)
        };
        match e.kind {
            Kind::Dir => {
                if e.path == "." {
                    fs::create_dir_all(&path).unwrap();
                } else {
                    fs::create_dir(&path).unwrap();
                }
                if let Some(mode) = e.split_mode.filter(|_| shape.is_split(e)) {
                    for i in 0..SPLIT {
                        let sub = path.join(i.to_string());
                        fs::create_dir(&sub).unwrap();
                        fs::set_permissions(&sub, fs::Permissions::from_mode(mode)).unwrap();
                    }
                }
            }
            Kind::File { size } => fs::File::create(&path).unwrap().set_len(size).unwrap(),
            Kind::Fifo => {
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(e.mode))
                    .unwrap()
            }
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(e.mode)).unwrap();
    }
}

/// `base/queue<start> .. base/queue<start+count-1>`, all created.
pub fn make_queues(base: &Path, start: u64, count: u64) -> Vec<PathBuf> {
    (start..start + count)
        .map(|n| {
            let q = base.join(format!("queue{n}"));
            make_queue(&q);
            q
        })
        .collect()
}

fn files_under(dir: &Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.map(|e| e.unwrap())
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Messages queued (files in `mess`).
pub fn messages_in(queue: &Path) -> usize {
    files_under(&queue.join("mess"))
}

/// `messages_in` of each queue.
pub fn counts(queues: &[PathBuf]) -> Vec<usize> {
    queues.iter().map(|q| messages_in(q)).collect()
}

/// Every file an injection could have left: message directories and `pid`.
pub fn files_written(queue: &Path) -> usize {
    LAYOUT
        .iter()
        .filter(|e| e.holds_messages() || e.path == PID)
        .map(|e| files_under(&queue.join(e.path)))
        .sum()
}

/// The envelope qmail-smtpd would write for one recipient.
pub fn envelope() -> Vec<u8> {
    b"Fsender@example.org\0Trcpt@example.net\0\0".to_vec()
}

/// A small executable shell script.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// How the caller side behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeTiming {
    /// Right after the message, like qmail-smtpd.
    AfterMessage,
    /// Only once qmail-multi's filter has finished: wait for this marker
    /// file, then give qmail-multi a second to exit early if it would.
    AfterFilter,
    /// Never written: the write end is closed at once.
    Never,
}

/// One injection through the real binary.
pub struct Injection {
    pub env: Vec<(OsString, OsString)>,
    pub args: Vec<OsString>,
    pub message: Vec<u8>,
    /// Repeat `message` this many times (large messages without a large
    /// buffer).
    pub repeat: usize,
    pub envelope: Vec<u8>,
    pub timing: EnvelopeTiming,
    pub marker: Option<PathBuf>,
    /// Descriptor 1 is one end of a socketpair instead of a pipe, so a
    /// write to it by qmail-multi (or anything it runs) can be seen.
    pub fd1_socket: bool,
    /// Once this file exists, send qmail-multi this signal.
    pub signal_on_marker: Option<(PathBuf, nix::sys::signal::Signal)>,
    /// Runs qmail-multi under this program (e.g. `timeout 20`) and that
    /// program's status is the outcome.
    pub via: Vec<OsString>,
}

pub struct Outcome {
    pub status: ExitStatus,
    pub stderr: Vec<u8>,
    /// Bytes qmail-multi wrote to descriptor 1 (socketpair mode only).
    pub fd1_written: Vec<u8>,
    pub message_write: std::io::Result<()>,
    pub envelope_write: std::io::Result<()>,
    /// Peak resident set of qmail-multi and what it ran, in KiB.
    pub max_rss_kib: i64,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Exited normally with `code`; says why not otherwise.
    pub fn assert_exit(&self, code: i32) {
        assert_eq!(
            self.status.code(),
            Some(code),
            "status {:?} signal {:?}, stderr: {}",
            self.status.code(),
            self.status.signal(),
            self.stderr_text()
        );
    }
}

impl Injection {
    /// A plain injection: `vars` on top of an environment holding only PATH.
    pub fn new(vars: &[(&str, &OsStr)]) -> Injection {
        Injection {
            env: vars
                .iter()
                .map(|(k, v)| (OsString::from(k), v.to_os_string()))
                .collect(),
            args: Vec::new(),
            message: b"Subject: test\n\nhello\n".to_vec(),
            repeat: 1,
            envelope: envelope(),
            timing: EnvelopeTiming::AfterMessage,
            marker: None,
            fd1_socket: false,
            signal_on_marker: None,
            via: Vec::new(),
        }
    }

    pub fn var(mut self, k: &str, v: impl AsRef<OsStr>) -> Injection {
        self.env.push((k.into(), v.as_ref().to_os_string()));
        self
    }

    /// Queues through the test depositor into queues made with `SPLIT`;
    /// SYNC 0: the depositor skips its fsyncs (no test here crashes).
    pub fn depositing(self) -> Injection {
        self.var("QUEUEPROG", depositor())
            .var("QMAILHOME", "/")
            .var("CONFSPLIT", SPLIT.to_string())
            .var("SYNC", "0")
    }

    pub fn run(&self) -> Outcome {
        let mut cmd = match self.via.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(qmail_multi());
                c
            }
            None => Command::new(qmail_multi()),
        };
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.args)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped());
        // Descriptor 1 is the envelope INPUT: its read end goes to the child.
        let (child_fd1, mut env_writer, fd1_peer): (
            OwnedFd,
            Box<dyn Write + Send>,
            Option<UnixStream>,
        ) = if self.fd1_socket {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let writer = ours.try_clone().unwrap();
            (theirs.into(), Box::new(writer), Some(ours))
        } else {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            (r, Box::new(fs::File::from(w)), None)
        };
        cmd.stdout(Stdio::from(child_fd1));
        #[allow(clippy::zombie_processes)] // reaped by wait4 below, for its rusage
        let mut child = cmd.spawn().expect("spawning qmail-multi");
        drop(cmd); // our copy of the child's descriptor 1 must go
        let pid = child.id() as i32;
        if let Some((marker, signal)) = self.signal_on_marker.clone() {
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !marker.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
            });
        }
        let mut stdin = child.stdin.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let err_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = stderr.read_to_end(&mut v);
            v
        });
        let message = self.message.clone();
        let repeat = self.repeat;
        let envelope = self.envelope.clone();
        let timing = self.timing;
        let marker = self.marker.clone();
        let writer = std::thread::spawn(move || {
            let message_write = (|| {
                for _ in 0..repeat {
                    stdin.write_all(&message)?;
                }
                Ok(())
            })();
            drop(stdin);
            let envelope_write = match timing {
                EnvelopeTiming::Never => Ok(()),
                EnvelopeTiming::AfterMessage => env_writer.write_all(&envelope),
                EnvelopeTiming::AfterFilter => {
                    let marker = marker.expect("AfterFilter needs a marker");
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while !marker.exists() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    assert!(marker.exists(), "the filter never finished");
                    wait_for_exit_without_reaping(pid, Duration::from_secs(1));
                    env_writer.write_all(&envelope)
                }
            };
            drop(env_writer);
            (message_write, envelope_write)
        });
        let (status, max_rss_kib) = wait4(pid);
        let (message_write, envelope_write) = writer.join().unwrap();
        let stderr = err_reader.join().unwrap();
        let mut fd1_written = Vec::new();
        if let Some(mut peer) = fd1_peer {
            peer.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 4096];
            loop {
                match peer.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => fd1_written.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
        }
        Outcome {
            status,
            stderr,
            fd1_written,
            message_write,
            envelope_write,
            max_rss_kib,
        }
    }
}

/// Waits up to `limit` for `pid` to exit, leaving it to be reaped.
fn wait_for_exit_without_reaping(pid: i32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let mut info: nix::libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain waitid on our own child with WNOWAIT: nothing is reaped.
        let r = unsafe {
            nix::libc::waitid(
                nix::libc::P_PID,
                pid as nix::libc::id_t,
                &mut info,
                nix::libc::WEXITED | nix::libc::WNOHANG | nix::libc::WNOWAIT,
            )
        };
        if r == 0 && unsafe { info.si_pid() } == pid {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reaps `pid`, returning its status and peak RSS (KiB, its own and its
/// reaped descendants', across exec).
fn wait4(pid: i32) -> (ExitStatus, i64) {
    let mut status = 0;
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with valid out-pointers.
    let r = unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    (ExitStatus::from_raw(status), usage.ru_maxrss)
}

/// Whether this process runs as root (tmpfs mounts need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A small tmpfs mounted on `dir` for the life of the value.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, options: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs -o {options} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir: dir.into() })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Lazily, so a busy mount still goes once released.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The variable that marks the inner run of [`in_private_world`].
const WORLD_VARIABLE: &str = "QMAIL_MULTI_TEST_PRIVATE_WORLD";

/// Runs the test `test` (this test binary's own test of that name) again
/// inside a private mount namespace where `/dev/shm` is a fresh tmpfs and
/// `/etc` is a directory of our own holding `passwd` (root plus `users`,
/// each `(name, uid)` with a group of the same id), `group` (root, and
/// `qmail` = 7000) and a files-only `nsswitch.conf`; the host's own
/// `/dev/shm` and `/etc` are never touched. Not a bind mount over
/// /etc/passwd itself: the host's useradd replaces that file by rename.
///
/// Returns `Some(etc)` in the inner run (go on with the test; `etc` is the
/// private /etc, still writable through that path), `None` in the outer
/// one, which has then asserted the inner run's success or said why it was
/// skipped.
pub fn in_private_world(test: &str, users: &[(&str, u32)]) -> Option<PathBuf> {
    if let Some(etc) = std::env::var_os(WORLD_VARIABLE) {
        return Some(PathBuf::from(etc));
    }
    if !is_root() {
        println!("skipped: a private /dev/shm and /etc need root");
        return None;
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        println!("skipped: no unshare(1) for a private mount namespace");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    fs::create_dir(&etc).unwrap();
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\nqmail:x:7000:\n");
    for (name, uid) in users {
        passwd.push_str(&format!("{name}:x:{uid}:{uid}::/:/bin/false\n"));
        group.push_str(&format!("{name}:x:{uid}:\n"));
    }
    fs::write(etc.join("passwd"), passwd).unwrap();
    fs::write(etc.join("group"), group).unwrap();
    fs::write(etc.join("nsswitch.conf"), "passwd: files\ngroup: files\n").unwrap();
    let _ = fs::copy("/etc/ld.so.cache", etc.join("ld.so.cache"));
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs -o mode=1777,size=4m tmpfs /dev/shm && \
             mount --bind \"$1\" /etc && shift && exec \"$@\"",
        )
        .arg("sh")
        .arg(&etc)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(WORLD_VARIABLE, &etc)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the run in a private namespace failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    None
}

/// A `via` prefix that runs a program as `uid`:`uid`, without groups.
pub fn as_user(uid: u32) -> Vec<OsString> {
    [
        "setpriv".to_string(),
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".to_string(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}
