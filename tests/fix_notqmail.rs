//! notqmail's own queue and qmail-send (issue 21 item 5): notqmail 1.09
//! built from its source and installed as its INSTALL.md says, 50 messages
//! injected by three users through its setuid qmail-queue, the queue
//! checked and repaired with `queue-fix --classic` under the real qmail
//! accounts, then notqmail's qmail-send delivers every message.
//!
//! `tests/notqmail/classic.sh` does the work in a private mount namespace
//! whose /etc/passwd and /etc/group also hold notqmail's accounts, so the
//! host's stay as they are. The source comes from `NOTQMAIL_SRC` (CI
//! clones tag notqmail-1.09 there, see `.ci/run`).

mod fix_support;
use fix_support::*;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn notqmail_delivers_every_message_of_a_queue_queue_fix_classic_repaired() {
    const NAME: &str = "notqmail_delivers_every_message";
    if !is_root() {
        return skip(
            NAME,
            "needs root (installs notqmail, bind-mounts /etc/passwd)",
        );
    }
    let Some(src) = std::env::var_os("NOTQMAIL_SRC").filter(|s| !s.is_empty()) else {
        return skip(
            NAME,
            "NOTQMAIL_SRC (a notqmail 1.09 source tree) is not set",
        );
    };
    if !Path::new(&src).join("qmail-queue.c").is_file() {
        return skip(NAME, "NOTQMAIL_SRC holds no qmail-queue.c");
    }
    for tool in ["unshare", "setpriv", "make", "cc", "nroff"] {
        if !have(tool) {
            return skip(NAME, &format!("{tool} is missing"));
        }
    }
    let (_t, work) = scratch();
    // The qmail accounts must reach WORK/qmail.
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/notqmail/classic.sh");
    let o = Command::new("bash")
        .arg(script)
        .arg(&src)
        .arg(&work)
        .arg(bin())
        .output()
        .unwrap();
    let said = out(&o);
    let log = |f: &str| std::fs::read_to_string(work.join(f)).unwrap_or_default();
    assert!(
        o.status.success(),
        "{said}\n{}\nbuild log tail:\n{}",
        err(&o),
        log("build.log")
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let v: HashMap<&str, &str> = said.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| *v.get(k).unwrap_or_else(|| panic!("{k} in\n{said}"));
    // Injected by root, nobody and alias: three groups, none of them qmail.
    assert_eq!(get("GROUPS").trim(), "nofiles nogroup root", "{said}");
    // A correct classic queue: clean, and a repair changes nothing.
    assert_eq!(get("CLEAN_CHECK"), "0", "{}", log("clean.out"));
    assert_eq!(get("CLEAN_REPAIR"), "0 0", "{}", log("clean-repair.out"));
    assert_eq!(get("UNTOUCHED"), "yes");
    // Damaged: found, repaired in one run, then clean.
    assert_ne!(get("DAMAGED_CHECK"), "0", "{}", log("damaged.out"));
    assert_eq!(get("REPAIR"), "0", "{}", log("repair.out"));
    assert_eq!(get("AFTER_CHECK"), "0 0", "{}", log("after.out"));
    // notqmail's qmail-send delivered each of the 50 once, and nothing
    // bounced or stayed behind.
    let subjects: Vec<&str> = get("SUBJECTS")
        .split(',')
        .filter(|s| !s.is_empty())
        .collect();
    let mut want: Vec<String> = (1..=50).map(|i| format!("Subject: {i}")).collect();
    want.sort();
    assert_eq!(subjects, want, "{}", log("send.log"));
    assert_eq!(get("DELIVERED"), "50", "{}", log("send.log"));
    assert_eq!(get("SEND_WARNINGS"), "0", "{}", log("send.log"));
    assert_eq!(get("LEFT_IN_TODO"), "0", "{}", log("send.log"));
}
