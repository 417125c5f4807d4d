//! queue-fix and queue-stat `--classic` on classic qmail's queue
//! (qmail-1.03, netqmail, notqmail). The expectations are written out here
//! from notqmail's sources, not read from our layout table, so that the
//! table's classic profile is checked against them:
//! - hier.c `hier_queue()`: the directories, modes and the 1024-byte
//!   `lock/tcpto`; no `trash`;
//! - conf-split: 23;
//! - qmail-queue.c: `mess/<id % 23>/<id>`, `intd/<id>`, `todo/<id>`
//!   (`fnnum("mess/",1)`, `fnnum("todo/",0)`, `fnnum("intd/",0)`);
//! - qmail-send.c `todo_do()`: reads `todo/` by name (a name that is all
//!   digits), opens `todo/<id>` and stats `mess/<id % 23>/<id>`; info,
//!   local and remote are `fmtqfn(.., id, 1)`, split.

mod fix_support;
use fix_support::*;
use qmail_multi::queue::layout::Layout;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const INV: &str = "--as-invoker";
const CLASSIC: &str = "--classic";
/// nogroup: classic qmail-queue is setuid qmailq, not setgid, so a message
/// injected by a user keeps that user's group.
const NOGROUP: u32 = 65534;

/// hier.c `hier_queue()` (notqmail-1.09 and qmail-1.03): path, type, mode.
const HIER: &[(&str, char, u32)] = &[
    (".", 'd', 0o750),
    ("pid", 'd', 0o700),
    ("intd", 'd', 0o700),
    ("todo", 'd', 0o750),
    ("bounce", 'd', 0o700),
    ("mess", 'd', 0o750),
    ("info", 'd', 0o700),
    ("local", 'd', 0o700),
    ("remote", 'd', 0o700),
    ("lock", 'd', 0o750),
    ("lock/tcpto", 'f', 0o644),
    ("lock/sendmutex", 'f', 0o600),
    ("lock/trigger", 'p', 0o622),
];

/// The split directories of hier.c (`dsplit()`), each with `0..23`.
const DSPLIT: &[&str] = &["mess", "info", "local", "remote"];

fn qs_bin() -> &'static str {
    env!("CARGO_BIN_EXE_queue-stat")
}

#[test]
fn a_classic_queue_is_made_as_classic_qmail_makes_it() {
    let (_t, dir) = scratch();
    let q = dir.join("queue");
    expect(&[INV, CLASSIC, s(&q)], 0);
    let snap = snapshot(&q);
    let mut want = std::collections::BTreeMap::new();
    for &(p, kind, mode) in HIER {
        let p = if p == "." { PathBuf::new() } else { p.into() };
        want.insert(p, (kind, mode));
    }
    for d in DSPLIT {
        let mode = want[Path::new(d)].1;
        for i in 0..23 {
            want.insert(Path::new(d).join(i.to_string()), ('d', mode));
        }
    }
    let got: std::collections::BTreeMap<_, _> = snap
        .iter()
        .map(|(p, n)| (p.clone(), (n.kind, n.mode)))
        .collect();
    assert_eq!(got, want, "the tree hier.c makes, nothing more (no trash)");
    assert_eq!(snap[Path::new("lock/tcpto")].size, 1024);
    assert_eq!(snap[Path::new("lock/sendmutex")].size, 0);
    expect(&[INV, CLASSIC, "-N", s(&q)], 0);

    // Explicit options still win over the profile.
    let t = dir.join("with-trash");
    expect(&[INV, CLASSIC, "-t", "-s", "5", s(&t)], 0);
    assert!(t.join("trash").is_dir() && t.join("mess/4").is_dir() && !t.join("mess/5").exists());
    // -b 1: split todo/intd wanted, this queue's flat ones are the one
    // problem, named with the option that asked for them.
    let o = expect(&[INV, CLASSIC, "-N", "-b", "1", s(&q)], 1);
    assert!(
        err(&o).contains("todo, intd: flat on disk, but --classic -b 1 (split)"),
        "{}",
        err(&o)
    );
    // A 1024-byte tcpto is one problem where -S asks for 2048.
    let o = expect(&[INV, CLASSIC, "-N", "-S", "2048", s(&q)], 1);
    assert!(err(&o).contains("lock/tcpto"), "{}", err(&o));
    // IndiMail's multi-queue options are not classic qmail's.
    for extra in [&["-m"][..], &["-r"], &["--base", s(&dir)]] {
        let mut args = vec![INV, CLASSIC];
        args.extend(extra);
        args.push(s(&q));
        let o = run(&args);
        assert_eq!(code(&o), 100, "{args:?}: {}", err(&o));
    }
}

/// A classic queue of `n` messages as notqmail's qmail-queue and
/// qmail-send leave them: every third one preprocessed (info, remote),
/// the others waiting in the flat todo; mess and intd/todo of the groups
/// of the users who injected them.
fn classic_queue(dir: &Path, n: usize) -> (PathBuf, Vec<u64>) {
    let q = dir.join("queue");
    expect(&[INV, CLASSIC, s(&q)], 0);
    let inos = fill_layout(&q, n, Layout::classic());
    for (k, &i) in inos.iter().enumerate() {
        let gid = [0, NOGROUP, 100][k % 3];
        let mess = q.join(format!("mess/{}/{i}", i % 23));
        std::os::unix::fs::chown(&mess, None, Some(gid)).unwrap();
        if k % 3 == 2 {
            std::fs::remove_file(q.join(format!("todo/{i}"))).unwrap();
            std::fs::remove_file(q.join(format!("intd/{i}"))).unwrap();
            add_info_remote(&q, (i % 23) as u32, &i.to_string());
        } else {
            std::os::unix::fs::chown(q.join(format!("intd/{i}")), None, Some(gid)).unwrap();
        }
    }
    (q, inos)
}

#[test]
fn a_correct_classic_queue_is_clean_and_left_untouched() {
    if !is_root() {
        return skip("a_correct_classic_queue_is_clean", "needs root (chown)");
    }
    let (_t, dir) = scratch();
    let (q, _) = classic_queue(&dir, 50);
    let before = snapshot(&q);
    // IndiMail's variables are not classic qmail's: ignored.
    let env = [("BIGTODO", "1"), ("CONFSPLIT", "151")];
    let o = run_env(&[INV, CLASSIC, "-N", s(&q)], &env);
    assert!(
        code(&o) == 0 && after_settings(&o).is_empty(),
        "{}\n{}",
        out(&o),
        err(&o)
    );
    let o = run_env(&[INV, CLASSIC, "-v", s(&q)], &env);
    assert!(
        code(&o) == 0 && after_settings(&o).is_empty(),
        "{}\n{}",
        out(&o),
        err(&o)
    );
    assert_eq!(
        snapshot(&q),
        before,
        "a repair changed a correct classic queue"
    );
    // What issue 21 found without the profile: IndiMail's layout with the
    // same split, todo and tcpto still adds trash and regroups every mess,
    // intd and todo file not of the queue's group.
    let o = run(&[INV, "-N", "-s", "23", "-b", "0", "-S", "1024", s(&q)]);
    let said = out(&o);
    // (No trash is asked for: since IndiMail 3.x's queue-fix 1.35 a queue
    // without one is correct for it too.)
    assert!(!said.contains("trash"), "{said}");
    assert!(said.contains(&format!("(was 0:{NOGROUP})")), "{said}");
    assert!(code(&o) > 0);

    // queue-stat --classic reads todo flat whatever BIGTODO says.
    let stat = |args: &[&str]| {
        let o = std::process::Command::new(qs_bin())
            .args(args)
            .env("BIGTODO", "1")
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let label = s(&q).replace('\\', "\\\\");
    let metric = |text: &str, name: &str| -> u64 {
        let key = format!("{name}{{queue=\"{label}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("{key} in\n{text}"))
            .parse()
            .unwrap()
    };
    let classic = stat(&[CLASSIC, "--prometheus", s(&q)]);
    assert_eq!(metric(&classic, "qmail_queue_messages"), 50);
    assert_eq!(metric(&classic, "qmail_queue_unpreprocessed_messages"), 34);
    assert_eq!(metric(&classic, "qmail_queue_misplaced_todo_messages"), 0);
    let indimail = stat(&["--prometheus", s(&q)]);
    assert_eq!(metric(&indimail, "qmail_queue_misplaced_todo_messages"), 34);
    // A todo split as IndiMail writes it: named, with what classic reads.
    let one = std::fs::read_dir(q.join("todo"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let sub = q.join("todo").join("0");
    std::fs::create_dir(&sub).unwrap();
    std::fs::rename(one.path(), sub.join(one.file_name())).unwrap();
    let o = std::process::Command::new(qs_bin())
        .args([CLASSIC, "--check", s(&q)])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{line}");
    assert!(
        line.contains(
            "1 message waiting in a split todo/intd although classic qmail reads it flat"
        ),
        "{line}"
    );
}

/// What classic qmail-send finds, written from qmail-send.c, not from our
/// layout: `todo_do()` takes each all-digit name of `todo/`, opens
/// `todo/<id>` and stats `mess/<id % 23>/<id>`; a preprocessed message is
/// `info/<id % 23>/<id>` with its `mess`. Returns the ids found, with the
/// message text and the envelope file's content.
fn classic_qmail_send_finds(q: &Path) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(q.join("todo")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Ok(id) = name.parse::<u64>() else {
            continue;
        };
        // open_read() of a directory succeeds; qmail-send then reads no
        // envelope from it: only a regular file is a message.
        let Ok(env) = std::fs::read(q.join(format!("todo/{id}"))) else {
            continue;
        };
        let Ok(text) = std::fs::read(q.join(format!("mess/{}/{id}", id % 23))) else {
            continue;
        };
        found.push((id, text, env));
    }
    for sub in 0..23 {
        for e in std::fs::read_dir(q.join(format!("info/{sub}"))).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            let Ok(id) = name.parse::<u64>() else {
                continue;
            };
            if id % 23 != sub {
                continue;
            }
            let info = std::fs::read(q.join(format!("info/{sub}/{id}"))).unwrap();
            if let Ok(text) = std::fs::read(q.join(format!("mess/{sub}/{id}"))) {
                found.push((id, text, info));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_damaged_classic_queue_is_repaired_where_classic_qmail_send_looks() {
    if !is_root() {
        return skip("a_damaged_classic_queue_is_repaired", "needs root (chown)");
    }
    let (_t, dir) = scratch();
    let (q, inos) = classic_queue(&dir, 50);
    let whole = classic_qmail_send_finds(&q);
    assert_eq!(whole.len(), 50);
    let mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    for (k, &i) in inos.iter().enumerate() {
        let sub = i % 23;
        let queued = k % 3 != 2;
        match k % 10 {
            // Misnamed: every file under another name (the mess in that
            // name's subdirectory, todo/intd flat under it).
            0 => {
                let w = i + 1_000_003;
                std::fs::rename(
                    q.join(format!("mess/{sub}/{i}")),
                    q.join(format!("mess/{}/{w}", w % 23)),
                )
                .unwrap();
                if queued {
                    for d in ["todo", "intd"] {
                        std::fs::rename(q.join(format!("{d}/{i}")), q.join(format!("{d}/{w}")))
                            .unwrap();
                    }
                } else {
                    for d in ["info", "remote"] {
                        std::fs::rename(
                            q.join(format!("{d}/{sub}/{i}")),
                            q.join(format!("{d}/{}/{w}", w % 23)),
                        )
                        .unwrap();
                    }
                }
            }
            // Misplaced mess with a wrong mode (the one-run case of item 6).
            1 => {
                let to = q.join(format!("mess/{}/{i}", (sub + 1) % 23));
                std::fs::rename(q.join(format!("mess/{sub}/{i}")), &to).unwrap();
                mode(&to, 0o600);
            }
            // todo and intd split, as an IndiMail qmail-queue with
            // BIGTODO=1 would have put them: classic qmail-send never
            // sees them there.
            2 if queued => {
                for d in ["todo", "intd"] {
                    let p = q.join(format!("{d}/{sub}"));
                    std::fs::create_dir_all(&p).unwrap();
                    std::fs::rename(q.join(format!("{d}/{i}")), p.join(i.to_string())).unwrap();
                }
            }
            // Wrong modes and owners.
            3 => mode(&q.join(format!("mess/{sub}/{i}")), 0o666),
            4 => std::os::unix::fs::chown(q.join(format!("mess/{sub}/{i}")), Some(NOGROUP), None)
                .unwrap(),
            _ => {}
        }
    }
    // Strays: a todo with no mess, an info with no mess, a FIFO in bounce.
    std::fs::write(q.join("todo/999999937"), "F\0").unwrap();
    write_0600(&q.join("info/0/999999958"), "F\0");
    nix::unistd::mkfifo(
        &q.join("bounce/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    mode(&q.join("intd"), 0o755);
    assert!(classic_qmail_send_finds(&q).len() < 50);
    let o = run(&[INV, CLASSIC, "-N", s(&q)]);
    assert!(
        err(&o).contains("todo, intd: split on disk, but --classic (flat)"),
        "{}",
        err(&o)
    );

    let o = run(&[INV, CLASSIC, s(&q)]);
    assert_eq!(code(&o), 0, "one repair run\n{}\n{}", out(&o), err(&o));
    let o = run(&[INV, CLASSIC, "-N", s(&q)]);
    assert!(
        code(&o) == 0 && after_settings(&o).is_empty(),
        "{}\n{}",
        out(&o),
        err(&o)
    );
    assert_eq!(
        classic_qmail_send_finds(&q),
        whole,
        "every message where qmail-send looks"
    );
    // Nothing else where qmail-send looks: todo holds no subdirectory.
    for e in std::fs::read_dir(q.join("todo")).unwrap() {
        assert!(e.unwrap().file_type().unwrap().is_file());
    }
    assert!(!q.join("trash").exists());
    let quarantined: Vec<_> = std::fs::read_dir(q.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_type().unwrap())
        .collect();
    assert_eq!(quarantined.len(), 3);
    assert_eq!(quarantined.iter().filter(|t| t.is_fifo()).count(), 1);
    // The injecting users' groups were kept.
    for (k, &i) in inos.iter().enumerate() {
        let m = std::fs::metadata(q.join(format!("mess/{}/{i}", i % 23))).unwrap();
        assert_eq!(m.gid(), [0, NOGROUP, 100][k % 3], "mess of {i}");
        assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o644), "mess of {i}");
    }
}
