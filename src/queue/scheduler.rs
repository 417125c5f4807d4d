//! qscheduler's view of the queues: its shared-memory segments, read under
//! the one trust rule (IndiMail 3.x's `DYNAMIC_QUEUE`).
//!
//! The layout, as qscheduler writes it: segment `/qscheduler` holds C
//! `int`s, the first being the number of queues in use (qscheduler grows
//! it under load); segment `/queueN`, N from 1, holds five `int`s: local
//! and remote concurrency in use, local and remote maximum, and a flag
//! that is non-zero while the queue is disabled.
//!
//! [`parse_count`], [`parse_load`] and [`judge_segment`] are pure
//! (qmail-multi's `multi::dynamic::order` ranks the loads); [`read`]
//! (qmail-multi's hot path) and [`read_queues`] (the public reader for
//! status reports) are thin readers. Anything unexpected is a
//! [`Fallback`] (the caller then chooses at random and logs one warning),
//! never a failed injection. Segment `N` describes queue number
//! `QUEUE_START + N - 1` (with the default `QUEUE_START=1`, `/queueN` is
//! `queueN`; qscheduler itself always numbers its queues from 1, so use it
//! with `QUEUE_START=1`).
//!
//! Who writes them (IndiMail's `indimail-mta-x/qscheduler.c`, commit
//! 015694f155f0945c497354b4c2da42925e00969b, `create_ipc`): qscheduler, as
//! root, creates `/qscheduler` mode 0644 and `chown`s it to `auto_uido`
//! (root) group qmail, and creates each `/queueN` mode 0644 and `fchown`s
//! it to `auto_uids` (qmails, the qmail-send user) group qmail, whose
//! qmail-send then fills it. So a segment is trusted when it is a regular
//! file with exactly one link (a second name means someone linked it from
//! elsewhere, e.g. with `fs.protected_hardlinks=0`), owned by root or by
//! qmails, and writable by its owner only. /dev/shm is world-writable:
//! anything else could have been planted there to steer or refuse mail.
//!
//! What the rule cannot see: when a segment's name already exists,
//! qscheduler adopts it — `shm_open(O_CREAT|O_EXCL)` fails with EEXIST and
//! it then runs `chmod("/dev/shm/queueN", 0644)` and `chown(…, auto_uids,
//! auto_gidq)` (and the same for `/dev/shm/qscheduler`) by path, in the
//! same `create_ipc`. A local user who made the file before qscheduler
//! started and kept it open for writing still writes through that
//! descriptor once it is qmails' or root's, and no `fstat` tells; a
//! symlink there is even followed by that chown. Only starting qscheduler
//! with no stale segment in /dev/shm (removed by root first) closes it.

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};
use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use super::config::MAX_COUNT;

/// Where Linux keeps POSIX shared memory (`shm_open("/x")` is this dir's `x`).
pub const SHM_DIR: &str = "/dev/shm";
/// qscheduler's segment holding the queue count.
pub const SCHEDULER: &str = "qscheduler";
/// The qmail-send user, owner of the `/queueN` segments.
pub const QMAIL_SEND_USER: &str = "qmails";
/// Where that user's uid is looked up (see [`qmails_uid`]).
pub const PASSWD: &str = "/etc/passwd";
const INT: usize = std::mem::size_of::<nix::libc::c_int>();
/// Bytes of one `/queueN` segment that are read.
pub const QUEUE_SEGMENT_BYTES: usize = 5 * INT;

/// One queue's figures from `/queueN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLoad {
    pub local_used: i32,
    pub remote_used: i32,
    pub local_max: i32,
    pub remote_max: i32,
    pub disabled: i32,
}

impl QueueLoad {
    /// Never chosen: disabled by qscheduler, or no concurrency to deliver.
    pub fn eligible(&self) -> bool {
        self.disabled == 0 && self.local_max > 0 && self.remote_max > 0
    }

    /// How this eligible queue's load compares with `other`'s, exactly.
    pub fn cmp_load(&self, other: &QueueLoad) -> std::cmp::Ordering {
        let (x, y) = (self.load(), other.load());
        if less(x, y) {
            std::cmp::Ordering::Less
        } else if less(y, x) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }

    /// The larger of used/maximum for local and remote, as a fraction
    /// (numerator, denominator), exact. Only for eligible queues.
    fn load(&self) -> (i64, i64) {
        let local = (i64::from(self.local_used.max(0)), i64::from(self.local_max));
        let remote = (
            i64::from(self.remote_used.max(0)),
            i64::from(self.remote_max),
        );
        if less(local, remote) {
            remote
        } else {
            local
        }
    }
}

/// a/b < c/d for positive denominators, without rounding.
fn less(a: (i64, i64), c: (i64, i64)) -> bool {
    i128::from(a.0) * i128::from(c.1) < i128::from(c.0) * i128::from(a.1)
}

/// Why the shared memory was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fallback {
    Absent(String),
    Unreadable(String, Errno),
    /// Fails the trust rule (see the module's documentation): anyone could
    /// have planted it in the world-writable /dev/shm.
    Untrusted(String, Distrust),
    Short {
        segment: String,
        bytes: usize,
    },
    BadCount(i64),
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::Absent(s) => {
                write!(f, "{SHM_DIR}/{s} does not exist (qscheduler not running?)")
            }
            Fallback::Unreadable(s, e) => write!(f, "cannot read {SHM_DIR}/{s}: {}", e.desc()),
            Fallback::Untrusted(s, why) => write!(
                f,
                "{SHM_DIR}/{s} is not trusted: {why} (qscheduler's segments are regular \
                 files with one link, owned by root or {QMAIL_SEND_USER}, writable by their \
                 owner only)"
            ),
            Fallback::Short { segment, bytes: 0 } => write!(
                f,
                "{SHM_DIR}/{segment} is empty (its qmail-send has not filled it yet)"
            ),
            Fallback::Short { segment, bytes } => {
                write!(f, "{SHM_DIR}/{segment} is too short ({bytes} bytes)")
            }
            Fallback::BadCount(n) => {
                write!(
                    f,
                    "{SHM_DIR}/{SCHEDULER} gives {n} queues, not 1 to {MAX_COUNT}"
                )
            }
        }
    }
}

/// Why a segment is not trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distrust {
    NotRegular,
    Links(u64),
    /// Owned by this uid, neither root nor the qmail-send user.
    Owner(u32),
    /// Group or others may write it (its permission bits).
    Writable(u32),
}

impl fmt::Display for Distrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distrust::NotRegular => f.write_str("not a regular file"),
            Distrust::Links(n) => write!(f, "it has {n} hard links"),
            Distrust::Owner(uid) => write!(f, "owned by uid {uid}"),
            Distrust::Writable(mode) => write!(f, "mode {mode:04o} lets others write it"),
        }
    }
}

/// The facts about a segment the trust rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentStat {
    pub regular: bool,
    pub nlink: u64,
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// The trust rule. `qmails` gives the qmail-send user's uid; it is asked
/// only for a segment that root does not own, since finding it costs a
/// read of [`PASSWD`] on qmail-multi's hot path.
pub fn judge_segment(
    st: SegmentStat,
    qmails: impl FnOnce() -> Option<u32>,
) -> Result<(), Distrust> {
    if !st.regular {
        return Err(Distrust::NotRegular);
    }
    if st.nlink != 1 {
        return Err(Distrust::Links(st.nlink));
    }
    if st.mode & 0o022 != 0 {
        return Err(Distrust::Writable(st.mode & 0o7777));
    }
    if st.uid != 0 && qmails() != Some(st.uid) {
        return Err(Distrust::Owner(st.uid));
    }
    Ok(())
}

/// The uid of `user` in a passwd file's text (or one line of it); `None`
/// when absent or malformed.
pub fn uid_in_passwd(text: &[u8], user: &str) -> Option<u32> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        if fields.next()? != user.as_bytes() {
            return None;
        }
        let uid = fields.nth(1)?;
        std::str::from_utf8(uid).ok()?.parse().ok()
    })
}

/// The qmail-send user's uid, read from [`PASSWD`] itself, once per
/// process. Not `getpwnam`: qmail-multi is linked statically (README,
/// "Start-up"), where glibc cannot load NSS modules, and a lookup through
/// NSS (nscd, LDAP) would cost far more than the injection it serves. The
/// qmail-send user is a local system account, always in /etc/passwd.
pub fn qmails_uid() -> Option<u32> {
    static UID: OnceLock<Option<u32>> = OnceLock::new();
    *UID.get_or_init(|| {
        use std::io::BufRead;
        // Line by line, stopping at the account: system accounts come
        // early, and a directory of many users must not be read whole on
        // every injection.
        let mut file = std::io::BufReader::new(std::fs::File::open(PASSWD).ok()?);
        let mut line = Vec::new();
        loop {
            line.clear();
            if file.read_until(b'\n', &mut line).ok()? == 0 {
                return None;
            }
            if let Some(uid) = uid_in_passwd(&line, QMAIL_SEND_USER) {
                return Some(uid);
            }
        }
    })
}

fn int_at(bytes: &[u8], i: usize) -> i32 {
    let mut b = [0u8; INT];
    b.copy_from_slice(&bytes[i * INT..(i + 1) * INT]);
    i32::from_ne_bytes(b)
}

/// The queue count from `/qscheduler`'s bytes.
pub fn parse_count(bytes: &[u8]) -> Result<u32, Fallback> {
    if bytes.len() < INT {
        return Err(Fallback::Short {
            segment: SCHEDULER.into(),
            bytes: bytes.len(),
        });
    }
    let n = int_at(bytes, 0);
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(Fallback::BadCount(i64::from(n))),
    }
}

/// One `/queueN` segment's figures from its bytes.
pub fn parse_load(segment: &str, bytes: &[u8]) -> Result<QueueLoad, Fallback> {
    if bytes.len() < QUEUE_SEGMENT_BYTES {
        return Err(Fallback::Short {
            segment: segment.into(),
            bytes: bytes.len(),
        });
    }
    Ok(QueueLoad {
        local_used: int_at(bytes, 0),
        remote_used: int_at(bytes, 1),
        local_max: int_at(bytes, 2),
        remote_max: int_at(bytes, 3),
        disabled: int_at(bytes, 4),
    })
}

/// The segment name of the `n`th queue (from 1).
pub fn queue_segment(n: u32) -> String {
    format!("queue{n}")
}

fn read_segment(dir: &OwnedFd, name: &str, buf: &mut [u8]) -> Result<usize, Fallback> {
    let fd = match openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Err(Fallback::Absent(name.into())),
        Err(e) => return Err(Fallback::Unreadable(name.into(), e)),
    };
    let st = fstat(&fd).map_err(|e| Fallback::Unreadable(name.into(), e))?;
    let facts = SegmentStat {
        regular: SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG,
        #[allow(clippy::useless_conversion)] // nlink_t is u32 on some targets
        nlink: u64::from(st.st_nlink),
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
    };
    judge_segment(facts, qmails_uid).map_err(|why| Fallback::Untrusted(name.into(), why))?;
    // One read of at most buf.len() bytes: never past the segment's end.
    loop {
        match nix::unistd::read(&fd, buf) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Fallback::Unreadable(name.into(), e)),
        }
    }
}

fn open_shm() -> Result<OwnedFd, Fallback> {
    open(
        SHM_DIR,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ENOENT => Fallback::Absent(String::new()),
        e => Fallback::Unreadable(String::new(), e),
    })
}

/// The number of queues qscheduler has in use (the first `int` of
/// `/qscheduler`), under the same trust rule as every segment.
pub fn read_in_use() -> Result<u32, Fallback> {
    let mut buf = [0u8; INT];
    let n = read_segment(&open_shm()?, SCHEDULER, &mut buf)?;
    parse_count(&buf[..n])
}

/// Reads qscheduler's segments: every queue's figures, `/queue1` first.
pub fn read() -> Result<Vec<QueueLoad>, Fallback> {
    let dir = open_shm()?;
    let mut buf = [0u8; QUEUE_SEGMENT_BYTES];
    let n = read_segment(&dir, SCHEDULER, &mut buf[..INT])?;
    let count = parse_count(&buf[..n])?;
    let mut loads = Vec::with_capacity(count as usize);
    for i in 1..=count {
        let name = queue_segment(i);
        let n = read_segment(&dir, &name, &mut buf)?;
        loads.push(parse_load(&name, &buf[..n])?);
    }
    Ok(loads)
}

/// One queue's figures with the queue they describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFigures {
    /// The queue number: `QUEUE_START + segment - 1`.
    pub queue: u64,
    /// The segment's number (`/queue<segment>`), from 1.
    pub segment: u32,
    pub load: QueueLoad,
}

/// The public reader (queue-stat): every queue qscheduler has in use, each
/// with the queue number it describes (segment `N` is queue
/// `start + N - 1`), under the trust rule. The first segment that is
/// absent, untrusted or malformed makes the whole reading a [`Fallback`],
/// as for qmail-multi: a partial picture would mislead.
pub fn read_queues(start: u64) -> Result<Vec<QueueFigures>, Fallback> {
    Ok(read()?
        .into_iter()
        .zip(1u32..)
        .map_while(|(load, segment)| {
            Some(QueueFigures {
                queue: start.checked_add(u64::from(segment) - 1)?,
                segment,
                load,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(ints: &[i32]) -> Vec<u8> {
        ints.iter().flat_map(|i| i.to_ne_bytes()).collect()
    }

    #[test]
    fn counts_and_their_bounds() {
        assert_eq!(parse_count(&bytes(&[3])), Ok(3));
        assert_eq!(parse_count(&bytes(&[3, 10])), Ok(3));
        assert!(matches!(
            parse_count(&[1, 0]),
            Err(Fallback::Short { bytes: 2, .. })
        ));
        assert_eq!(parse_count(&bytes(&[0])), Err(Fallback::BadCount(0)));
        assert_eq!(parse_count(&bytes(&[-1])), Err(Fallback::BadCount(-1)));
        assert_eq!(
            parse_count(&bytes(&[MAX_COUNT as i32 + 1])),
            Err(Fallback::BadCount(i64::from(MAX_COUNT) + 1))
        );
        assert!(matches!(
            parse_load("queue2", &bytes(&[1, 2, 3, 4])),
            Err(Fallback::Short { bytes: 16, .. })
        ));
    }

    #[test]
    fn trust_rule_root_or_qmails_one_link_owner_writes_only() {
        let ok = SegmentStat {
            regular: true,
            nlink: 1,
            uid: 0,
            mode: 0o644,
        };
        let never = || -> Option<u32> { panic!("root's segment needs no lookup") };
        assert_eq!(judge_segment(ok, never), Ok(()));
        let qmails = SegmentStat { uid: 1007, ..ok };
        assert_eq!(judge_segment(qmails, || Some(1007)), Ok(()));
        assert_eq!(
            judge_segment(qmails, || Some(1008)),
            Err(Distrust::Owner(1007))
        );
        assert_eq!(judge_segment(qmails, || None), Err(Distrust::Owner(1007)));
        assert_eq!(
            judge_segment(SegmentStat { nlink: 2, ..qmails }, || Some(1007)),
            Err(Distrust::Links(2))
        );
        assert_eq!(
            judge_segment(SegmentStat { mode: 0o664, ..ok }, never),
            Err(Distrust::Writable(0o664))
        );
        assert_eq!(
            judge_segment(
                SegmentStat {
                    mode: 0o646,
                    ..qmails
                },
                || Some(1007)
            ),
            Err(Distrust::Writable(0o646))
        );
        assert_eq!(
            judge_segment(
                SegmentStat {
                    regular: false,
                    ..ok
                },
                never
            ),
            Err(Distrust::NotRegular)
        );
        // Owner-only write bits are the owner's business.
        assert_eq!(
            judge_segment(SegmentStat { mode: 0o600, ..ok }, never),
            Ok(())
        );
    }

    #[test]
    fn the_qmail_send_user_from_passwd_text() {
        let text = b"root:x:0:0:root:/root:/bin/sh\nqmailsx:x:5:5::/:/bin/false\n\
                     qmails:x:1007:1001::/var/indimail:/sbin/nologin\n";
        assert_eq!(uid_in_passwd(text, "qmails"), Some(1007));
        assert_eq!(uid_in_passwd(text, "root"), Some(0));
        assert_eq!(uid_in_passwd(text, "qmail"), None);
        assert_eq!(
            uid_in_passwd(b"qmails:x:abc:1::/:/bin/sh\n", "qmails"),
            None
        );
        assert_eq!(uid_in_passwd(b"qmails:x\n", "qmails"), None);
        assert_eq!(uid_in_passwd(b"", "qmails"), None);
    }
}
