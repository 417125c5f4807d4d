//! A faithful qmail-queue, for tests, benchmarks and the demo only: no
//! package installs it. It writes one message exactly as "a message's life"
//! in the layout contract describes, so queue-fix and qmail-multi are
//! exercised against the files a real qmail-queue leaves.

use super::layout::{Layout, INTD, MESS, PID, TODO, TRIGGER};
use crate::exit::QueueExit;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a deposit failed, with the exit status qmail-queue would use.
#[derive(Debug)]
pub struct DepositError {
    pub exit: QueueExit,
    pub what: String,
}

impl std::fmt::Display for DepositError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.exit.meaning(), self.what)
    }
}

fn fail(exit: QueueExit, what: impl Into<String>) -> impl FnOnce(io::Error) -> DepositError {
    let what = what.into();
    move |e| DepositError {
        exit,
        what: format!("{what}: {e}"),
    }
}

/// How to write.
#[derive(Clone, Copy, Debug)]
pub struct DepositOptions {
    /// Where the files go: the split, and `BIGTODO` for `todo`/`intd`.
    pub layout: Layout,
    /// fsync the message and envelope before linking into `todo`, as a
    /// production qmail-queue does.
    pub sync: bool,
    /// Prepend qmail-queue's `Received:` line.
    pub received_line: bool,
}

/// A parsed envelope: sender and recipients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub sender: Vec<u8>,
    pub recipients: Vec<Vec<u8>>,
}

impl Envelope {
    /// The wire form a qmail-queue caller writes on descriptor 1.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut w = vec![b'F'];
        w.extend_from_slice(&self.sender);
        w.push(0);
        for r in &self.recipients {
            w.push(b'T');
            w.extend_from_slice(r);
            w.push(0);
        }
        w.push(0);
        w
    }

    /// Reads one envelope to its terminating empty entry, and no further.
    pub fn read_from(input: &mut impl BufRead) -> Result<Envelope, DepositError> {
        let mut entry = Vec::new();
        let mut next = |entry: &mut Vec<u8>| -> Result<(), DepositError> {
            entry.clear();
            input
                .read_until(0, entry)
                .map_err(fail(QueueExit::CannotReadInput, "reading the envelope"))?;
            if entry.pop() != Some(0) {
                return Err(DepositError {
                    exit: QueueExit::CannotReadInput,
                    what: "the envelope ended early".into(),
                });
            }
            Ok(())
        };
        next(&mut entry)?;
        let sender = match entry.split_first() {
            Some((b'F', s)) => s.to_vec(),
            _ => return Err(format_error("the envelope does not start with F")),
        };
        let mut recipients = Vec::new();
        loop {
            next(&mut entry)?;
            match entry.split_first() {
                None => break,
                Some((b'T', r)) => recipients.push(r.to_vec()),
                Some(_) => return Err(format_error("an envelope entry does not start with T")),
            }
        }
        if recipients.is_empty() {
            return Err(format_error("the envelope has no recipient"));
        }
        Ok(Envelope { sender, recipients })
    }
}

fn format_error(what: &str) -> DepositError {
    DepositError {
        exit: QueueExit::EnvelopeFormat,
        what: what.into(),
    }
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// The message into its `mess` file, after qmail-queue's `Received:` line
/// when asked, synced when asked.
fn write_message(
    mess: &mut File,
    message: &mut impl Read,
    opts: &DepositOptions,
    pid: u32,
    now: u64,
) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, &mut *mess);
    if opts.received_line {
        writeln!(
            out,
            "Received: (qmail {pid} invoked by uid {}); {}",
            nix::unistd::getuid(),
            rfc2822_date(now)
        )?;
    }
    io::copy(message, &mut out)?;
    out.flush()?;
    drop(out);
    if opts.sync {
        mess.sync_all()?;
    }
    Ok(())
}

/// Writes one message into `queue`, returning its inode number (its name).
pub fn deposit(
    queue: &Path,
    message: &mut impl Read,
    envelope: &Envelope,
    opts: DepositOptions,
) -> Result<u64, DepositError> {
    let pid = std::process::id();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let pid_path = queue.join(PID).join(format!("{pid}.{now}.{seq}"));
    let new_file = |path: &Path| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
    };
    let mut mess = new_file(&pid_path).map_err(fail(
        QueueExit::WriteFailed,
        format!("creating {}", crate::fsx::escape::path(&pid_path)),
    ))?;
    let inode = mess
        .metadata()
        .map_err(fail(QueueExit::WriteFailed, "fstat of the pid file"))?
        .ino();
    let at = |dir: &str| -> PathBuf { queue.join(opts.layout.message_path(dir, inode)) };
    let mess_path = at(MESS);
    let linked = fs::hard_link(&pid_path, &mess_path).map_err(fail(
        QueueExit::WriteFailed,
        format!("linking {}", crate::fsx::escape::path(&mess_path)),
    ));
    // The pid file goes whether or not the link worked: it names nothing.
    let _ = fs::remove_file(&pid_path);
    linked?;
    let written = write_message(&mut mess, message, &opts, pid, now);
    if let Err(e) = written {
        let _ = fs::remove_file(&mess_path);
        return Err(fail(
            QueueExit::WriteFailed,
            format!("writing {}", crate::fsx::escape::path(&mess_path)),
        )(e));
    }

    let intd_path = at(INTD);
    let mut intd = new_file(&intd_path).map_err(fail(
        QueueExit::WriteFailed,
        format!("creating {}", crate::fsx::escape::path(&intd_path)),
    ))?;
    let mut env = format!("u{}\0p{pid}\0", nix::unistd::getuid()).into_bytes();
    env.extend_from_slice(&envelope.to_wire());
    intd.write_all(&env)
        .and_then(|()| if opts.sync { intd.sync_all() } else { Ok(()) })
        .map_err(fail(
            QueueExit::WriteFailed,
            format!("writing {}", crate::fsx::escape::path(&intd_path)),
        ))?;
    let todo_path = at(TODO);
    fs::hard_link(&intd_path, &todo_path).map_err(fail(
        QueueExit::WriteFailed,
        format!("linking {}", crate::fsx::escape::path(&todo_path)),
    ))?;
    poke_trigger(&queue.join(TRIGGER));
    Ok(inode)
}

/// One non-blocking byte to wake qmail-send; nobody listening is fine.
fn poke_trigger(path: &Path) {
    if let Ok(mut fifo) = OpenOptions::new()
        .write(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)
    {
        let _ = fifo.write(&[0]);
    }
}

/// Reads the envelope from descriptor 1 the way qmail-queue does.
pub fn read_envelope_from_fd1() -> Result<Envelope, DepositError> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: descriptor 1 is the envelope input in the qmail-queue
    // protocol; it is handed back below and never closed here.
    let fd1 = unsafe { File::from_raw_fd(1) };
    let mut reader = BufReader::with_capacity(4096, fd1);
    let result = Envelope::read_from(&mut reader);
    let _ = reader.into_inner().into_raw_fd();
    result
}

/// `Errno` of an io error, for callers that branch on the cause.
pub fn errno_of(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// `Sun, 29 Nov 2026 02:20:10 +0000` for a Unix time in seconds.
pub fn rfc2822_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc2822_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc2822_date(1_795_918_810),
            "Sun, 29 Nov 2026 02:20:10 +0000"
        );
        assert_eq!(rfc2822_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn envelope_round_trip_and_stops_at_its_end() {
        let env = Envelope {
            sender: b"a@example.org".to_vec(),
            recipients: vec![b"b@example.org".to_vec(), b"c@example.org".to_vec()],
        };
        let mut wire = env.to_wire();
        wire.extend_from_slice(b"trailing");
        let mut input = io::Cursor::new(wire);
        assert_eq!(Envelope::read_from(&mut input).unwrap(), env);
        let mut rest = String::new();
        input.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "trailing");
    }

    #[test]
    fn malformed_envelopes() {
        let read = |b: &[u8]| {
            Envelope::read_from(&mut io::Cursor::new(b.to_vec()))
                .unwrap_err()
                .exit
        };
        assert_eq!(read(b"Xa\0Tb\0\0"), QueueExit::EnvelopeFormat);
        assert_eq!(read(b"Fa\0Xb\0\0"), QueueExit::EnvelopeFormat);
        assert_eq!(read(b"Fa\0\0"), QueueExit::EnvelopeFormat);
        assert_eq!(read(b"Fa\0Tb"), QueueExit::CannotReadInput);
    }

    #[test]
    fn bigtodo_0_writes_a_flat_todo_intd_pair_as_3x_qmail_queue() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let q = t.path();
        for d in ["pid", "mess/0", "mess/1", "mess/2", "todo", "intd", "lock"] {
            fs::create_dir_all(q.join(d)).unwrap();
        }
        let layout = Layout {
            big_todo: false,
            ..Layout::new(3)
        };
        let opts = DepositOptions {
            layout,
            sync: false,
            received_line: false,
        };
        let env = Envelope {
            sender: b"a@example.org".to_vec(),
            recipients: vec![b"b@example.org".to_vec()],
        };
        let ino = deposit(q, &mut &b"Subject: x\n\nbody\n"[..], &env, opts).unwrap();
        let mess = q
            .join("mess")
            .join((ino % 3).to_string())
            .join(ino.to_string());
        assert_eq!(mess.metadata().unwrap().ino(), ino);
        let todo = q.join("todo").join(ino.to_string());
        let intd = q.join("intd").join(ino.to_string());
        let (t, i) = (todo.metadata().unwrap(), intd.metadata().unwrap());
        assert_eq!((t.ino(), t.nlink()), (i.ino(), 2));
        assert_eq!(fs::read_dir(q.join("todo")).unwrap().count(), 1);
    }
}
