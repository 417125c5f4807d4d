//! THE queue layout: every path, type, owner, group and mode of one queue.
//!
//! queue-fix, the tests and the test depositor read this table and nothing
//! else; a change to the on-disk contract is a change here.

/// Which qmail account owns an entry. The group is always `qmail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `qmailq`: writes new mail (qmail-queue).
    Queue,
    /// `qmails`: qmail-send.
    Send,
    /// `qmailr`: qmail-remote.
    Remote,
}

impl Role {
    /// The account name upstream uses for this role.
    pub fn user_name(self) -> &'static str {
        match self {
            Role::Queue => "qmailq",
            Role::Send => "qmails",
            Role::Remote => "qmailr",
        }
    }

    /// In qmta mode (`queue-fix -m`) one account, qmailq, plays every role.
    pub fn in_mode(self, qmta: bool) -> Role {
        if qmta {
            Role::Queue
        } else {
            self
        }
    }
}

/// The group of every entry of a queue.
pub const GROUP: &str = "qmail";

/// What kind of file system object an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A regular file of exactly this many bytes (zero-filled when created).
    File {
        size: u64,
    },
    Fifo,
}

/// When an entry belongs to a queue at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Always,
    /// Only when the rate-limit directory is asked for (`queue-fix -r`).
    WithRatelimit,
    /// Only when the trash directory is asked for (see [`Layout::trash`]).
    WithTrash,
}

/// One row of the layout table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the queue root; `"."` is the root itself.
    pub path: &'static str,
    pub kind: Kind,
    pub owner: Role,
    /// Permission bits of the entry itself.
    pub mode: u32,
    /// `Some(mode)`: a split directory, holding subdirectories `0..split-1`
    /// of this mode.
    pub split_mode: Option<u32>,
    /// Mode of the message files inside (inside the split subdirectories for
    /// a split directory). `None`: its content is not checked file by file.
    pub file_mode: Option<u32>,
    pub presence: Presence,
    /// Its files are created by qmail-queue (`mess`, `intd`, and `todo`,
    /// a link of `intd`), whose group is the queue's only when qmail-queue
    /// is setgid: see [`Flavour`].
    pub by_qmail_queue: bool,
}

impl Entry {
    pub fn is_split(&self) -> bool {
        self.split_mode.is_some()
    }

    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    /// A directory holding one file per message (`info`, `mess`, …, `bounce`).
    pub fn holds_messages(&self) -> bool {
        self.is_dir() && self.file_mode.is_some() && self.presence == Presence::Always
    }
}

const fn dir(path: &'static str, owner: Role, mode: u32) -> Entry {
    Entry {
        path,
        kind: Kind::Dir,
        owner,
        mode,
        split_mode: None,
        file_mode: None,
        presence: Presence::Always,
        by_qmail_queue: false,
    }
}

const fn split_dir(path: &'static str, owner: Role, mode: u32, file_mode: u32) -> Entry {
    Entry {
        split_mode: Some(mode),
        file_mode: Some(file_mode),
        ..dir(path, owner, mode)
    }
}

const fn file(path: &'static str, kind: Kind, owner: Role, mode: u32) -> Entry {
    Entry {
        kind,
        ..dir(path, owner, mode)
    }
}

/// Size of `lock/tcpto`: qmail-remote's table of hosts that timed out.
pub const TCPTO_SIZE: u64 = 2048;

/// Classic qmail's split: `conf-split` of qmail-1.03, netqmail and
/// notqmail says 23. See [`Layout::classic`].
pub const CLASSIC_SPLIT: u32 = 23;

/// Classic qmail's `lock/tcpto`: 1024 bytes. See [`Layout::classic`].
pub const CLASSIC_TCPTO_SIZE: u64 = 1024;

/// The table. Parents come before their children, so creating in this order
/// always works.
pub const LAYOUT: &[Entry] = &[
    dir(".", Role::Queue, 0o750),
    split_dir("info", Role::Send, 0o700, 0o600),
    Entry {
        by_qmail_queue: true,
        ..split_dir("mess", Role::Queue, 0o750, 0o644)
    },
    split_dir("remote", Role::Send, 0o700, 0o600),
    split_dir("local", Role::Send, 0o700, 0o600),
    Entry {
        by_qmail_queue: true,
        ..split_dir("todo", Role::Queue, 0o750, 0o644)
    },
    Entry {
        by_qmail_queue: true,
        ..split_dir("intd", Role::Queue, 0o700, 0o644)
    },
    Entry {
        file_mode: Some(0o600),
        ..dir("bounce", Role::Send, 0o700)
    },
    Entry {
        presence: Presence::WithTrash,
        ..dir("trash", Role::Queue, 0o700)
    },
    dir("pid", Role::Queue, 0o700),
    dir("lock", Role::Queue, 0o750),
    file("lock/sendmutex", Kind::File { size: 0 }, Role::Send, 0o600),
    file(
        "lock/tcpto",
        Kind::File { size: TCPTO_SIZE },
        Role::Remote,
        0o644,
    ),
    file("lock/trigger", Kind::Fifo, Role::Send, 0o622),
    Entry {
        file_mode: Some(0o640),
        presence: Presence::WithRatelimit,
        ..dir("ratelimit", Role::Send, 0o750)
    },
];

/// Where queue-fix moves strays and wrong-typed entries aside (unless told
/// to delete them). qmail-send never reads it, so nothing in it is ever
/// delivered or cleaned up behind the admin's back. Created on demand: it is
/// not part of a fresh queue.
pub const QUARANTINE: Entry = dir("quarantine", Role::Queue, 0o700);

/// Looks a row up by its path; the paths are this module's own constants.
pub fn entry(path: &str) -> &'static Entry {
    LAYOUT
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} is not in the queue layout table"))
}

/// One queue's shape as the options chose it: built once (queue-fix's
/// command line, the environment) and read by every program, the test
/// depositor and the tests, so that nothing carries the split, `BIGTODO`
/// or the qmta mode beside the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Split directories hold subdirectories `0..split`.
    pub split: u32,
    /// `BIGTODO`: `todo` and `intd` are split like `mess` (true, the
    /// default) or flat, `todo/<inode>` (IndiMail 3.x's installer writes
    /// `BIGTODO=0`).
    pub big_todo: bool,
    /// qmta mode (`-m`): qmailq plays every role.
    pub qmta: bool,
    /// The `ratelimit` directory belongs to the queue (`-r`, the `slowq`
    /// queue).
    pub ratelimit: bool,
    /// The `trash` directory belongs to the queue (`-t`). Without it a
    /// queue is complete, as IndiMail 3.x's queue-fix (revision 1.35,
    /// `flag_trash`) makes it; queue-fix still checks a `trash` that
    /// exists (`queue::found`).
    pub trash: bool,
    /// Size of `lock/tcpto` (`-S`).
    pub tcpto_size: u64,
    /// Whose qmail makes and reads the queue: what no option changes.
    pub flavour: Flavour,
}

/// The two families of qmail whose queues queue-fix knows. What their
/// builds fix differently and no option overrides lives here; the rest
/// (split, `todo`/`intd`, `lock/tcpto`, `trash`) are [`Layout`] values,
/// whose defaults [`Layout::new`] and [`Layout::classic`] give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// IndiMail: qmail-queue is setgid `qmail`, installed mode 6551
    /// qmailq:qmail (indimail-mta-x/indimail-mta.spec.in,
    /// `%attr(6551,qmailq,qmail) %{_prefix}/sbin/qmail-queue`), so every
    /// file it creates is group `qmail`, and that is checked. Its programs
    /// read `BIGTODO`.
    IndiMail,
    /// qmail-1.03, netqmail, notqmail: qmail-queue is setuid only, mode
    /// 04711 (`hier.c`: `c(auto_qmail,"bin","qmail-queue",auto_uidq,
    /// auto_gidq,04711)`), so the files it creates (the rows
    /// [`Entry::by_qmail_queue`]) keep the injecting user's group (root,
    /// nogroup, …) and any group is right there. Its programs read no
    /// `BIGTODO` (`todo`/`intd` are flat at build time).
    Classic,
}

impl Layout {
    /// The default shape with this split: split `todo`/`intd`, qmailq,
    /// qmails and qmailr in their own roles, no `trash`, no `ratelimit`.
    pub const fn new(split: u32) -> Layout {
        Layout {
            split,
            big_todo: true,
            qmta: false,
            ratelimit: false,
            trash: false,
            tcpto_size: TCPTO_SIZE,
            flavour: Flavour::IndiMail,
        }
    }

    /// Classic qmail's queue (qmail-1.03, netqmail 1.06, notqmail 1.09:
    /// `/var/qmail/queue`), which differs from the table's IndiMail
    /// defaults in what its build fixes, never in an environment variable
    /// (its programs read neither `BIGTODO` nor `CONFSPLIT`):
    /// - split [`CLASSIC_SPLIT`] (`conf-split`: "23");
    /// - `todo` and `intd` flat: qmail-queue.c names them
    ///   `fnnum("todo/",0)`, `fnnum("intd/",0)` (no split) beside
    ///   `fnnum("mess/",1)`, and qmail-send.c reads `fmtqfn(..,"todo/",id,0)`;
    /// - `lock/tcpto` of [`CLASSIC_TCPTO_SIZE`] bytes (hier.c
    ///   `z(auto_qmail,"queue/lock/tcpto",1024,auto_uidr,auto_gidq,0644)`;
    ///   tcpto.c `char tcpto_buf[1024]`);
    /// - no `trash` (hier.c's `hier_queue()` makes none; nothing reads it);
    /// - qmail-queue setuid only ([`Flavour::Classic`]).
    ///
    /// Every other row is the table's: hier.c makes the same directories
    /// with the same owners and modes (`queue` 0750 qmailq, `pid` and `intd`
    /// 0700 qmailq, `todo` 0750 qmailq, `bounce` 0700 qmails, `mess` 0750
    /// qmailq and `info`, `local`, `remote` 0700 qmails with their split
    /// subdirectories alike (`dsplit()`), `lock` 0750 qmailq,
    /// `lock/sendmutex` 0600 qmails, `lock/trigger` FIFO 0622 qmails), all
    /// group `qmail` (`auto_gidq`), users qmailq, qmails, qmailr; and the
    /// files match: qmail-queue.c `umask(033)` with open_excl.c's 0644 gives
    /// `mess`/`intd`/`todo` 0644, qmail-send.c `umask(077)` gives `info`,
    /// `local`, `remote` (open_excl, 0644) and `bounce` (open_append.c,
    /// 0600) 0600. (notqmail/notqmail, tags qmail-1.03, netqmail-1.06 and
    /// notqmail-1.09: the same in all three.)
    pub const fn classic() -> Layout {
        Layout {
            split: CLASSIC_SPLIT,
            big_todo: false,
            qmta: false,
            ratelimit: false,
            trash: false,
            tcpto_size: CLASSIC_TCPTO_SIZE,
            flavour: Flavour::Classic,
        }
    }

    /// Whether the group of the files in a message directory is checked:
    /// always, except those classic qmail's qmail-queue (not setgid)
    /// creates.
    pub fn file_group_checked(&self, e: &Entry) -> bool {
        self.flavour == Flavour::IndiMail || !e.by_qmail_queue
    }

    /// The rows this queue has.
    pub fn entries(&self) -> impl Iterator<Item = &'static Entry> + '_ {
        LAYOUT.iter().filter(move |e| match e.presence {
            Presence::Always => true,
            Presence::WithRatelimit => self.ratelimit,
            Presence::WithTrash => self.trash,
        })
    }

    /// Whether a row holds numbered subdirectories in this queue: `todo`
    /// and `intd` only with `BIGTODO`.
    pub fn is_split(&self, e: &Entry) -> bool {
        e.is_split() && (self.big_todo || !is_todo_or_intd(e.path))
    }

    /// [`Layout::is_split`] of the row at `path`.
    pub fn is_split_dir(&self, path: &str) -> bool {
        self.is_split(entry(path))
    }

    /// The message directories that are split in this queue, in
    /// [`MESSAGE_DIRS`] order (`mess` first).
    pub fn split_message_dirs(&self) -> impl Iterator<Item = &'static str> + '_ {
        MESSAGE_DIRS
            .iter()
            .copied()
            .filter(|d| self.is_split_dir(d))
    }

    /// The message directories that are flat in this queue (`bounce`, and
    /// `todo`/`intd` without `BIGTODO`).
    pub fn flat_message_dirs(&self) -> impl Iterator<Item = &'static str> + '_ {
        MESSAGE_DIRS
            .iter()
            .copied()
            .filter(|d| !self.is_split_dir(d))
    }

    /// Where message `inode`'s file in `dir` lives, relative to the queue
    /// root: `dir/<inode % split>/<inode>`, or `dir/<inode>` when `dir` is
    /// flat here.
    pub fn message_path(&self, dir: &str, inode: u64) -> std::path::PathBuf {
        crate::queue::name::message_path(dir, inode, self.split, self.is_split_dir(dir))
    }

    /// The account that owns a row in this queue.
    pub fn owner(&self, e: &Entry) -> Role {
        e.owner.in_mode(self.qmta)
    }

    /// What a row must be here: `lock/tcpto` has this queue's size.
    pub fn kind(&self, e: &Entry) -> Kind {
        match e.kind {
            Kind::File { .. } if e.path == TCPTO => Kind::File {
                size: self.tcpto_size,
            },
            k => k,
        }
    }
}

/// `todo` and `intd`: the two directories `BIGTODO` decides about.
pub fn is_todo_or_intd(path: &str) -> bool {
    path == TODO || path == INTD
}

/// `BIGTODO` as the environment or `queue-fix -b` gives it: `0` or `1`
/// (an empty value is unset, the default 1).
pub fn parse_big_todo(text: &str) -> Result<bool, String> {
    match text {
        "" | "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(format!("BIGTODO {text:?} is neither 0 nor 1")),
    }
}

/// Directories whose files belong to messages, in the order a message's
/// files are looked for; `mess` names the message.
pub const MESSAGE_DIRS: [&str; 7] = ["mess", "info", "local", "remote", "todo", "intd", "bounce"];

/// The directory a new message's text is linked into.
pub const MESS: &str = "mess";
/// Where qmail-queue writes the envelope before the message is complete.
pub const INTD: &str = "intd";
/// Where a complete message waits for qmail-send.
pub const TODO: &str = "todo";
/// Where qmail-queue's temporary pid files live.
pub const PID: &str = "pid";
/// qmail-remote's table of hosts that timed out.
pub const TCPTO: &str = "lock/tcpto";
/// The FIFO that wakes qmail-send.
pub const TRIGGER: &str = "lock/trigger";
/// Locked exclusively by qmail-send while it runs on this queue.
pub const SENDMUTEX: &str = "lock/sendmutex";

/// Name of the marker that disables a queue: see [`DISABLED`].
pub const DISABLED_NAME: &str = "disabled";

/// The optional marker an administrator sets with `queue-fix --disable` so
/// that qmail-multi sends no new mail to the queue while qmail-send keeps
/// delivering what is in it. A regular file at the queue root; its absence
/// is the normal state. Like [`QUARANTINE`] it is not a row of [`LAYOUT`]:
/// a queue is complete without it, and queue-fix never quarantines it.
pub const DISABLED: Entry = file(DISABLED_NAME, Kind::File { size: 0 }, Role::Queue, 0o644);

/// The bit added to the queue root's mode while [`DISABLED`] exists.
///
/// qmail-multi runs as whoever injects (qmaild, any local user), who cannot
/// search a queue root of mode 0750 and so cannot see the marker itself; it
/// can stat the root. The sticky bit on a directory only restricts who may
/// delete or rename its entries, and nothing renames or deletes entries of
/// a queue root in normal operation, so it carries the flag without
/// changing how the queue works.
pub const DISABLED_ROOT_BIT: u32 = 0o1000;

/// The mode the queue root must have: [`DISABLED_ROOT_BIT`] exactly when
/// the queue is disabled.
pub fn root_mode(disabled: bool) -> u32 {
    let root = LAYOUT[0].mode;
    if disabled {
        root | DISABLED_ROOT_BIT
    } else {
        root
    }
}

/// Inodes one message occupies at most over its life: one file in each
/// message directory, except that `todo` and `intd` share one inode and
/// the pid file becomes the `mess` file.
pub const MESSAGE_INODES: u64 = MESSAGE_DIRS.len() as u64 - 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_precede_children() {
        for (i, e) in LAYOUT.iter().enumerate() {
            if let Some((parent, _)) = e.path.rsplit_once('/') {
                let p = LAYOUT.iter().position(|x| x.path == parent);
                assert!(
                    matches!(p, Some(j) if j < i),
                    "{} before its parent",
                    e.path
                );
            }
        }
    }

    #[test]
    fn message_dirs_are_rows_that_hold_messages() {
        for d in MESSAGE_DIRS {
            assert!(entry(d).holds_messages(), "{d}");
        }
        let holding = LAYOUT.iter().filter(|e| e.holds_messages()).count();
        assert_eq!(holding, MESSAGE_DIRS.len());
    }

    #[test]
    fn big_todo_decides_only_todo_and_intd() {
        let split = Layout::new(7);
        let flat = Layout {
            big_todo: false,
            ..split
        };
        assert_eq!(split.split_message_dirs().count(), 6);
        assert_eq!(
            flat.split_message_dirs().collect::<Vec<_>>(),
            ["mess", "info", "local", "remote"]
        );
        assert_eq!(
            flat.flat_message_dirs().collect::<Vec<_>>(),
            ["todo", "intd", "bounce"]
        );
        assert_eq!(
            split.message_path(TODO, 15),
            std::path::Path::new("todo/1/15")
        );
        assert_eq!(flat.message_path(TODO, 15), std::path::Path::new("todo/15"));
        assert_eq!(
            flat.message_path(MESS, 15),
            std::path::Path::new("mess/1/15")
        );
        assert_eq!(parse_big_todo("0"), Ok(false));
        assert_eq!(parse_big_todo(""), Ok(true));
        assert!(parse_big_todo("2").is_err());
    }

    #[test]
    fn optional_rows_follow_the_layout() {
        let plain = Layout::new(1);
        assert!(plain
            .entries()
            .all(|e| e.path != "trash" && e.path != "ratelimit"));
        let all = Layout {
            ratelimit: true,
            trash: true,
            tcpto_size: 4096,
            ..Layout::new(1)
        };
        assert!(all.entries().any(|e| e.path == "trash"));
        assert!(all.entries().any(|e| e.path == "ratelimit"));
        assert_eq!(all.kind(entry(TCPTO)), Kind::File { size: 4096 });
    }

    #[test]
    fn classic_differs_from_the_default_only_where_its_build_does() {
        let c = Layout::classic();
        assert_eq!((c.split, c.tcpto_size), (23, 1024));
        assert!(c.entries().all(|e| e.path != "trash"));
        assert_eq!(
            c.flat_message_dirs().collect::<Vec<_>>(),
            ["todo", "intd", "bounce"]
        );
        assert_eq!(c.message_path(TODO, 47), std::path::Path::new("todo/47"));
        assert_eq!(c.message_path(MESS, 47), std::path::Path::new("mess/1/47"));
        let unchecked: Vec<&str> = LAYOUT
            .iter()
            .filter(|e| !c.file_group_checked(e))
            .map(|e| e.path)
            .collect();
        assert_eq!(unchecked, ["mess", "todo", "intd"]);
        let d = Layout::new(23);
        assert!(LAYOUT.iter().all(|e| d.file_group_checked(e)));
        // Same rows otherwise: owners and modes are the table's.
        for e in c.entries() {
            assert_eq!(c.owner(e), d.owner(e), "{}", e.path);
        }
    }

    #[test]
    fn the_disabled_marker_is_no_row_and_not_a_message_dir() {
        assert!(LAYOUT.iter().all(|e| e.path != DISABLED.path));
        assert!(!MESSAGE_DIRS.contains(&DISABLED_NAME));
        assert_eq!(root_mode(false), 0o750);
        assert_eq!(root_mode(true), 0o1750);
        assert_eq!(MESSAGE_INODES, 6);
    }
}
