//! One repair run converges: every combination of damage to a message, in
//! every state a message can be in, in every queue layout (IndiMail split
//! and flat `todo`/`intd`, a `todo`/`intd` in the other layout than
//! configured, classic qmail), is repaired by ONE run of queue-fix, after
//! which `-N` finds nothing and every message's files are where qmail-send
//! looks for them, with their content.
//!
//! The combinations are enumerated, not sampled: each damaged message of a
//! queue is one combination (position × mode × owner), each queue one
//! layout × message state, so a failure names the file and the queue.

mod fix_support;
use fix_support::*;
use qmail_multi::queue::layout::{Flavour, Layout, INTD, MESS, TODO};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const INV: &str = "--as-invoker";
/// A uid and gid that are not the invoker's (root's): nobody/nogroup.
const OTHER: u32 = 65534;

/// Where a message is in its life (the files it has).
#[derive(Clone, Copy, Debug)]
enum State {
    /// Just queued: mess, intd, todo (todo and intd one inode).
    Queued,
    /// qmail-queue still writing: mess and intd.
    Injecting,
    /// Preprocessed by qmail-send: mess, info, remote.
    Sending,
    /// Bouncing: mess, info, local, bounce.
    Bouncing,
}

const STATES: [State; 4] = [
    State::Queued,
    State::Injecting,
    State::Sending,
    State::Bouncing,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Position {
    Right,
    /// Every file renamed to a name that is not the inode (in that name's
    /// subdirectory, and in the flat directories).
    Misnamed,
    /// Every split file in the next subdirectory, names right.
    Misplaced,
    /// Only the mess file in the next subdirectory.
    MessMisplaced,
}

const POSITIONS: [Position; 4] = [
    Position::Right,
    Position::Misnamed,
    Position::Misplaced,
    Position::MessMisplaced,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Right,
    Mess,
    Other,
    Both,
}

const MODES: [Mode; 4] = [Mode::Right, Mode::Mess, Mode::Other, Mode::Both];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Owner {
    Right,
    MessUid,
    OtherGid,
    /// The group of mess: wrong for IndiMail, any group is right for
    /// classic qmail (kept).
    MessGid,
}

const OWNERS: [Owner; 4] = [
    Owner::Right,
    Owner::MessUid,
    Owner::OtherGid,
    Owner::MessGid,
];

/// A queue's layout on disk and the one queue-fix is told.
struct Variant {
    name: &'static str,
    on_disk: Layout,
    wanted: Layout,
    args: &'static [&'static str],
}

fn variants() -> Vec<Variant> {
    let split = Layout::new(7);
    let flat = Layout {
        big_todo: false,
        ..split
    };
    vec![
        Variant {
            name: "split",
            on_disk: split,
            wanted: split,
            args: &["-s", "7", "-b", "1"],
        },
        Variant {
            name: "flat",
            on_disk: flat,
            wanted: flat,
            args: &["-s", "7", "-b", "0"],
        },
        Variant {
            name: "flat-wanted-split",
            on_disk: flat,
            wanted: split,
            args: &["-s", "7", "-b", "1"],
        },
        Variant {
            name: "split-wanted-flat",
            on_disk: split,
            wanted: flat,
            args: &["-s", "7", "-b", "0"],
        },
        Variant {
            name: "classic",
            on_disk: Layout::classic(),
            wanted: Layout::classic(),
            args: &["--classic"],
        },
    ]
}

/// What a message must be after the repair.
struct Expected {
    ino: u64,
    /// `(dir, content)` of each of its files.
    files: Vec<(&'static str, Vec<u8>)>,
    /// The group its mess file must keep (classic qmail's any group).
    mess_gid: Option<u32>,
    what: String,
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: Option<u32>, gid: Option<u32>) {
    std::os::unix::fs::chown(p, uid, gid).unwrap();
}

/// Brings a deposited message (mess, intd, todo) into `state`.
fn set_state(q: &Path, l: &Layout, ino: u64, state: State) -> Vec<&'static str> {
    let at = |d| q.join(l.message_path(d, ino));
    match state {
        State::Queued => vec![MESS, INTD, TODO],
        State::Injecting => {
            std::fs::remove_file(at(TODO)).unwrap();
            vec![MESS, INTD]
        }
        State::Sending | State::Bouncing => {
            std::fs::remove_file(at(TODO)).unwrap();
            std::fs::remove_file(at(INTD)).unwrap();
            let dirs: &[&'static str] = if matches!(state, State::Sending) {
                &["info", "remote"]
            } else {
                &["info", "local", "bounce"]
            };
            for d in dirs {
                write_0600(&at(d), &format!("{d} of {ino}\0"));
            }
            [&[MESS][..], dirs].concat()
        }
    }
}

/// A name for `ino` that no file of the queue has.
fn free_name(q: &Path, l: &Layout, ino: u64) -> u64 {
    (1..)
        .map(|k| ino + k * 1_000_003)
        .find(|&w| {
            ["mess", "info", "local", "remote", "todo", "intd", "bounce"]
                .iter()
                .all(|d| !q.join(l.message_path(d, w)).exists())
        })
        .unwrap()
}

/// Damages one message whose files in `dirs` are laid out as `l` says.
fn damage(
    q: &Path,
    l: &Layout,
    ino: u64,
    dirs: &[&'static str],
    (pos, mode, owner): (Position, Mode, Owner),
) {
    // The message's files where they end up.
    let mut at: Vec<(&'static str, PathBuf)> = dirs
        .iter()
        .map(|d| (*d, q.join(l.message_path(d, ino))))
        .collect();
    let next = |p: &Path| -> PathBuf {
        let sub: u32 = p
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let dir = p.parent().unwrap().parent().unwrap();
        dir.join(((sub + 1) % l.split).to_string())
            .join(p.file_name().unwrap())
    };
    match pos {
        Position::Right => {}
        Position::Misnamed => {
            let w = free_name(q, l, ino);
            for (d, p) in &mut at {
                let to = q.join(l.message_path(d, w));
                std::fs::rename(&*p, &to).unwrap();
                *p = to;
            }
        }
        Position::Misplaced | Position::MessMisplaced => {
            for (d, p) in &mut at {
                if !l.is_split_dir(d) || (pos == Position::MessMisplaced && *d != MESS) {
                    continue;
                }
                let to = next(p);
                std::fs::rename(&*p, &to).unwrap();
                *p = to;
            }
        }
    }
    let mess = at[0].1.clone();
    let other = at[1].1.clone();
    if matches!(mode, Mode::Mess | Mode::Both) {
        set_mode(&mess, 0o600);
    }
    if matches!(mode, Mode::Other | Mode::Both) {
        set_mode(&other, 0o666);
    }
    match owner {
        Owner::Right => {}
        Owner::MessUid => chown(&mess, Some(OTHER), None),
        Owner::OtherGid => chown(&other, None, Some(OTHER)),
        Owner::MessGid => chown(&mess, None, Some(OTHER)),
    }
}

/// Every regular file of the queue's message directories.
fn message_files(q: &Path) -> usize {
    let mut n = 0;
    for d in ["mess", "info", "local", "remote", "todo", "intd", "bounce"] {
        let mut stack = vec![q.join(d)];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    stack.push(e.path());
                } else if t.is_file() {
                    n += 1;
                }
            }
        }
    }
    n
}

/// Builds one queue of `v`'s layout holding one message per combination
/// in `state`, plus strays; returns what each message must be afterwards.
fn build(q: &Path, v: &Variant, state: State) -> Vec<Expected> {
    // The queue in the layout it has on disk, then its messages.
    let split = v.on_disk.split.to_string();
    let mut create = vec![INV];
    if v.on_disk == v.wanted {
        create.extend(v.args);
    } else {
        let b = if v.on_disk.big_todo { "1" } else { "0" };
        create.extend(["-s", &split, "-b", b]);
    }
    create.push(s(q));
    expect(&create, 0);
    let combos: Vec<_> = POSITIONS
        .iter()
        .flat_map(|&p| {
            MODES
                .iter()
                .flat_map(move |&m| OWNERS.iter().map(move |&o| (p, m, o)))
        })
        .collect();
    let inos = fill_layout(q, combos.len(), v.on_disk);
    let classic = v.wanted.flavour == Flavour::Classic;
    let mut out = Vec::new();
    for (k, (&ino, &combo)) in inos.iter().zip(&combos).enumerate() {
        let dirs = set_state(q, &v.on_disk, ino, state);
        if classic {
            // As classic qmail-queue leaves them: the injecting user's
            // group (root, nogroup, a user's), never checked.
            let gid = [0, OTHER, 100][k % 3];
            for d in [MESS, INTD] {
                let p = q.join(v.on_disk.message_path(d, ino));
                if p.exists() {
                    chown(&p, None, Some(gid));
                }
            }
        }
        let files = dirs
            .iter()
            .map(|d| {
                (
                    *d,
                    std::fs::read(q.join(v.on_disk.message_path(d, ino))).unwrap(),
                )
            })
            .collect();
        damage(q, &v.on_disk, ino, &dirs, combo);
        let mess_gid = classic.then(|| {
            std::fs::metadata(find_mess(q, ino))
                .map(|m| m.gid())
                .unwrap()
        });
        out.push(Expected {
            ino,
            files,
            mess_gid,
            what: format!("{} {state:?} {combo:?}", v.name),
        });
    }
    // Strays: an info file and a todo file with no mess, a non-numeric name.
    let info = q.join(v.on_disk.message_path("info", 999_999_937));
    write_0600(&info, "stray");
    let todo = q.join(v.on_disk.message_path(TODO, 999_999_941));
    std::fs::write(&todo, "Fstray\0").unwrap();
    std::fs::write(q.join("bounce").join("junk"), "junk").unwrap();
    out
}

/// The mess file of `ino`, wherever it is.
fn find_mess(q: &Path, ino: u64) -> PathBuf {
    for sub in std::fs::read_dir(q.join("mess")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let f = f.unwrap();
            if f.metadata().unwrap().ino() == ino {
                return f.path();
            }
        }
    }
    panic!("no mess file of inode {ino}");
}

#[test]
fn one_repair_run_converges_for_every_combination_of_damage() {
    if !is_root() {
        return skip("one_repair_run_converges", "needs root (chown)");
    }
    let started = std::time::Instant::now();
    let (_t, dir) = scratch();
    let mut combinations = 0;
    for v in variants() {
        for state in STATES {
            let q = dir.join(format!("{}-{state:?}", v.name));
            let want = build(&q, &v, state);
            combinations += want.len();
            let mut args = vec![INV];
            args.extend(v.args);
            args.push(s(&q));
            let o = run(&args);
            assert_eq!(
                code(&o),
                0,
                "{} {state:?}: one repair run\nstdout:\n{}\nstderr:\n{}",
                v.name,
                out(&o),
                err(&o)
            );
            let mut check = vec![INV, "-N"];
            check.extend(v.args);
            check.push(s(&q));
            let o = run(&check);
            assert!(
                code(&o) == 0 && after_settings(&o).is_empty(),
                "{} {state:?}: -N after one repair run: {}\nstdout:\n{}\nstderr:\n{}",
                v.name,
                code(&o),
                out(&o),
                err(&o)
            );
            // Every message where qmail-send (of the wanted layout) looks,
            // intact; nothing else left in the message directories.
            let mut files = 0;
            for m in &want {
                for (d, content) in &m.files {
                    let p = q.join(v.wanted.message_path(d, m.ino));
                    let got = std::fs::read(&p)
                        .unwrap_or_else(|e| panic!("{}: {}: {e}", m.what, p.display()));
                    assert_eq!(&got, content, "{}: {}", m.what, p.display());
                    assert_eq!(
                        std::fs::metadata(&p).unwrap().ino() == m.ino,
                        *d == MESS,
                        "{}: {}",
                        m.what,
                        p.display()
                    );
                    files += 1;
                }
                if let Some(gid) = m.mess_gid {
                    let p = q.join(v.wanted.message_path(MESS, m.ino));
                    assert_eq!(
                        std::fs::metadata(&p).unwrap().gid(),
                        gid,
                        "{}: classic qmail's group kept",
                        m.what
                    );
                }
            }
            assert_eq!(message_files(&q), files, "{} {state:?}", v.name);
        }
    }
    eprintln!(
        "{combinations} damaged messages ({} layouts x {} states x {} positions x {} modes x {} owners) \
         converged in one run each, {:?}",
        variants().len(),
        STATES.len(),
        POSITIONS.len(),
        MODES.len(),
        OWNERS.len(),
        started.elapsed()
    );
}
