//! The provisioning on an IndiMail host (issue 19): services made by a
//! stand-in of IndiMail's `svctool` (tests/indimail/svctool, which cites
//! the parts of svctool.sh it follows) whose QMAILQUEUE runs IndiMail's
//! queue filters (stand-ins of qmail-dkim, qmail-spamfilter and
//! qmail-qfilter over a stand-in of qmulti(), each citing its source), the
//! real qmail-multi and queue-fix of this tree, and the faithful test
//! qmail-queue (examples/test-qmail-queue.rs). As root, in a mount
//! namespace whose /etc is a scratch copy; everything else lives in a
//! scratch directory.
//!
//! One scenario, in the order a host lives it: svctool's services →
//! `provision configure` (chains kept, no false drift from global_vars) →
//! a shrink (queues retired and disabled) → mail through each chain →
//! IndiMail's upgrade refresh (`svctool --refreshsvc`), which undoes us and
//! lets IndiMail's own selection put mail into the retired queues → the
//! trigger's `provision configure` (values back, queues disabled again,
//! that mail moved, nothing stranded) → `provision remove` (every envdir
//! as svctool left it, byte for byte).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod pkg_support;
mod prov_support;
use pkg_support::{read, repo, show};
use prov_support::Sandbox;

const SERVICES: [&str; 6] = [
    "qmail-smtpd.25",
    "qmail-smtpd.465",
    "qmail-smtpd.587",
    "qmail-send.25",
    "qmail-qmqpd.628",
    "qmail-qmtpd.209",
];

fn depositor() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_qmail-multi"));
    bin.parent().unwrap().join("examples/test-qmail-queue")
}

struct Host {
    dir: tempfile::TempDir,
    sandbox: Sandbox,
    svscan: Option<Child>,
}

impl Host {
    fn new(sandbox: Sandbox) -> Host {
        let dir = tempfile::Builder::new()
            .prefix("prov-im")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let sbin = dir.path().join("usr/sbin");
        fs::create_dir_all(&sbin).unwrap();
        for f in [
            "svctool",
            "qmulti",
            "qmail-dkim",
            "qmail-spamfilter",
            "qmail-qfilter",
        ] {
            fs::copy(repo().join("tests/indimail").join(f), sbin.join(f)).unwrap();
            fs::set_permissions(sbin.join(f), fs::Permissions::from_mode(0o755)).unwrap();
        }
        // qmulti() knows qmail-queue by its name.
        symlink(depositor(), sbin.join("qmail-queue")).unwrap();
        // A filter for the qmail-qfilter chain: one header in front.
        fs::write(
            sbin.join("add-header"),
            "#!/bin/sh\nprintf 'X-QFilter: %s\\n' \"$1\"\nexec cat\n",
        )
        .unwrap();
        fs::set_permissions(sbin.join("add-header"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        let envdir = dir.path().join("usr/bin/envdir");
        fs::copy(repo().join("tests/indimail/envdir"), &envdir).unwrap();
        fs::set_permissions(&envdir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(dir.path().join("service")).unwrap();
        fs::create_dir_all(dir.path().join("records")).unwrap();
        Host {
            dir,
            sandbox,
            svscan: None,
        }
    }

    /// Supervises the services with the real daemontools: each run script
    /// loads its variables/ with IndiMail's envdir (the stand-in) and
    /// records the environment it got.
    fn supervise(&mut self) {
        for s in SERVICES {
            let run = self.path("service").join(s).join("run");
            fs::write(
                &run,
                format!(
                    "#!/bin/sh\nexec {} ./variables sh -c 'env >{}/{s}.env.tmp && mv {}/{s}.env.tmp {}/{s}.env && exec sleep 3600'\n",
                    self.path("usr/bin/envdir").display(),
                    self.path("records").display(),
                    self.path("records").display(),
                    self.path("records").display(),
                ),
            )
            .unwrap();
            fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let child = Command::new("svscan")
            .arg(self.path("service"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("svscan starts");
        self.svscan = Some(child);
        wait_for("the services to run and record", || {
            SERVICES
                .iter()
                .all(|s| self.pid(s).is_some() && self.recorded(s).is_some())
        });
    }

    /// svstat's pid of a service, when it is up.
    fn pid(&self, name: &str) -> Option<u32> {
        let o = Command::new("svstat")
            .arg(self.path("service").join(name))
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&o.stdout);
        let rest = s.split("up (pid ").nth(1)?;
        rest.split(')').next()?.parse().ok()
    }

    /// The environment the running service recorded.
    fn recorded(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let text = fs::read_to_string(self.path("records").join(format!("{name}.env"))).ok()?;
        Some(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// Waits until every service runs with an environment `ok` accepts.
    fn wait_services(&self, what: &str, ok: impl Fn(&str, &BTreeMap<String, String>) -> bool) {
        wait_for(what, || {
            SERVICES
                .iter()
                .all(|s| self.pid(s).is_some() && self.recorded(s).is_some_and(|env| ok(s, &env)))
        });
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn sbin(&self, name: &str) -> String {
        self.path("usr/sbin").join(name).display().to_string()
    }

    fn base(&self) -> PathBuf {
        self.path("queue")
    }

    fn control(&self) -> PathBuf {
        self.path("etc/indimail/control")
    }

    fn envdir(&self, service: &str) -> PathBuf {
        self.path("service").join(service).join("variables")
    }

    fn svctool(&self, args: &[&str]) {
        let o = Command::new("sh")
            .arg(self.sbin("svctool"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap();
        assert!(o.status.success(), "svctool {args:?}: {}", show(&o));
    }

    /// svctool's common options for this host.
    fn svctool_with(&self, action: &str, extra: &[&str]) {
        let servicedir = format!("--servicedir={}", self.path("service").display());
        let sysconfdir = format!("--sysconfdir={}", self.path("etc/indimail").display());
        let qbase = format!("--qbase={}", self.base().display());
        let mut args = vec![
            action,
            &servicedir,
            &sysconfdir,
            &qbase,
            "--qcount=5",
            "--qstart=1",
        ];
        args.extend_from_slice(extra);
        self.svctool(&args);
    }

    fn conf(&self, count: u32) {
        fs::write(
            self.path("qmail-multi.conf"),
            format!(
                "QUEUE_BASE={}\nSERVICEDIR={}\nCONTROLDIR={}\nSERVICES=\"{}\"\nSTOP_TIMEOUT=2\nQUEUE_COUNT={count}\n",
                self.base().display(),
                self.path("service").display(),
                self.control().display(),
                SERVICES.join(" ")
            ),
        )
        .unwrap();
    }

    fn provision(&self, cmd: &str, trigger: bool) -> String {
        let mut c = self.sandbox.command(Path::new("/bin/sh"));
        c.arg(repo().join("service/provision"))
            .arg(cmd)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("QMAIL_MULTI_CONF", self.path("qmail-multi.conf"))
            .env("QMAIL_MULTI_STATEDIR", self.path("state"))
            .env("QMAIL_MULTI_SERVICEDIRS", self.path("service"))
            .env("QMAIL_MULTI_QUEUE_FIX", env!("CARGO_BIN_EXE_queue-fix"))
            .env("QMAIL_MULTI_MULTI", env!("CARGO_BIN_EXE_qmail-multi"));
        if trigger {
            c.env("QMAIL_MULTI_TRIGGER", "indimail");
        }
        let o = c.output().unwrap();
        eprintln!("== provision {cmd}\n{}", show(&o));
        assert!(o.status.success(), "provision {cmd}: {}", show(&o));
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    fn var(&self, envdir: &Path, key: &str) -> Option<String> {
        fs::read_to_string(envdir.join(key))
            .ok()
            .map(|v| v.lines().next().unwrap_or("").to_string())
    }

    fn ids(&self) -> (u32, u32) {
        (
            self.sandbox.id("passwd", "qmailq").expect("qmailq"),
            self.sandbox.id("group", "qmail").expect("qmail"),
        )
    }

    /// Injects one message as IndiMail's qmail-smtpd does: the service's
    /// environment as IndiMail's envdir loads it, QMAILQUEUE split into
    /// argv at spaces (qmail.c, qmail_open(): makeargs), the message on
    /// descriptor 0 and the envelope on descriptor 1, as the queue user.
    fn inject(&self, service: &str, subject: &str) -> Output {
        let env = indimail_envdir(self, &self.envdir(service));
        let qq = env.get("QMAILQUEUE").cloned().unwrap_or_default();
        let argv: Vec<&str> = qq.split_whitespace().collect();
        assert!(!argv.is_empty(), "{service}: no QMAILQUEUE");
        let msg = self.path("message");
        fs::write(&msg, format!("Subject: {subject}\n\nbody\n")).unwrap();
        let envelope = self.path("envelope");
        fs::write(&envelope, b"Fa@example.org\0Tb@example.org\0\0").unwrap();
        let (uid, gid) = self.ids();
        Command::new(argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(&env)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SYNC", "0")
            .stdin(fs::File::open(&msg).unwrap())
            .stdout(fs::File::open(&envelope).unwrap())
            .uid(uid)
            .gid(gid)
            .output()
            .unwrap()
    }

    /// The queued messages of queue N: their texts.
    fn messages(&self, n: u32) -> Vec<String> {
        let mess = self.base().join(format!("queue{n}/mess"));
        let Ok(subs) = fs::read_dir(mess) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for s in subs {
            for f in fs::read_dir(s.unwrap().path()).unwrap() {
                out.push(fs::read_to_string(f.unwrap().path()).unwrap());
            }
        }
        out
    }

    fn disabled(&self, n: u32) -> bool {
        let q = self.base().join(format!("queue{n}"));
        q.join("disabled").is_file() && fs::metadata(&q).unwrap().mode() & 0o1000 != 0
    }

    /// Every file of the services' variables/ and of the control
    /// directory: kind, content (or symlink target) and mode.
    fn envdirs_snapshot(&self) -> BTreeMap<PathBuf, (String, u32)> {
        fn walk(p: &Path, out: &mut BTreeMap<PathBuf, (String, u32)>) {
            let m = fs::symlink_metadata(p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(p).unwrap().display())
            } else if m.is_file() {
                format!("= {:?}", fs::read_to_string(p).unwrap())
            } else {
                "dir".into()
            };
            out.insert(p.to_owned(), (what, m.mode() & 0o7777));
            if m.is_dir() {
                for e in fs::read_dir(p).unwrap() {
                    walk(&e.unwrap().path(), out);
                }
            }
        }
        let mut out = BTreeMap::new();
        for s in SERVICES {
            walk(&self.envdir(s), &mut out);
        }
        walk(&self.control(), &mut out);
        out
    }
}

/// A service's environment as IndiMail's envdir gives it (the stand-in
/// tests/indimail/envdir, which follows libqmail's envdir()).
fn indimail_envdir(h: &Host, dir: &Path) -> BTreeMap<String, String> {
    let o = Command::new(h.path("usr/bin/envdir"))
        .arg(dir)
        .arg("env")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert!(o.status.success(), "envdir {}: {}", dir.display(), show(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let Some(mut child) = self.svscan.take() else {
            return;
        };
        // svscan restarts supervise while a service directory exists: move
        // the services out of its sight first, then stop each supervise.
        let gone = self.path("gone");
        let _ = fs::create_dir_all(&gone);
        for s in SERVICES {
            if fs::rename(self.path("service").join(s), gone.join(s)).is_ok() {
                let _ = Command::new("svc").arg("-dx").arg(gone.join(s)).status();
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        for s in SERVICES {
            let end = Instant::now() + Duration::from_secs(10);
            while Command::new("svok")
                .arg(gone.join(s))
                .status()
                .is_ok_and(|s| s.success())
                && Instant::now() < end
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn skip(why: &str) {
    eprintln!("skipped: prov_indimail: {why}");
}

/// The chains svctool and an administrator give the front ends, and the
/// headers a message through each must carry.
fn chains(h: &Host) -> Vec<(&'static str, String, Vec<&'static str>)> {
    vec![
        (
            "qmail-smtpd.25",
            h.sbin("qmail-dkim"),
            vec!["DKIM-Status: good"],
        ),
        (
            "qmail-smtpd.587",
            format!("{} {}", h.sbin("qmail-spamfilter"), h.sbin("qmail-dkim")),
            vec!["DKIM-Status: good", "X-Spam-Status: No"],
        ),
        (
            "qmail-qmtpd.209",
            format!(
                "{} {} one -- {} two",
                h.sbin("qmail-qfilter"),
                h.sbin("add-header"),
                h.sbin("add-header")
            ),
            vec!["X-QFilter: one", "X-QFilter: two"],
        ),
    ]
}

#[test]
fn indimail_chains_survive_its_refresh_and_come_back_on_removal() {
    let sandbox = match Sandbox::new() {
        Ok(s) => s,
        Err(why) => return skip(&why),
    };
    if !depositor().exists() {
        return skip(
            "target/<profile>/examples/test-qmail-queue is not built (cargo build --examples)",
        );
    }
    if !pkg_support::have("svscan") {
        return skip("daemontools (svscan) is not installed");
    }
    let mut h = Host::new(sandbox);
    let multi = env!("CARGO_BIN_EXE_qmail-multi");

    // IndiMail's installer: defaultqueue, SMTP on 25 (and qmail-send.25)
    // with DKIM, 587 with the spam filter in front of DKIM and autorefresh
    // off (a fresh 3.x install), QMQP and QMTP.
    h.svctool_with("--queueParam=defaultqueue", &["--dkverify=dkim"]);
    h.svctool_with("--smtp=25", &["--dkverify=dkim"]);
    h.svctool_with(
        "--smtp=587",
        &["--dkverify=dkim", "--spamfilter=bogofilter", "--skipsend"],
    );
    h.svctool(&[&format!(
        "--autorefresh=0 {}",
        h.path("service/qmail-smtpd.587").display()
    )]);
    h.svctool_with("--smtp=465", &["--skipsend"]);
    h.svctool_with("--qmtp=209", &[]);
    // Without DKIM svctool writes IndiMail's own qmail-multi.
    h.svctool_with("--qmqp=628", &[]);
    assert_eq!(
        h.var(&h.envdir("qmail-qmqpd.628"), "QMAILQUEUE"),
        Some(h.sbin("qmail-multi"))
    );
    // The administrator's choices: a qmail-qfilter chain on QMTP, a queue
    // program of their own on 465, spam bounced on 587.
    let chains = chains(&h);
    fs::write(
        h.envdir("qmail-qmtpd.209").join("QMAILQUEUE"),
        format!("{}\n", chains[2].1),
    )
    .unwrap();
    let custom = "/usr/local/bin/my-queue --fast";
    fs::write(
        h.envdir("qmail-smtpd.465").join("QMAILQUEUE"),
        format!("{custom}\n"),
    )
    .unwrap();
    fs::write(h.envdir("qmail-smtpd.587").join("REJECTSPAM"), "1\n").unwrap();
    for (s, chain, _) in &chains {
        assert_eq!(
            h.var(&h.envdir(s), "QMAILQUEUE").as_deref(),
            Some(chain.as_str()),
            "{s}"
        );
    }
    // QUEUE_BASE, QUEUE_COUNT, QUEUE_START come from global_vars only.
    assert!(!h.envdir("qmail-smtpd.25").join("QUEUE_COUNT").exists());
    let as_svctool_left_them = h.envdirs_snapshot();
    h.supervise();
    let h = h;
    // What each running service must have been given: QMAILQUEUE (a chain
    // with qmail-multi in front, the unknown program as it was, the
    // multiplexer alone for qmail-send) and the count.
    let runs_with = |count: &'static str| {
        let chains = self::chains(&h);
        move |s: &str, env: &BTreeMap<String, String>| {
            let qq = match chains.iter().find(|c| c.0 == s) {
                Some((_, chain, _)) => format!("{multi} {chain}"),
                None if s == "qmail-smtpd.465" => custom.to_string(),
                None => multi.to_string(),
            };
            env.get("QMAILQUEUE") == Some(&qq)
                && env.get("QUEUE_COUNT").map(String::as_str) == Some(count)
                && !env.contains_key("QUEUEDIR")
        }
    };

    // Install: every chain kept with qmail-multi in front; the unknown
    // program kept and named; no drift from values global_vars gives.
    h.conf(5);
    let out = h.provision("configure", false);
    h.wait_services("every service restarted with its chain", runs_with("5"));
    assert!(!out.contains("drift"), "{out}");
    assert!(
        out.contains(&format!("QMAILQUEUE '{custom}'"))
            && out.contains("is not a program the provisioning knows: kept"),
        "{out}"
    );
    for (s, chain, _) in &chains {
        assert_eq!(
            h.var(&h.envdir(s), "QMAILQUEUE"),
            Some(format!("{multi} {chain}")),
            "{s}"
        );
    }
    assert_eq!(
        h.var(&h.envdir("qmail-smtpd.465"), "QMAILQUEUE").as_deref(),
        Some(custom)
    );
    assert_eq!(
        h.var(&h.envdir("qmail-send.25"), "QMAILQUEUE").as_deref(),
        Some(multi)
    );
    // Values global_vars already gives are not copied into the services.
    assert!(!h.envdir("qmail-smtpd.25").join("QUEUE_COUNT").exists());

    // A shrink: queue4 and queue5 retired and disabled.
    h.conf(3);
    let out = h.provision("configure", false);
    // Restarted, also where the count comes through global_vars from
    // defaultqueue (no file of the service changed).
    h.wait_services("every service restarted with 3 queues", runs_with("3"));
    assert!(out.contains("disabled queue4 queue5"), "{out}");
    assert!(h.disabled(4) && h.disabled(5));
    // The services see the new count through global_vars → defaultqueue.
    assert_eq!(
        indimail_envdir(&h, &h.envdir("qmail-smtpd.25"))
            .get("QUEUE_COUNT")
            .map(String::as_str),
        Some("3")
    );

    // Mail through each chain and the real qmail-multi: filtered, signed,
    // in queue1..queue3 only.
    let per_chain = 8;
    for (s, _, _) in &chains {
        for i in 0..per_chain {
            let o = h.inject(s, &format!("{s} {i}"));
            assert!(o.status.success(), "{s}: {}", show(&o));
        }
    }
    // The spam filter's own exit code reaches the caller.
    let o = h.inject("qmail-smtpd.587", "SPAM offer");
    assert_eq!(o.status.code(), Some(32), "{}", show(&o));
    for n in [4, 5] {
        assert!(h.messages(n).is_empty(), "mail in the disabled queue{n}");
    }
    let queued: Vec<String> = (1..=3).flat_map(|n| h.messages(n)).collect();
    assert_eq!(queued.len(), 3 * per_chain);
    for (s, _, headers) in &chains {
        let mine: Vec<&String> = queued
            .iter()
            .filter(|m| m.contains(&format!("Subject: {s} ")))
            .collect();
        assert_eq!(mine.len(), per_chain, "{s}");
        for m in mine {
            for want in headers {
                assert!(m.contains(want), "{s}: {want} missing:\n{m}");
            }
        }
    }

    // IndiMail's upgrade: its %post refreshes the front ends and
    // defaultqueue (587 has .norefreshsvc and is skipped).
    let refresh = format!(
        "--refreshsvc={} {} {}",
        h.path("service/qmail-smtpd.25").display(),
        h.path("service/qmail-smtpd.587").display(),
        h.control().join("defaultqueue").display()
    );
    let before_refresh = h.envdirs_snapshot();
    h.svctool(&[&refresh]);
    assert_eq!(
        h.var(&h.envdir("qmail-smtpd.25"), "QMAILQUEUE"),
        Some(h.sbin("qmail-dkim")),
        "the refresh did not rewrite QMAILQUEUE"
    );
    assert!(!h.disabled(4), "the refresh left queue4's sticky bit");
    // What removal must put back from now on: what svctool made, with
    // what its refresh wrote since in place of its first values (in the
    // refreshed front end and qmail-send, a QUEUE_COUNT=5 of their own,
    // written while defaultqueue still said 3).
    let after_refresh = h.envdirs_snapshot();
    let mut before_us = as_svctool_left_them.clone();
    for p in before_refresh.keys().chain(after_refresh.keys()) {
        if before_refresh.get(p) != after_refresh.get(p) {
            match after_refresh.get(p) {
                Some(v) => before_us.insert(p.clone(), v.clone()),
                None => before_us.remove(p),
            };
        }
    }
    // Until our trigger runs, IndiMail's own selection (qmulti) sends mail
    // into queue1..queue5, the retired queues included.
    let during = 30;
    for i in 0..during {
        let o = h.inject("qmail-smtpd.25", &format!("refresh {i}"));
        assert!(o.status.success(), "{}", show(&o));
    }
    assert!(
        !(h.messages(4).is_empty() && h.messages(5).is_empty()),
        "no mail reached queue4 or queue5 during the refresh"
    );

    // Our trigger: everything back.
    let out = h.provision("configure", true);
    h.wait_services(
        "every service restarted as before the refresh",
        runs_with("3"),
    );
    assert!(out.contains("run by our package's trigger"), "{out}");
    assert!(out.contains("IndiMail's refresh changed"), "{out}");
    assert!(out.contains("disabled again"), "{out}");
    assert!(!out.contains("edited by hand"), "{out}");
    for (s, chain, _) in &chains {
        assert_eq!(
            h.var(&h.envdir(s), "QMAILQUEUE"),
            Some(format!("{multi} {chain}")),
            "{s}"
        );
    }
    assert_eq!(
        h.var(&h.control().join("defaultqueue"), "QUEUE_COUNT")
            .as_deref(),
        Some("3")
    );
    for s in SERVICES {
        let env = indimail_envdir(&h, &h.envdir(s));
        assert_eq!(env.get("QUEUE_COUNT").map(String::as_str), Some("3"), "{s}");
    }
    assert!(h.disabled(4) && h.disabled(5));
    for n in [4, 5] {
        assert!(h.messages(n).is_empty(), "mail stranded in queue{n}");
    }
    let total: usize = (1..=3).map(|n| h.messages(n).len()).sum();
    assert_eq!(total, 3 * per_chain + during, "messages lost or duplicated");
    // A second run changes nothing.
    let state = read(h.path("state/applied"));
    let snap = h.envdirs_snapshot();
    let out = h.provision("configure", false);
    assert!(!out.contains("changed") && !out.contains("drift"), "{out}");
    assert_eq!(read(h.path("state/applied")), state);
    assert_eq!(h.envdirs_snapshot(), snap);

    // Removal: every envdir as it was before us, byte for byte.
    let out = h.provision("remove", false);
    assert!(out.contains("put back what it held before"), "{out}");
    let now = h.envdirs_snapshot();
    let differ: Vec<_> = before_us
        .keys()
        .chain(now.keys())
        .filter(|k| before_us.get(*k) != now.get(*k))
        .collect();
    assert!(differ.is_empty(), "not restored: {differ:?}");
    assert!(!h.disabled(4) && !h.disabled(5));

    // Installed again and removed again: the same (IndiMail's own
    // qmail-multi on 628 is IndiMail's value, not one an earlier version
    // of this package seeded).
    h.provision("configure", false);
    assert_eq!(
        h.var(&h.envdir("qmail-qmqpd.628"), "QMAILQUEUE").as_deref(),
        Some(multi)
    );
    h.provision("remove", false);
    assert_eq!(h.envdirs_snapshot(), before_us);
}
