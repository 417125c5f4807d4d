//! queue-fix and queue-stat on an IndiMail 3.x host whose queue settings
//! live only in its files (issue 19, item 0): run with an empty
//! environment, as root from a shell, they read `CONTROLDIR/defaultqueue`
//! and its `.envdir` chain to `global_vars` as IndiMail's own queue-fix
//! does, say where `BIGTODO` and the split came from, and never change a
//! queue's layout because a setting was merely absent.

mod fix_support;
use fix_support::*;
use qmail_multi::queue::layout::Layout;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const INV: &str = "--as-invoker";

/// A 3.x host in `dir` as svctool leaves it (indimail-mta-x/svctool.sh):
/// `create_queuedef()` writes `QUEUE_BASE`, `QUEUE_COUNT`, `QUEUE_START`
/// into `control/defaultqueue` and `.envdir` (a file naming
/// `control/global_vars`); `link_with_global()` keeps `BIGTODO=0` and
/// `CONFSPLIT` in `global_vars`, whose `QUEUE_*` are `ln -sr` symlinks into
/// `defaultqueue`. Queue 1 made by svctool's `queue-fix -s 23 -b 0`, three
/// messages pending in its flat todo.
struct Host {
    control: PathBuf,
    home: PathBuf,
    base: PathBuf,
    queue: PathBuf,
}

fn host(dir: &Path) -> Host {
    let control = dir.join("control");
    let dq = control.join("defaultqueue");
    let gv = control.join("global_vars");
    let base = dir.join("queue");
    let home = dir.join("home");
    for d in [&dq, &gv, &base, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(dq.join("QUEUE_BASE"), format!("{}\n", base.display())).unwrap();
    std::fs::write(dq.join("QUEUE_COUNT"), "1\n").unwrap();
    std::fs::write(dq.join("QUEUE_START"), "1\n").unwrap();
    std::fs::write(dq.join(".envdir"), format!("{}\n", gv.display())).unwrap();
    std::fs::write(gv.join("BIGTODO"), "0\n").unwrap();
    std::fs::write(gv.join("CONFSPLIT"), "23\n").unwrap();
    for n in ["QUEUE_BASE", "QUEUE_COUNT", "QUEUE_START"] {
        symlink(Path::new("../defaultqueue").join(n), gv.join(n)).unwrap();
    }
    let queue = base.join("queue1");
    expect(&[INV, "-s", "23", "-b", "0", s(&queue)], 0);
    let flat23 = Layout {
        big_todo: false,
        ..Layout::new(23)
    };
    fill_layout(&queue, 3, flat23);
    Host {
        control,
        home,
        base,
        queue,
    }
}

/// `env -i` with only `CONTROLDIR`, `HOME` and `extra`.
fn bare(program: &str, h: &Host, args: &[&str], extra: &[(&str, &str)]) -> Output {
    Command::new(program)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("CONTROLDIR", &h.control)
        .env("HOME", &h.home)
        .envs(extra.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

fn queue_fix(h: &Host, args: &[&str], extra: &[(&str, &str)]) -> Output {
    bare(bin(), h, &[&[INV][..], args].concat(), extra)
}

fn queue_stat(h: &Host, args: &[&str]) -> Output {
    bare(env!("CARGO_BIN_EXE_queue-stat"), h, args, &[])
}

#[track_caller]
fn status(o: &Output, want: i32) {
    assert_eq!(code(o), want, "stdout:\n{}stderr:\n{}", out(o), err(o));
}

fn mess_files(q: &Path) -> usize {
    std::fs::read_dir(q.join("mess"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum()
}

#[test]
fn a_3x_host_read_from_its_files_is_clean_and_a_repair_moves_nothing() {
    let (_t, dir) = scratch();
    let h = host(&dir);
    let before = snapshot(&h.queue);
    assert_eq!(std::fs::read_dir(h.queue.join("todo")).unwrap().count(), 3);
    let o = queue_fix(&h, &["-N", s(&h.queue)], &[]);
    status(&o, 0);
    let line = out(&o).lines().next().unwrap_or_default().to_owned();
    let gv = h.control.join("global_vars");
    let via = h.control.join("defaultqueue/.envdir");
    assert_eq!(
        line,
        format!(
            "queue-fix: CONFSPLIT=23 ({}/CONFSPLIT via {}); BIGTODO=0 ({}/BIGTODO via {})",
            gv.display(),
            via.display(),
            gv.display(),
            via.display()
        )
    );
    status(&queue_fix(&h, &[s(&h.queue)], &[]), 0);
    assert_eq!(snapshot(&h.queue), before, "the repair changed the queue");
    // --base without --count: QUEUE_COUNT=1 from defaultqueue, so no
    // queue2..queue10 are made.
    status(&queue_fix(&h, &["--base", s(&h.base)], &[]), 0);
    assert!(!h.base.join("queue2").exists());
    assert_eq!(snapshot(&h.queue), before);

    // queue-stat finds the queues and BIGTODO there too.
    let o = queue_stat(&h, &["--prometheus"]);
    status(&o, 0);
    let text = out(&o);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("# settings: BIGTODO=0 (") && first.contains("global_vars/BIGTODO via "),
        "{text}"
    );
    assert!(
        first.contains(&format!("QUEUE_BASE={}", h.base.display())),
        "{text}"
    );
    let sample = |name: &str| {
        let key = format!("qmail_queue_{name}{{queue=\"queue1\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no {key} in\n{text}"))
            .to_owned()
    };
    assert_eq!(sample("messages"), "3");
    assert_eq!(sample("unpreprocessed_messages"), "3");
    assert_eq!(sample("misplaced_todo_messages"), "0");
    let o = queue_stat(&h, &[]);
    status(&o, 0);
    assert!(
        out(&o)
            .lines()
            .nth(1)
            .unwrap()
            .contains("global_vars/BIGTODO"),
        "{}",
        out(&o)
    );
    let o = queue_stat(&h, &["--check"]);
    status(&o, 0);
    assert_eq!(out(&o).lines().count(), 1, "{}", out(&o));
    assert!(err(&o).contains("global_vars/BIGTODO"), "{}", err(&o));
}

#[test]
fn set_nowhere_the_disk_decides_and_an_explicit_split_still_resplits() {
    let (_t, dir) = scratch();
    let h = host(&dir);
    std::fs::remove_dir_all(h.control.join("defaultqueue")).unwrap();
    let before = snapshot(&h.queue);
    let o = queue_fix(&h, &["-N", s(&h.queue)], &[]);
    status(&o, 0);
    assert!(
        out(&o).starts_with("queue-fix: CONFSPLIT not set"),
        "{}",
        out(&o)
    );
    assert!(
        out(&o).contains("split 23, BIGTODO=0, as found (not set)"),
        "{}",
        out(&o)
    );
    status(&queue_fix(&h, &[s(&h.queue)], &[]), 0);
    assert_eq!(
        snapshot(&h.queue),
        before,
        "a setting set nowhere changed the layout"
    );
    // A bucket missing from one directory is recreated, not read as a
    // smaller split.
    // (mess/22 too when no message lives there: local and remote still
    // show bucket 22.)
    std::fs::remove_dir(h.queue.join("info/22")).unwrap();
    let _ = std::fs::remove_dir(h.queue.join("mess/22"));
    status(&queue_fix(&h, &[s(&h.queue)], &[]), 0);
    assert!(h.queue.join("info/22").is_dir() && h.queue.join("mess/22").is_dir());
    assert!(!h.queue.join("mess/23").exists());
    let snap = snapshot(&h.queue);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        snap.keys().collect::<Vec<_>>()
    );
    // Explicit and different from the disk: the layout changes.
    let o = queue_fix(&h, &["-N", "-s", "151", s(&h.queue)], &[]);
    assert!((1..=99).contains(&code(&o)), "{}{}", out(&o), err(&o));
    status(&queue_fix(&h, &["-s", "151", s(&h.queue)], &[]), 0);
    assert!(h.queue.join("mess/150").is_dir());
    assert_eq!(mess_files(&h.queue), 3);
    // BIGTODO still unset: todo stayed flat.
    assert!(!h.queue.join("todo/0").exists());
    assert_eq!(std::fs::read_dir(h.queue.join("todo")).unwrap().count(), 3);
    status(&queue_fix(&h, &["-N", "-s151", s(&h.queue)], &[]), 0);
}

/// Numbered directories planted above the split (by hand, or by the
/// qmailq/qmails accounts that own `mess` and `info`) do not decide the
/// split when no setting does: the mail's own placement does, so no
/// message moves.
#[test]
fn set_nowhere_planted_buckets_do_not_resplit_the_mail() {
    let (_t, dir) = scratch();
    let h = host(&dir);
    std::fs::remove_dir_all(h.control.join("defaultqueue")).unwrap();
    let messages = |q: &Path| {
        let mut v: Vec<PathBuf> = snapshot(q)
            .into_keys()
            .filter(|k| k.starts_with("mess") && k.components().count() == 3)
            .collect();
        v.sort();
        v
    };
    let before = messages(&h.queue);
    assert_eq!(before.len(), 3);
    for d in ["mess/150", "info/150"] {
        std::fs::create_dir(h.queue.join(d)).unwrap();
    }
    let o = queue_fix(&h, &["-N", s(&h.queue)], &[]);
    assert!(
        out(&o).contains("split 23, BIGTODO=0, as found (not set)"),
        "{}{}",
        out(&o),
        err(&o)
    );
    let _ = queue_fix(&h, &[s(&h.queue)], &[]);
    assert_eq!(
        messages(&h.queue),
        before,
        "a planted bucket re-split the mail"
    );
}

#[test]
fn home_defaultqueue_and_the_environment_take_their_turn() {
    let (_t, dir) = scratch();
    let h = host(&dir);
    let hq = h.home.join(".defaultqueue");
    std::fs::create_dir(&hq).unwrap();
    std::fs::write(hq.join("CONFSPLIT"), "151\n").unwrap();
    // No QUEUE_BASE at home: set_environment() then loads defaultqueue,
    // whose chain's 23 replaces home's 151.
    let o = queue_fix(&h, &["-N", s(&h.queue)], &[]);
    status(&o, 0);
    assert!(out(&o).contains("global_vars/CONFSPLIT"), "{}", out(&o));
    // With QUEUE_BASE at home, defaultqueue is not read: split 151 from
    // home, against the 23 on disk.
    std::fs::write(hq.join("QUEUE_BASE"), format!("{}\n", h.base.display())).unwrap();
    let o = queue_fix(&h, &["-N", s(&h.queue)], &[]);
    assert!((1..=99).contains(&code(&o)), "{}{}", out(&o), err(&o));
    let first = out(&o).lines().next().unwrap().to_owned();
    assert!(
        first.contains(&format!("CONFSPLIT=151 ({}/CONFSPLIT)", hq.display()))
            && first.contains("BIGTODO not set"),
        "{first}"
    );
    // The environment comes before every file; SKIP_LOCAL_ENVIRONMENT
    // skips home.
    let o = queue_fix(&h, &["-N", s(&h.queue)], &[("CONFSPLIT", "23")]);
    status(&o, 0);
    assert!(
        out(&o).starts_with("queue-fix: CONFSPLIT=23 (environment)"),
        "{}",
        out(&o)
    );
    let o = queue_fix(&h, &["-N", s(&h.queue)], &[("SKIP_LOCAL_ENVIRONMENT", "1")]);
    status(&o, 0);
    assert!(out(&o).contains("global_vars/CONFSPLIT"), "{}", out(&o));
}

#[test]
fn unreadable_settings_stop_before_anything_changes() {
    let (_t, dir) = scratch();
    let h = host(&dir);
    let before = snapshot(&h.queue);
    let gone = dir.join("no-such-global-vars");
    std::fs::write(
        h.control.join("defaultqueue/.envdir"),
        format!("{}\n", gone.display()),
    )
    .unwrap();
    for args in [vec!["-s", "151", s(&h.queue)], vec![s(&h.queue)]] {
        let o = queue_fix(&h, &args, &[]);
        status(&o, 111);
        assert!(err(&o).contains(&gone.display().to_string()), "{}", err(&o));
    }
    let o = queue_stat(&h, &[]);
    status(&o, 111);
    assert!(err(&o).contains(&gone.display().to_string()), "{}", err(&o));
    assert_eq!(snapshot(&h.queue), before);
}

#[test]
fn a_half_converted_todo_with_bigtodo_unset_is_left_alone() {
    let (_t, dir) = scratch();
    let h = host(&dir);
    std::fs::remove_file(h.control.join("global_vars/BIGTODO")).unwrap();
    // An interrupted flat-to-split conversion: a numbered subdirectory
    // beside the flat files. Which way it was going no setting says.
    std::fs::create_dir(h.queue.join("todo/0")).unwrap();
    let before = snapshot(&h.queue);
    let o = queue_fix(&h, &[s(&h.queue)], &[]);
    status(&o, 111);
    assert!(err(&o).contains("give -b 0|1"), "{}", err(&o));
    assert_eq!(snapshot(&h.queue), before);
    // Told, it finishes: the three messages flat again.
    status(&queue_fix(&h, &["-b", "0", s(&h.queue)], &[]), 0);
    assert!(!h.queue.join("todo/0").exists());
    assert_eq!(std::fs::read_dir(h.queue.join("todo")).unwrap().count(), 3);
    assert_eq!(mess_files(&h.queue), 3);
}
