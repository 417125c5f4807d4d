//! README, "Several hosts": two hubs, each provisioned from its own
//! configuration, each seeding its `qmail-qmqpd.628` service with our
//! qmail-multi over its own queues; an injection through that service's
//! environment (daemontools' `envdir variables/`, then `QMAILQUEUE`, as
//! qmail-qmqpd's `qmail_open()` runs it) lands in that hub's queues only.
//!
//! Root only: the provisioning creates the qmail users, here inside a mount
//! namespace whose /etc is a scratch copy (as tests/prov_config.rs does),
//! so the host's /etc, /service and queues are never touched.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$0\" >/dev/null", tool])
        .status()
        .is_ok_and(|s| s.success())
}

fn show(o: &Output) -> String {
    format!(
        "{:?}\nstdout:\n{}stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Why the test cannot run here, if it cannot.
fn unable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (mount namespace, useradd, chown)".into());
    }
    for t in ["unshare", "mount", "useradd", "groupadd", "envdir", "cp"] {
        if !have(t) {
            return Some(format!("missing tool: {t}"));
        }
    }
    let provision = fs::read_to_string(repo().join("service/provision")).unwrap();
    if !provision.contains("QMAIL_MULTI_MULTI") {
        // The multiplexer the provisioning seeds is chosen by this
        // variable (the lead's decision 2); before it, /usr/sbin's.
        return Some("service/provision does not take QMAIL_MULTI_MULTI".into());
    }
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .status()
        .is_ok_and(|s| s.success());
    (!probe).then(|| "unshare -m does not work here".into())
}

/// One hub: its configuration, service directory, control directory,
/// applied state and queue base, all under `dir`.
struct Hub {
    dir: PathBuf,
    count: u32,
}

impl Hub {
    fn new(root: &Path, name: &str, count: u32) -> Hub {
        let dir = root.join(name);
        for s in ["qmail-qmqpd.628", "qmail-send.25"] {
            fs::create_dir_all(dir.join("service").join(s).join("variables")).unwrap();
        }
        fs::create_dir_all(dir.join("control")).unwrap();
        let conf = format!(
            "QUEUE_BASE={d}/queue\nQUEUE_COUNT={count}\nSERVICEDIR={d}/service\n\
             SERVICES=\"qmail-qmqpd.628 qmail-send.25\"\nCONTROLDIR={d}/control\n\
             SPLIT=7\nSTOP_TIMEOUT=2\n",
            d = dir.display()
        );
        fs::write(dir.join("qmail-multi.conf"), conf).unwrap();
        Hub { dir, count }
    }

    fn envdir(&self) -> PathBuf {
        self.dir.join("service/qmail-qmqpd.628/variables")
    }

    fn var(&self, key: &str) -> String {
        let text = fs::read_to_string(self.envdir().join(key))
            .unwrap_or_else(|e| panic!("{}/{key}: {e}", self.envdir().display()));
        text.lines().next().unwrap_or("").to_string()
    }

    fn messages(&self, q: u32) -> usize {
        let mess = self.dir.join(format!("queue/queue{q}/mess"));
        fs::read_dir(mess)
            .unwrap()
            .map(|s| fs::read_dir(s.unwrap().path()).unwrap().count())
            .sum()
    }
}

/// `program args` inside a mount namespace whose /etc is `etc`.
fn sandboxed(etc: &Path, program: &Path) -> Command {
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc || exit 99; exec \"$@\"")
        .arg(etc)
        .arg(program);
    c
}

#[test]
fn two_hubs_each_seed_qmqpd_with_our_multiplexer_over_their_own_queues() {
    if let Some(why) = unable() {
        eprintln!("skipped: two hubs: {why}");
        return;
    }
    let scratch = tempfile::Builder::new().prefix("hubs").tempdir().unwrap();
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let etc = scratch.path().join("etc");
    fs::create_dir(&etc).unwrap();
    let copied = Command::new("cp")
        .args(["-a", "/etc/."])
        .arg(&etc)
        .status()
        .unwrap();
    assert!(copied.success(), "copying /etc");
    // What the provisioning seeds as QMAILQUEUE: the tree's qmail-multi,
    // so that the injection below runs the real multiplexer.
    let multi = PathBuf::from(env!("CARGO_BIN_EXE_qmail-multi"));
    let hubs = [
        Hub::new(scratch.path(), "hub1", 4),
        Hub::new(scratch.path(), "hub2", 2),
    ];
    for hub in &hubs {
        let o = sandboxed(&etc, Path::new("/bin/sh"))
            .arg(repo().join("service/provision"))
            .arg("configure")
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("QMAIL_MULTI_CONF", hub.dir.join("qmail-multi.conf"))
            .env("QMAIL_MULTI_STATEDIR", hub.dir.join("state"))
            .env("QMAIL_MULTI_SERVICEDIRS", hub.dir.join("service"))
            .env("QMAIL_MULTI_QUEUE_FIX", env!("CARGO_BIN_EXE_queue-fix"))
            .env("QMAIL_MULTI_MULTI", &multi)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "provision configure {}: {}",
            hub.dir.display(),
            show(&o)
        );
    }

    for hub in &hubs {
        // README, "Several hosts": on each hub qmail-qmqpd's QMAILQUEUE is
        // qmail-multi, over the hub's own queues.
        assert_eq!(hub.var("QMAILQUEUE"), multi.to_str().unwrap());
        assert_eq!(
            hub.var("QUEUE_BASE"),
            hub.dir.join("queue").to_str().unwrap()
        );
        assert_eq!(hub.var("QUEUE_COUNT"), hub.count.to_string());
        assert_eq!(hub.var("QUEUE_START"), "1");
        // Unset (no file: nothing in the chain sets it) or empty: selection,
        // not one fixed queue.
        let queuedir = hub.envdir().join("QUEUEDIR");
        assert!(
            !queuedir.exists() || hub.var("QUEUEDIR").is_empty(),
            "selection, not one fixed queue"
        );
        for q in 1..=hub.count {
            assert!(hub.dir.join(format!("queue/queue{q}/mess")).is_dir());
        }
        assert!(!hub
            .dir
            .join(format!("queue/queue{}", hub.count + 1))
            .exists());
    }

    // Injections as qmail-qmqpd makes them: the service's envdir applied
    // (daemontools' envdir), then its QMAILQUEUE run with the message on
    // 0 and the envelope on 1. QUEUEPROG stands for the hub's qmail-queue:
    // the test depositor, which writes a queue as qmail-queue does.
    let depositor = multi.parent().unwrap().join("examples/test-qmail-queue");
    if !depositor.exists() {
        eprintln!("skipped: injection: build the examples first (cargo build --examples)");
        return;
    }
    let envelope = scratch.path().join("envelope");
    fs::write(&envelope, b"Ffront@example.org\0Tto@example.net\0\0").unwrap();
    for (n, hub) in hubs.iter().enumerate() {
        for i in 0..20 {
            let mut c = sandboxed(&etc, Path::new("envdir"));
            let mut child = c
                .arg(hub.envdir())
                .arg(hub.var("QMAILQUEUE"))
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("QUEUEPROG", &depositor)
                .env("CONFSPLIT", "7")
                .stdin(Stdio::piped())
                .stdout(fs::File::open(&envelope).unwrap())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(
                child.stdin.as_mut().unwrap(),
                format!("Subject: hub{n} {i}\n\nbody\n").as_bytes(),
            )
            .unwrap();
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "injection into {}: {}",
                hub.dir.display(),
                show(&o)
            );
        }
    }
    for hub in &hubs {
        let per_queue: Vec<usize> = (1..=hub.count).map(|q| hub.messages(q)).collect();
        assert_eq!(
            per_queue.iter().sum::<usize>(),
            20,
            "{}: {per_queue:?}",
            hub.dir.display()
        );
    }
}
