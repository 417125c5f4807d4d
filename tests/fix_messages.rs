//! queue-fix on queues holding real messages (written by the depositor).

mod fix_support;
use fix_support::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const INV: &str = "--as-invoker";

/// Every mess file is named by its inode in subdirectory inode % split, and
/// every other file of a split directory or bounce has its mess file.
fn assert_healthy(q: &Path, split: u64) {
    let mut names = std::collections::HashSet::new();
    for sub in std::fs::read_dir(q.join("mess")).unwrap() {
        let sub = sub.unwrap();
        for f in std::fs::read_dir(sub.path()).unwrap() {
            let f = f.unwrap();
            let ino = f.metadata().unwrap().ino();
            assert_eq!(
                f.file_name().to_str().unwrap(),
                ino.to_string(),
                "{:?}",
                f.path()
            );
            assert_eq!(
                sub.file_name().to_str().unwrap(),
                (ino % split).to_string(),
                "{:?}",
                f.path()
            );
            names.insert(ino.to_string());
        }
    }
    for d in ["info", "local", "remote", "todo", "intd"] {
        for sub in std::fs::read_dir(q.join(d)).unwrap() {
            for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
                let f = f.unwrap();
                assert!(
                    names.contains(f.file_name().to_str().unwrap()),
                    "stray {:?}",
                    f.path()
                );
            }
        }
    }
}

fn new_queue(dir: &Path, name: &str, split: &str) -> std::path::PathBuf {
    let q = dir.join(name);
    run(&[INV, "-s", split, s(&q)]);
    q
}

#[test]
fn misnamed_and_misplaced_messages_move_with_all_their_files() {
    let (_t, dir) = scratch();
    let q = new_queue(&dir, "q", "7");
    let inos = fill(&q, 30, 7);
    for &i in &inos[..10] {
        add_info_remote(&q, (i % 7) as u32, &i.to_string());
    }
    let before = messages(&q);
    // 0..5: misnamed (a name that is not the inode, in that name's subdir),
    // with a bounce file under the wrong name too; 5..10: right name,
    // wrong subdirectory.
    for &i in &inos[..5] {
        let wrong = i + 1_000_003;
        misplace(
            &q,
            i,
            (i % 7) as u32,
            (wrong % 7) as u32,
            &wrong.to_string(),
        );
        write_0600(&q.join("bounce").join(wrong.to_string()), "bounce");
    }
    for &i in &inos[5..10] {
        misplace(&q, i, (i % 7) as u32, ((i + 1) % 7) as u32, &i.to_string());
    }
    let snap = snapshot(&q);
    let o = run(&[INV, "-s", "7", "-N", s(&q)]);
    assert_eq!(
        code(&o),
        10,
        "one problem per message\n{}{}",
        out(&o),
        err(&o)
    );
    assert_eq!(out(&o).matches("rename").count(), 10 * 5 + 5, "{}", out(&o));
    assert_eq!(snapshot(&q), snap, "-N changed the queue");
    // -i asks once for the kind (not once per message); "no" changes nothing.
    for answer in ["n\n", "y\n"] {
        let mut child = std::process::Command::new(bin())
            .args([INV, "-s", "7", "-i", s(&q)])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            code(&o),
            if answer == "n\n" { 10 } else { 0 },
            "{}",
            err(&o)
        );
        assert_eq!(
            err(&o).matches("rename and move messages?").count(),
            1,
            "{}",
            err(&o)
        );
        if answer == "n\n" {
            assert_eq!(snapshot(&q), snap, "-i answered no changed the queue");
        }
    }
    expect(&[INV, "-s", "7", "-N", s(&q)], 0);
    assert_healthy(&q, 7);
    assert_eq!(messages(&q), before);
    for &i in &inos[..5] {
        assert!(q.join("bounce").join(i.to_string()).exists());
        assert!(q
            .join("info")
            .join((i % 7).to_string())
            .join(i.to_string())
            .exists());
    }
    assert!(!q.join("quarantine").exists(), "nothing was a stray");
}

#[test]
fn messages_above_a_lowered_split_move_down() {
    let (_t, dir) = scratch();
    let q = new_queue(&dir, "q", "23");
    let inos = fill(&q, 40, 23);
    for &i in &inos[..20] {
        add_info_remote(&q, (i % 23) as u32, &i.to_string());
    }
    let before = messages(&q);
    let o = run(&[INV, "-s", "7", s(&q)]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    expect(&[INV, "-s", "7", "-N", s(&q)], 0);
    assert_healthy(&q, 7);
    assert_eq!(messages(&q), before);
    for d in ["mess", "info", "remote", "todo", "intd"] {
        for sub in 7..23 {
            let p = q.join(d).join(sub.to_string());
            assert_eq!(
                std::fs::read_dir(&p).unwrap().count(),
                0,
                "{} not emptied",
                p.display()
            );
        }
    }
}

#[test]
fn strays_in_every_directory_are_quarantined_or_deleted_on_request() {
    let (_t, dir) = scratch();
    for delete in [false, true] {
        let q = new_queue(&dir, if delete { "del" } else { "keep" }, "7");
        let inos = fill(&q, 5, 7);
        // An injection in progress: mess and intd, no todo yet. Not a stray.
        let busy = inos[0];
        std::fs::remove_file(
            q.join("todo")
                .join((busy % 7).to_string())
                .join(busy.to_string()),
        )
        .unwrap();
        let stray = 987_654_321u64;
        let sub = (stray % 7).to_string();
        let mut strays = vec![];
        for d in ["info", "local", "remote", "todo", "intd"] {
            strays.push((
                q.join(d).join(&sub).join(stray.to_string()),
                format!("{d}_{sub}_{stray}"),
            ));
        }
        strays.push((
            q.join("bounce").join(stray.to_string()),
            format!("bounce_{stray}"),
        ));
        strays.push((
            q.join("info").join(&sub).join("junk.tmp"),
            format!("info_{sub}_junk.tmp"),
        ));
        for (p, _) in &strays {
            std::fs::write(p, p.to_str().unwrap()).unwrap();
        }
        let before = messages(&q);
        let snap = snapshot(&q);
        let mut a = vec![INV, "-s", "7", "-N"];
        if delete {
            a.push("--delete-strays");
        }
        let o = run(&[&a[..], &[s(&q)]].concat());
        assert_eq!(code(&o), strays.len() as i32, "{}", out(&o));
        assert_eq!(snapshot(&q), snap);
        a.retain(|x| *x != "-N");
        expect(&[&a[..], &[s(&q)]].concat(), 0);
        expect(&[INV, "-s", "7", "-N", s(&q)], 0);
        assert_eq!(messages(&q), before);
        assert!(q
            .join("intd")
            .join((busy % 7).to_string())
            .join(busy.to_string())
            .exists());
        for (p, aside) in &strays {
            assert!(!p.exists(), "{} left", p.display());
            let qp = q.join("quarantine").join(aside);
            if delete {
                assert!(!qp.exists());
            } else {
                assert_eq!(std::fs::read_to_string(&qp).unwrap(), p.to_str().unwrap());
            }
        }
    }
}

#[test]
fn pid_leftovers_are_warned_and_tcpto_size_counted_but_not_changed() {
    let (_t, dir) = scratch();
    let q = new_queue(&dir, "q", "7");
    fill(&q, 3, 7);
    let pidfile = q.join("pid").join("4242.1700000000.0");
    std::fs::write(&pidfile, "").unwrap();
    let o = expect(&[INV, "-s", "7", s(&q)], 0);
    assert!(err(&o).contains(s(&pidfile)), "{}", err(&o));
    assert!(pidfile.exists());
    let tcpto = q.join("lock/tcpto");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tcpto)
        .unwrap()
        .set_len(100)
        .unwrap();
    let o = expect(&[INV, "-s", "7", "-N", s(&q)], 1);
    assert!(
        err(&o).contains(s(&tcpto)) && err(&o).contains("100 bytes"),
        "{}",
        err(&o)
    );
    expect(&[INV, "-s", "7", s(&q)], 1);
    assert_eq!(
        std::fs::metadata(&tcpto).unwrap().len(),
        100,
        "tcpto is not rewritten"
    );
}

#[test]
fn message_files_with_wrong_owner_or_mode_are_fixed() {
    let (_t, dir) = scratch();
    let q = new_queue(&dir, "q", "7");
    let inos = fill(&q, 4, 7);
    let i = inos[1];
    add_info_remote(&q, (i % 7) as u32, &i.to_string());
    let info = q.join("info").join((i % 7).to_string()).join(i.to_string());
    let mess = q.join("mess").join((i % 7).to_string()).join(i.to_string());
    std::fs::set_permissions(&info, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&mess, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut problems = 2;
    if is_root() {
        std::os::unix::fs::lchown(&mess, Some(4242), Some(4242)).unwrap();
        problems += 1;
    }
    expect(&[INV, "-s", "7", "-N", s(&q)], problems);
    let o = expect(&[INV, "-s", "7", "-v", s(&q)], 0);
    assert!(
        out(&o).contains(&format!("chmod 0600 {}", info.display())),
        "{}",
        out(&o)
    );
    assert_eq!(std::fs::metadata(&info).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&mess).unwrap().mode() & 0o777, 0o644);
    assert_eq!(
        std::fs::metadata(&mess).unwrap().uid(),
        nix::unistd::geteuid().as_raw()
    );
    expect(&[INV, "-s", "7", "-N", s(&q)], 0);
}
