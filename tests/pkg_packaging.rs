//! Packaging: the Debian and RPM packages built offline from this tree and
//! installed for real over a scratch daemontools service directory watched
//! by a real `svscan`, driven through install, grow, shrink, a postponed
//! shrink, drift and orphans, idempotence, remove and purge (RPM: install,
//! upgrade, reconfigure, erase); the OBS sources checked offline; the
//! provisioning's configuration checks; the man pages.
//!
//! The scenarios install into the same system paths (/usr/sbin,
//! /etc/qmail-multi, /var/lib/qmail-multi), so they run one after the other
//! inside one test and never touch a real /service: the configuration
//! points SERVICEDIR, QUEUE_BASE and CONTROLDIR at a scratch directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod pkg_support;
use pkg_support::{is_root, missing, out_dir, read, repo, script, show};

const SERVICES: [&str; 6] = [
    "qmail-smtpd.25",
    "qmail-smtpd.465",
    "qmail-smtpd.587",
    "qmail-send.25",
    "qmail-qmqpd.628",
    "qmail-qmtpd.209",
];
const CONF: &str = "/etc/qmail-multi/qmail-multi.conf";
const STATE: &str = "/var/lib/qmail-multi/applied";
const MULTI: &str = "/usr/libexec/qmail-multi/qmail-multi";
const QUEUE_FIX: &str = "/usr/libexec/qmail-multi/queue-fix";
const QUEUE_STAT: &str = "/usr/bin/queue-stat";
const PROVISION: &str = "/usr/libexec/qmail-multi/provision";
/// Small, so queues are quick to create; every queue-fix call uses it.
const SPLIT: &str = "7";
/// Each service's QUEUEDIR before the install: it would bypass the
/// multiplexer.
const STALE_QUEUEDIR: &str = "/stale/queue\n";
const MESSAGES: usize = 3000;
/// The shrink whose front-end downtime is measured moves this many
/// messages out of the retired queues.
const BULK: usize = 20_000;
/// Test ids of the bulk messages start here (clear of the injected ones).
const BULK_FIRST: usize = 1_000_000;

fn depositor() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_qmail-multi"));
    bin.parent().unwrap().join("examples/test-qmail-queue")
}

fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

/// `pkg_support::clean`, and where the provisioning looks for SERVICEDIR
/// when the configuration does not say: the scratch world's stand-ins for
/// /service and /etc/service (the packages' scriptlets inherit it).
fn clean(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = pkg_support::clean(program);
    if let Some(dirs) = SERVICEDIRS.lock().unwrap().as_ref() {
        c.env("QMAIL_MULTI_SERVICEDIRS", dirs);
    }
    c
}

/// Runs `c`, prints what it said, fails the test unless it succeeded.
fn run_output(c: &mut Command, what: &str) -> Output {
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    eprintln!("== {what}\n{}", show(&o));
    assert!(o.status.success(), "{what} failed:\n{}", show(&o));
    o
}

/// Like `run_output`; returns what it said on stdout and stderr.
fn run(c: &mut Command, what: &str) -> String {
    said(&run_output(c, what))
}

/// Runs a script of tests/packaging; returns its standard output.
fn sh_script(name: &str, args: &[&str]) -> String {
    let mut c = clean("sh");
    c.arg(script(name)).args(args);
    let o = run_output(&mut c, name);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(
            Instant::now() < end,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn qmail_ids() -> (u32, u32) {
    let u = nix::unistd::User::from_name("qmailq")
        .unwrap()
        .expect("qmailq exists");
    let g = nix::unistd::Group::from_name("qmail")
        .unwrap()
        .expect("qmail exists");
    (u.uid.as_raw(), g.gid.as_raw())
}

/// The range the provisioning applied last: the first line of its state.
fn applied() -> String {
    read(STATE).lines().next().unwrap_or("").to_string()
}

static SERVICEDIRS: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Where the daemontools services live: IndiMail's `/service` or Debian's
/// `daemontools-run` `/etc/service` (both inside the scratch world).
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    IndiMail,
    Debian,
}

/// The scratch world: SERVICEDIR with the six services (their run scripts
/// `exec envdir ./variables` the environment recorder), QUEUE_BASE,
/// CONTROLDIR, and the svscan watching SERVICEDIR.
struct World {
    dir: tempfile::TempDir,
    /// SERVICEDIR: `<dir>/service` or `<dir>/etc/service`.
    svdir: PathBuf,
    svscan: Option<Child>,
    expected: BTreeSet<usize>,
    /// Every envdir's files before the first install (`envdir_files`):
    /// what removal must put back.
    pristine: BTreeMap<PathBuf, EnvdirFiles>,
}

/// An envdir's files by name: a file's bytes, or a symlink's target.
type EnvdirFiles = BTreeMap<String, Result<Vec<u8>, PathBuf>>;

/// What envdir `d` holds; a missing envdir holds nothing (defaultqueue,
/// which the provisioning creates and purge keeps, empty after removal).
fn envdir_files(d: &Path) -> EnvdirFiles {
    let Ok(entries) = fs::read_dir(d) else {
        return EnvdirFiles::new();
    };
    entries
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let what = match fs::read_link(&p) {
                Ok(target) => Err(target),
                Err(_) => Ok(fs::read(&p).unwrap()),
            };
            (name, what)
        })
        .collect()
}

impl World {
    fn new(layout: Layout) -> World {
        let dir = tempfile::Builder::new().prefix("pkg").tempdir().unwrap();
        // qmail-multi and the depositor run as qmailq and must get through.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let svdir = dir.path().join(match layout {
            Layout::IndiMail => "service",
            Layout::Debian => "etc/service",
        });
        *SERVICEDIRS.lock().unwrap() = Some(format!(
            "{} {}",
            dir.path().join("service").display(),
            dir.path().join("etc/service").display()
        ));
        let mut w = World {
            dir,
            svdir,
            svscan: None,
            expected: BTreeSet::new(),
            pristine: BTreeMap::new(),
        };
        for d in ["control", "records", "gone"] {
            fs::create_dir(w.path(d)).unwrap();
        }
        fs::create_dir_all(&w.svdir).unwrap();
        let recorder = w.path("record-env.sh");
        fs::copy(script("record-env.sh"), &recorder).unwrap();
        for s in SERVICES {
            let sd = w.service(s);
            fs::create_dir_all(sd.join("variables")).unwrap();
            // Left alone by the provisioning:
            fs::write(sd.join("variables/OTHER"), "keep\n").unwrap();
            // A stale QUEUEDIR would bypass the multiplexer: emptied while
            // installed; removal puts it back, as it puts back everything
            // an envdir held before (README, "What removal restores").
            fs::write(sd.join("variables/QUEUEDIR"), STALE_QUEUEDIR).unwrap();
            let run = format!(
                "#!/bin/sh\nexec envdir ./variables /bin/sh {} {s} {}\n",
                recorder.display(),
                w.path("records").display()
            );
            fs::write(sd.join("run"), run).unwrap();
            fs::set_permissions(sd.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
        }
        w.pristine = w
            .envdirs()
            .iter()
            .map(|d| (d.clone(), envdir_files(d)))
            .collect();
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn service(&self, name: &str) -> PathBuf {
        self.svdir.join(name)
    }

    fn base(&self) -> PathBuf {
        self.path("queue")
    }

    fn defaultqueue(&self) -> PathBuf {
        self.path("control/defaultqueue")
    }

    /// SERVICEDIR is left to the provisioning's default (the first of the
    /// world's `service` and `etc/service` that exists).
    fn write_conf(&self, count: Option<u32>) {
        self.write_conf_with(count, "");
    }

    /// Purge (or erase) named every queue that holds mail, with its count
    /// and the command to check it.
    fn assert_kept_said(&self, said: &str) {
        let mut named = 0;
        for (n, ids) in self.messages() {
            let q = self.base().join(format!("queue{n}"));
            let line = format!(
                "kept {}: it holds {} messages; check it with: find {}/mess -type f | wc -l",
                q.display(),
                ids.len(),
                q.display()
            );
            assert_eq!(
                said.contains(&line),
                !ids.is_empty(),
                "expected {line:?} iff queue{n} holds mail:\n{said}"
            );
            named += usize::from(!ids.is_empty());
        }
        assert!(named > 0, "no queue held mail: nothing was checked");
    }

    fn write_conf_with(&self, count: Option<u32>, extra: &str) {
        let mut c = format!(
            "# written by tests/pkg_packaging.rs\nQUEUE_BASE={}\nCONTROLDIR={}\nSPLIT={SPLIT}\nSTOP_TIMEOUT=5\n{extra}",
            self.base().display(),
            self.path("control").display()
        );
        if let Some(n) = count {
            c += &format!("QUEUE_COUNT={n}\n");
        }
        fs::create_dir_all("/etc/qmail-multi").unwrap();
        fs::write(CONF, c).unwrap();
    }

    fn start_svscan(&mut self) {
        let child = Command::new("svscan")
            .arg(&self.svdir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("svscan starts");
        self.svscan = Some(child);
        wait_for("the six services to run and record", 30, || {
            SERVICES.iter().all(|s| {
                self.pid(s).is_some() && self.path("records").join(format!("{s}.env")).exists()
            })
        });
    }

    /// svstat's pid of a service, when it is up.
    fn pid(&self, name: &str) -> Option<u32> {
        let o = Command::new("svstat")
            .arg(self.service(name))
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&o.stdout);
        let rest = s.split("up (pid ").nth(1)?;
        rest.split(')').next()?.parse().ok()
    }

    fn pids(&self) -> BTreeMap<&'static str, Option<u32>> {
        SERVICES.iter().map(|s| (*s, self.pid(s))).collect()
    }

    fn recorded(&self, name: &str) -> BTreeMap<String, String> {
        let p = self.path("records").join(format!("{name}.env"));
        fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Waits until every service runs under a new pid and recorded an
    /// environment that `ok` accepts.
    fn wait_restarted(
        &self,
        before: &BTreeMap<&'static str, Option<u32>>,
        what: &str,
        ok: impl Fn(&str, &BTreeMap<String, String>) -> bool,
    ) {
        wait_for(what, 30, || {
            SERVICES.iter().all(|s| {
                let now = self.pid(s);
                now.is_some() && now != before[s] && ok(s, &self.recorded(s))
            })
        });
    }

    fn envdirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = SERVICES
            .iter()
            .map(|s| self.service(s).join("variables"))
            .collect();
        v.push(self.defaultqueue());
        v
    }

    /// Every seeded envdir holds the configuration, QUEUEDIR unset (the
    /// planted stale one emptied; none written where there was none: an
    /// empty file and no file both unset it for envdir), the unmanaged
    /// OTHER untouched.
    fn assert_seeded(&self, count: u32) {
        let base = format!("{}\n", self.base().display());
        for d in self.envdirs() {
            let var = |k: &str| read(d.join(k));
            assert_eq!(var("QUEUE_BASE"), base, "{}", d.display());
            assert_eq!(var("QUEUE_COUNT"), format!("{count}\n"), "{}", d.display());
            assert_eq!(var("QUEUE_START"), "1\n", "{}", d.display());
            assert_eq!(var("QMAILQUEUE"), format!("{MULTI}\n"), "{}", d.display());
            assert_eq!(var("MIN_FREE"), "52428800\n", "{}", d.display());
            if d == self.defaultqueue() {
                assert!(
                    !d.join("QUEUEDIR").exists(),
                    "{}: QUEUEDIR written though nothing set it",
                    d.display()
                );
            } else {
                assert_eq!(var("QUEUEDIR"), "", "{}: QUEUEDIR not emptied", d.display());
                assert_eq!(var("OTHER"), "keep\n", "{}", d.display());
            }
        }
    }

    fn env_has_count(env: &BTreeMap<String, String>, count: u32) -> bool {
        env.get("QUEUE_COUNT") == Some(&count.to_string())
            && env.get("QMAILQUEUE").map(String::as_str) == Some(MULTI)
            && !env.contains_key("QUEUEDIR")
            && env.get("OTHER").map(String::as_str) == Some("keep")
    }

    /// QUEUE_BASE is root:qmail 0755 and queue1..queueN pass queue-fix -N
    /// (orphans included: --base reports them).
    fn assert_queues(&self, count: u32) {
        let m = fs::metadata(self.base()).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (0, qmail_ids().1, 0o755)
        );
        let mut c = Command::new(QUEUE_FIX);
        c.args(["-N", "-s", SPLIT, "--base"])
            .arg(self.base())
            .args(["--count", &count.to_string(), "--start", "1"]);
        run(&mut c, &format!("queue-fix -N --base, {count} queues"));
    }

    /// The installed queue-stat reads the range the package made: one row
    /// per queue, every one usable.
    fn assert_stat_sees(&self, count: u32) {
        let mut c = Command::new(QUEUE_STAT);
        c.arg("--base")
            .arg(self.base())
            .args(["--count", &count.to_string(), "--start", "1"]);
        let out = run(&mut c, &format!("queue-stat over {count} queues"));
        for n in 1..=count {
            let row = out.lines().find(|l| {
                l.split_whitespace().next() == Some(&format!("queue{n}")[..])
                    && l.contains(" usable ")
            });
            assert!(
                row.is_some(),
                "queue{n} is not shown usable by queue-stat: {out}"
            );
        }
    }

    /// Injects messages `ids` through the installed qmail-multi, as qmailq,
    /// with the defaultqueue environment (what sendmail would get), or
    /// straight into `queuedir` with the depositor.
    fn inject(&mut self, ids: std::ops::Range<usize>, queuedir: Option<&Path>) {
        let (uid, gid) = qmail_ids();
        let mut vars: Vec<(String, String)> = Vec::new();
        for e in fs::read_dir(self.defaultqueue()).unwrap() {
            let e = e.unwrap();
            let v = read(e.path());
            if let Some(line) = v.lines().next().filter(|l| !l.is_empty()) {
                vars.push((e.file_name().into_string().unwrap(), line.to_string()));
            }
        }
        let envelope = self.path("envelope");
        fs::write(&envelope, b"Fsender@example.org\0Trcpt@example.org\0\0").unwrap();
        let message = self.path("message");
        for i in ids {
            fs::write(
                &message,
                format!(
                    "From: sender@example.org\nTo: rcpt@example.org\nX-Test-Id: {i}\n\nbody {i}\n"
                ),
            )
            .unwrap();
            let mut c = match queuedir {
                None => {
                    let mut c = Command::new(MULTI);
                    c.env_clear().envs(vars.iter().cloned());
                    c
                }
                Some(q) => {
                    let mut c = Command::new(depositor());
                    c.env_clear().env("QUEUEDIR", q);
                    c
                }
            };
            let o = c
                .env("QUEUEPROG", depositor())
                .env("CONFSPLIT", SPLIT)
                .env("SYNC", "0")
                .env("QMAILHOME", self.dir.path())
                .env("CONTROLDIR", self.path("control"))
                .stdin(fs::File::open(&message).unwrap())
                .stdout(fs::File::open(&envelope).unwrap())
                .uid(uid)
                .gid(gid)
                .output()
                .unwrap();
            assert!(o.status.success(), "injecting message {i}:\n{}", show(&o));
            self.expected.insert(i);
        }
    }

    /// Writes `BULK` messages straight into the queues `queues`, round
    /// robin, with the library's depositor in this process (one exec per
    /// message would take minutes), then gives them to qmailq as
    /// qmail-queue would have left them.
    fn deposit_bulk(&mut self, queues: std::ops::RangeInclusive<u32>) {
        use qmail_multi::queue::deposit::{deposit, DepositOptions, Envelope};
        let split: u32 = SPLIT.parse().unwrap();
        let opts = DepositOptions {
            layout: qmail_multi::queue::layout::Layout::new(split),
            sync: false,
            received_line: true,
        };
        let envelope = Envelope {
            sender: b"sender@example.org".to_vec(),
            recipients: vec![b"rcpt@example.org".to_vec()],
        };
        let targets: Vec<PathBuf> = queues
            .map(|n| self.base().join(format!("queue{n}")))
            .collect();
        let started = Instant::now();
        for i in BULK_FIRST..BULK_FIRST + BULK {
            let text = format!(
                "From: sender@example.org\nTo: rcpt@example.org\nX-Test-Id: {i}\n\nbody {i}\n"
            );
            let q = &targets[i % targets.len()];
            deposit(q, &mut text.as_bytes(), &envelope, opts)
                .unwrap_or_else(|e| panic!("depositing {i} into {}: {e}", q.display()));
            self.expected.insert(i);
        }
        for q in &targets {
            let mut c = Command::new("chown");
            c.args(["-R", "qmailq:qmail"])
                .arg(q.join("mess"))
                .arg(q.join("intd"))
                .arg(q.join("todo"));
            run_output(&mut c, "chown the bulk messages");
        }
        eprintln!(
            "deposited {BULK} messages into {} queues in {:?}",
            targets.len(),
            started.elapsed()
        );
    }

    /// A qmail-queue already told to write into `queue` (what a qmail-multi
    /// started with the old count has exec'ed), still reading the message:
    /// in flight until `release`.
    fn hold_injection(&self, queue: &Path) -> Held {
        let (uid, gid) = qmail_ids();
        let envelope = self.path("envelope.held");
        fs::write(&envelope, b"Fsender@example.org\0Trcpt@example.org\0\0").unwrap();
        let child = Command::new(depositor())
            .env_clear()
            .env("QUEUEDIR", queue)
            .env("CONFSPLIT", SPLIT)
            .env("SYNC", "0")
            .stdin(Stdio::piped())
            .stdout(fs::File::open(&envelope).unwrap())
            .stderr(Stdio::piped())
            .uid(uid)
            .gid(gid)
            .spawn()
            .expect("the depositor starts");
        Held { child }
    }

    /// Test ids of the messages in each queueN (from their mess files).
    fn messages(&self) -> BTreeMap<u32, Vec<usize>> {
        let mut out: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for q in fs::read_dir(self.base()).unwrap() {
            let q = q.unwrap();
            let name = q.file_name().into_string().unwrap();
            let Some(n) = name.strip_prefix("queue").and_then(|n| n.parse().ok()) else {
                continue;
            };
            let ids = out.entry(n).or_default();
            for sub in fs::read_dir(q.path().join("mess")).unwrap() {
                for f in fs::read_dir(sub.unwrap().path()).unwrap() {
                    let text = read(f.unwrap().path());
                    let id = text
                        .lines()
                        .find_map(|l| l.strip_prefix("X-Test-Id: "))
                        .expect("a test message")
                        .parse()
                        .unwrap();
                    ids.push(id);
                }
            }
        }
        out
    }

    /// Every injected message is present exactly once, in queue1..queueN.
    fn assert_messages(&self, count: u32) {
        let mut seen = Vec::new();
        for (n, ids) in self.messages() {
            if n > count {
                assert!(
                    ids.is_empty(),
                    "queue{n} is retired but holds {} messages",
                    ids.len()
                );
            }
            seen.extend(ids);
        }
        seen.sort_unstable();
        let want: Vec<usize> = self.expected.iter().copied().collect();
        assert_eq!(seen.len(), want.len(), "message count");
        assert_eq!(seen, want, "every message exactly once");
    }

    /// mtime and inode of every file under the scratch configuration
    /// targets and the state (supervise/ status files excluded: daemontools
    /// rewrites them).
    fn snapshot(&self) -> Snapshot {
        fn walk(p: &Path, out: &mut BTreeMap<PathBuf, (i64, i64, u64)>) {
            let Ok(m) = fs::symlink_metadata(p) else {
                return;
            };
            out.insert(p.to_path_buf(), (m.mtime(), m.mtime_nsec(), m.ino()));
            if m.is_dir() {
                for e in fs::read_dir(p).unwrap() {
                    let e = e.unwrap();
                    if e.file_name() != "supervise" {
                        walk(&e.path(), out);
                    }
                }
            }
        }
        let mut out = BTreeMap::new();
        for p in [self.svdir.clone(), self.path("control"), self.base()] {
            walk(&p, &mut out);
        }
        walk(Path::new("/var/lib/qmail-multi"), &mut out);
        // The conffile, not its directory: dpkg and rpm put their copies
        // of the shipped file next to it.
        walk(Path::new(CONF), &mut out);
        out
    }

    /// After removal: every envdir holds, byte for byte, what it held
    /// before the first install (the stale QUEUEDIR included); qmail-send
    /// alone also keeps the range applied last, `send_count` queues, so
    /// that its mail drains.
    fn assert_restored(&self, send_count: u32) {
        for d in self.envdirs() {
            assert_eq!(
                envdir_files(&d),
                self.restored(&d, send_count),
                "{} after removal",
                d.display()
            );
        }
    }

    /// What envdir `d` must hold after removal.
    fn restored(&self, d: &Path, send_count: u32) -> EnvdirFiles {
        let mut want = self.pristine[d].clone();
        if d.ends_with("qmail-send.25/variables") {
            for (k, v) in [
                ("QUEUE_BASE", format!("{}\n", self.base().display())),
                ("QUEUE_START", "1\n".to_string()),
                ("QUEUE_COUNT", format!("{send_count}\n")),
            ] {
                want.insert(k.to_string(), Ok(v.into_bytes()));
            }
        }
        want
    }

    /// What removal said: for each envdir, every variable put back as it
    /// was before (a file's first line, or "(no file)"); qmail-send keeping
    /// its count.
    fn assert_restored_said(&self, said: &str, send_count: u32) {
        const PUT_BACK: &str = ": put back what it held before qmail-multi seeded it:";
        for d in self.envdirs() {
            let name = if d == self.defaultqueue() {
                d.clone()
            } else {
                d.parent().unwrap().to_path_buf()
            };
            let prefix = format!("qmail-multi: {}{PUT_BACK}", name.display());
            let line = said
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("{prefix:?} missing:\n{said}"));
            // Items are KEY(no file) or KEY='value', one space apart: the
            // space inside the first kind is no separator.
            let line = line.replace("(no file)", "(no_file)");
            let got: BTreeSet<String> = line
                .split(' ')
                .filter(|i| !i.is_empty())
                .map(|i| i.replace("(no_file)", "(no file)"))
                .collect();
            let keys = [
                "QUEUE_BASE",
                "QUEUE_COUNT",
                "QUEUE_START",
                "QMAILQUEUE",
                "MIN_FREE",
            ];
            let planted = d != self.defaultqueue();
            let want: BTreeSet<String> = keys
                .iter()
                .chain(planted.then_some(&"QUEUEDIR"))
                .map(|k| match self.pristine[&d].get(*k) {
                    Some(Ok(v)) => {
                        let v = String::from_utf8_lossy(v);
                        format!("{k}='{}'", v.lines().next().unwrap_or(""))
                    }
                    Some(Err(target)) => panic!("{k} was a symlink to {}", target.display()),
                    None => format!("{k}(no file)"),
                })
                .collect();
            assert_eq!(got, want, "{}: what removal said it put back", d.display());
        }
        let kept = format!(
            "qmail-send keeps its count so queued mail drains: {} keeps \
             QUEUE_BASE='{}' QUEUE_START='1' QUEUE_COUNT='{send_count}'",
            self.service("qmail-send.25").display(),
            self.base().display()
        );
        assert!(said.contains(&kept), "{kept:?} missing:\n{said}");
        assert!(!said.contains("front ends now inject"), "{said}");
    }

    /// An administrator changes `key` in a seeded envdir by hand. The next
    /// run puts the configured value back and takes the hand-made one as
    /// what the envdir held before (provision's apply()): removal restores
    /// that one.
    fn edit_by_hand(&mut self, envdir: &Path, key: &str, value: &str) {
        fs::write(envdir.join(key), value).unwrap();
        self.pristine
            .get_mut(envdir)
            .expect("a seeded envdir")
            .insert(key.to_string(), Ok(value.as_bytes().to_vec()));
    }

    /// The services restarted with what their envdirs hold after removal
    /// (`restored`): the stale QUEUEDIR, no multiplexer, qmail-send with
    /// `send_count` queues.
    fn wait_restored(&self, before: &BTreeMap<&'static str, Option<u32>>, send_count: u32) {
        // daemontools' envdir: a file's first line sets the variable, an
        // empty file unsets it.
        let expected: BTreeMap<&str, BTreeMap<&str, Option<String>>> = SERVICES
            .iter()
            .map(|s| {
                let files = self.restored(&self.service(s).join("variables"), send_count);
                let vars = ["QUEUE_BASE", "QUEUE_COUNT", "QUEUE_START", "QMAILQUEUE"]
                    .into_iter()
                    .chain(["MIN_FREE", "QUEUEDIR", "OTHER"])
                    .map(|k| {
                        let v = match files.get(k) {
                            Some(Ok(b)) if !b.is_empty() => String::from_utf8_lossy(b)
                                .lines()
                                .next()
                                .map(|l| l.trim_end().to_string()),
                            _ => None,
                        };
                        (k, v)
                    })
                    .collect();
                (*s, vars)
            })
            .collect();
        assert_eq!(
            expected["qmail-smtpd.25"]["QUEUEDIR"].as_deref(),
            Some(STALE_QUEUEDIR.trim_end()),
            "the stale QUEUEDIR comes back"
        );
        self.wait_restarted(
            before,
            "services restarted as before the install",
            |s, env| expected[s].iter().all(|(k, v)| env.get(*k) == v.as_ref()),
        );
    }

    fn stop_svscan(&mut self) {
        let Some(mut child) = self.svscan.take() else {
            return;
        };
        // svscan restarts supervise while a service directory exists: move
        // the services out of its sight first, then stop each supervise.
        for s in SERVICES {
            let gone = self.path("gone").join(s);
            if fs::rename(self.service(s), &gone).is_ok() {
                let _ = Command::new("svc").arg("-dx").arg(&gone).status();
                let _ = Command::new("svc").arg("-k").arg(&gone).status();
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        for s in SERVICES {
            let gone = self.path("gone").join(s);
            let end = Instant::now() + Duration::from_secs(10);
            while Command::new("svok")
                .arg(&gone)
                .status()
                .is_ok_and(|s| s.success())
                && Instant::now() < end
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_svscan();
    }
}

/// How long a service was seen down, polling svstat.
#[derive(Debug, Default)]
struct Downtime {
    total: Duration,
    outages: u32,
    longest: Duration,
}

/// Polls `svstat` over the given services every 20 ms in a thread and
/// adds up how long each was not up.
struct DownTimer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<BTreeMap<String, Downtime>>,
}

impl DownTimer {
    fn start(services: Vec<(String, PathBuf)>) -> DownTimer {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut out: BTreeMap<String, Downtime> = BTreeMap::new();
            let mut since: BTreeMap<String, Instant> = BTreeMap::new();
            let close = |out: &mut BTreeMap<String, Downtime>, s: &str, from: Instant| {
                let d = out.entry(s.to_string()).or_default();
                let len = from.elapsed();
                d.total += len;
                d.outages += 1;
                d.longest = d.longest.max(len);
            };
            loop {
                let done = flag.load(Ordering::SeqCst);
                let o = Command::new("svstat")
                    .args(services.iter().map(|(_, p)| p))
                    .output()
                    .expect("svstat runs");
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let now = Instant::now();
                for (name, path) in &services {
                    let prefix = format!("{}: ", path.display());
                    let up = text
                        .lines()
                        .find_map(|l| l.strip_prefix(&prefix))
                        .is_some_and(|rest| rest.starts_with("up ("));
                    out.entry(name.clone()).or_default();
                    match (up, since.get(name).copied()) {
                        (false, None) => {
                            since.insert(name.clone(), now);
                        }
                        (true, Some(from)) => {
                            since.remove(name);
                            close(&mut out, name, from);
                        }
                        _ => {}
                    }
                }
                if done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            for (name, from) in since {
                close(&mut out, &name, from);
            }
            out
        });
        DownTimer { stop, thread }
    }

    fn stop(self) -> BTreeMap<String, Downtime> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("the svstat poller")
    }
}

/// An injection in flight (see `World::hold_injection`).
struct Held {
    child: Child,
}

impl Held {
    /// Gives it message `id` and waits until it has queued it.
    fn release(mut self, w: &mut World, id: usize) {
        use std::io::Write;
        let mut stdin = self.child.stdin.take().unwrap();
        write!(
            stdin,
            "From: sender@example.org\nTo: rcpt@example.org\nX-Test-Id: {id}\n\nbody {id}\n"
        )
        .unwrap();
        drop(stdin);
        let o = self.child.wait_with_output().unwrap();
        assert!(o.status.success(), "the held injection: {}", show(&o));
        w.expected.insert(id);
    }
}

/// Runs `configure` in a thread; once every front end runs with `count`
/// queues, checks that qmail-send is still held down (the injection in
/// flight has not ended), waits `hold` more, then releases it. Returns
/// what configure said.
fn shrink_with_injection_in_flight(
    w: &mut World,
    count: u32,
    queue: &Path,
    id: usize,
    hold: Duration,
    configure: fn() -> String,
) -> String {
    let before = w.pids();
    let held = w.hold_injection(queue);
    let step = std::thread::spawn(configure);
    let fronts: Vec<&str> = SERVICES
        .iter()
        .copied()
        .filter(|s| *s != "qmail-send.25" && before[s].is_some())
        .collect();
    wait_for("the front ends restarted with the new count", 30, || {
        fronts.iter().all(|s| {
            let now = w.pid(s);
            now.is_some() && now != before[s] && World::env_has_count(&w.recorded(s), count)
        })
    });
    assert_eq!(
        w.pid("qmail-send.25"),
        None,
        "qmail-send runs again while an injection into {} is in flight",
        queue.display()
    );
    std::thread::sleep(hold);
    held.release(w, id);
    step.join().expect("the configure step")
}

type Snapshot = BTreeMap<PathBuf, (i64, i64, u64)>;

/// Fails naming every path added, removed or changed between snapshots.
fn assert_unchanged(before: &Snapshot, after: &Snapshot, what: &str) {
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(changed.is_empty(), "{what} changed {changed:?}");
}

/// Leaves no package, configuration or state behind, also when a step
/// failed half-way.
struct SystemCleanup {
    rpmdb: Option<PathBuf>,
}

impl Drop for SystemCleanup {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["-P", "qmail-multi"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(db) = &self.rpmdb {
            let _ = Command::new("rpm")
                .arg("--dbpath")
                .arg(db)
                .args(["-e", "--nodeps", "--noscripts", "qmail-multi"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all("/etc/qmail-multi");
        let _ = fs::remove_dir_all("/var/lib/qmail-multi");
    }
}

fn configure_deb() -> String {
    let mut c = clean("dpkg-reconfigure");
    c.args(["-fnoninteractive", "qmail-multi"]);
    run(&mut c, "dpkg-reconfigure qmail-multi")
}

/// How many paths qmail-multi diverts (the versions up to 0.1.0-1 diverted
/// IndiMail's qmail-multi, queue-fix and their man pages).
fn diversions() -> usize {
    let o = Command::new("dpkg-divert").arg("--list").output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.ends_with(" by qmail-multi"))
        .count()
}

fn already_installed() -> Option<String> {
    let dpkg = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "qmail-multi"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"));
    let files = [MULTI, QUEUE_FIX, QUEUE_STAT, CONF]
        .iter()
        .any(|p| Path::new(p).exists());
    (dpkg || files).then(|| {
        "qmail-multi is already installed on this machine (package or files); refusing to replace it"
            .to_string()
    })
}

/// Grow 5 → 10 and shrink 10 → 3 through `configure`, with 3,000 messages.
fn grow_and_shrink(w: &mut World, configure: &dyn Fn() -> String) {
    w.inject(0..MESSAGES, None);
    w.assert_messages(5);
    let spread = w.messages();
    assert!(
        (1..=5).all(|n| spread[&n].len() > MESSAGES / 10),
        "mail spread over the five queues: {:?}",
        spread.iter().map(|(n, v)| (n, v.len())).collect::<Vec<_>>()
    );

    for count in [10, 3] {
        w.write_conf(Some(count));
        let before = w.pids();
        if count == 3 {
            // The measured shrink: 20,000 messages to move out of
            // queue4..queue10.
            w.deposit_bulk(4..=10);
            let timer = DownTimer::start(
                SERVICES
                    .iter()
                    .map(|s| (s.to_string(), w.service(s)))
                    .collect(),
            );
            let started = Instant::now();
            configure();
            let took = started.elapsed();
            let down = timer.stop();
            eprintln!(
                "SHRINK 10->3 with {} queued messages ({BULK} to move): configure took {took:.2?}",
                w.expected.len()
            );
            for (s, d) in &down {
                eprintln!(
                    "SHRINK DOWNTIME {s}: down {:.2?} in {} outage(s), longest {:.2?}",
                    d.total, d.outages, d.longest
                );
            }
            for s in SERVICES {
                assert_eq!(down[s].outages, 1, "{s} went down more than once");
            }
        } else {
            configure();
        }
        w.assert_queues(count);
        w.assert_seeded(count);
        w.assert_messages(count);
        w.wait_restarted(
            &before,
            &format!("services restarted with {count} queues"),
            |_, env| World::env_has_count(env, count),
        );
        assert_eq!(applied(), format!("{} 1 {count}", w.base().display()));
    }

    // Idempotence: nothing written, nobody restarted.
    let files = w.snapshot();
    let pids = w.pids();
    configure();
    assert_eq!(w.pids(), pids, "a second run restarted services");
    assert_unchanged(&files, &w.snapshot(), "a second run");
}

#[test]
fn provision_rejects_a_bad_configuration_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("qmail-multi.conf");
    let state = dir.path().join("state");
    let services = dir.path().join("service");
    fs::create_dir(&services).unwrap();
    let cases = [
        ("QUEUE_COUNT=0\n", "QUEUE_COUNT"),
        ("QUEUE_COUNT=abc\n", "QUEUE_COUNT"),
        ("QUEUE_COUNT=007\n", "QUEUE_COUNT"),
        ("QUEUE_START=-1\n", "QUEUE_START"),
        ("QUEUE_BASE=relative/queue\n", "QUEUE_BASE"),
        ("QUEUE_BASE=/var/$(reboot)\n", "QUEUE_BASE"),
        ("MIN_FREE=1e9\n", "MIN_FREE"),
        ("SPLIT=152\n", "SPLIT"),
        ("STOP_TIMEOUT=0\n", "STOP_TIMEOUT"),
        ("SERVICES=\"qmail-send.25 ../etc\"\n", "SERVICES"),
        ("QUEUE_COUNT=5\nQUEUE_COUNT=6\n", "QUEUE_COUNT is set twice"),
        ("QUEUECOUNT=5\n", "unknown key 'QUEUECOUNT'"),
        ("just words\n", "expected KEY=value"),
    ];
    for (text, key) in cases {
        let body = format!("SERVICEDIR={}\n{text}", services.display());
        fs::write(&conf, &body).unwrap();
        for cmd in ["check-config", "configure"] {
            let o = Command::new("sh")
                .arg(repo().join("service/provision"))
                .arg(cmd)
                .env("QMAIL_MULTI_CONF", &conf)
                .env("QMAIL_MULTI_STATEDIR", &state)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(
                o.status.code(),
                Some(1),
                "{cmd} with {text:?}: {}",
                show(&o)
            );
            assert!(
                err.contains(key),
                "{cmd} with {text:?} does not name {key}: {err}"
            );
            assert!(err.contains("nothing changed"), "{err}");
            assert!(!state.exists(), "{cmd} with {text:?} wrote state");
            assert_eq!(fs::read_dir(&services).unwrap().count(), 0);
        }
    }
    // Quotes and spaces around '=' are accepted; nothing is expanded.
    fs::write(&conf, "QUEUE_COUNT = \"7\"\nQUEUE_BASE='/srv/q'\n").unwrap();
    let o = Command::new("sh")
        .arg(repo().join("service/provision"))
        .arg("check-config")
        .env("QMAIL_MULTI_CONF", &conf)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains("QUEUE_BASE=/srv/q QUEUE_START=1 QUEUE_COUNT=7"));
}

/// `provision` from the tree with a scratch configuration and state.
fn provision_in(dir: &Path, cmd: &str) -> Output {
    Command::new("sh")
        .arg(repo().join("service/provision"))
        .arg(cmd)
        .env("QMAIL_MULTI_CONF", dir.join("qmail-multi.conf"))
        .env("QMAIL_MULTI_STATEDIR", dir.join("state"))
        .env(
            "QMAIL_MULTI_SERVICEDIRS",
            format!(
                "{} {}",
                dir.join("service").display(),
                dir.join("etc/service").display()
            ),
        )
        .output()
        .unwrap()
}

/// What `o` said on stdout and stderr; fails the test unless it succeeded.
fn said(o: &Output) -> String {
    assert!(o.status.success(), "{}", show(o));
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn provision_finds_servicedir_in_either_layout_unless_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = d.join("qmail-multi.conf");
    let indimail = d.join("service");
    let debian = d.join("etc/service");
    let check = |want: &Path, how: &str| {
        let out = said(&provision_in(d, "check-config"));
        assert!(
            out.contains(&format!("SERVICEDIR={} ({how})", want.display())),
            "{out}"
        );
    };
    fs::write(&conf, "QUEUE_COUNT=3\n").unwrap();
    let candidates = format!("{} {}", indimail.display(), debian.display());
    check(&indimail, &format!("none of {candidates} exists"));
    fs::create_dir_all(&debian).unwrap();
    check(&debian, &format!("the first of {candidates} that exists"));
    fs::create_dir_all(&indimail).unwrap();
    check(&indimail, &format!("the first of {candidates} that exists"));
    fs::write(&conf, format!("SERVICEDIR={}\n", debian.display())).unwrap();
    check(&debian, &format!("set in {}", conf.display()));
}

/// `remove` with no applied state at all over envdirs naming the
/// multiplexer: remove()'s fallback for envdirs it has no record of (front
/// ends to single-queue injection, qmail-send keeps its count), then what
/// purge names. The upgrade from the version whose state listed envdirs
/// without records (configure records them first, removal then goes through
/// the records) is prov_config's
/// `an_upgrade_from_a_version_without_records_still_removes_to_single_queue`.
#[test]
fn provision_remove_and_purge_say_what_they_changed_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = d.join("queue");
    fs::write(
        d.join("qmail-multi.conf"),
        format!(
            "QUEUE_BASE={}\nCONTROLDIR={}\nQUEUE_COUNT=4\n",
            base.display(),
            d.join("control").display()
        ),
    )
    .unwrap();
    let seed = |envdir: &Path| {
        fs::create_dir_all(envdir).unwrap();
        for (k, v) in [
            ("QUEUE_BASE", format!("{}\n", base.display())),
            ("QUEUE_START", "1\n".into()),
            ("QUEUE_COUNT", "4\n".into()),
            ("QMAILQUEUE", format!("{MULTI}\n")),
            ("MIN_FREE", "52428800\n".into()),
            ("QUEUEDIR", String::new()),
        ] {
            fs::write(envdir.join(k), v).unwrap();
        }
    };
    let smtpd = d.join("service/qmail-smtpd.25/variables");
    let send = d.join("service/qmail-send.25/variables");
    let defaultqueue = d.join("control/defaultqueue");
    for e in [&smtpd, &send, &defaultqueue] {
        seed(e);
    }
    let single = format!("front ends now inject into {}/queue1 only", base.display());
    let out = said(&provision_in(d, "remove"));
    assert!(out.contains(&single), "{out}");
    assert!(out.contains("qmail-send keeps its count"), "{out}");
    assert_eq!(
        read(smtpd.join("QUEUEDIR")),
        format!("{}/queue1\n", base.display())
    );
    assert_eq!(read(send.join("QMAILQUEUE")), "");
    // Nothing left to revert: nothing said about the front ends.
    let out = said(&provision_in(d, "remove"));
    assert!(!out.contains("front ends now inject"), "{out}");
    assert!(out.contains("nothing to revert"), "{out}");
    // Only qmail-send still used the multiplexer.
    fs::write(send.join("QMAILQUEUE"), format!("{MULTI}\n")).unwrap();
    let out = said(&provision_in(d, "remove"));
    assert!(!out.contains("front ends now inject"), "{out}");
    assert!(out.contains("qmail-send keeps its count"), "{out}");

    // Purge names each queue that holds mail, with its count.
    fs::create_dir_all(d.join("state")).unwrap();
    fs::write(d.join("state/applied"), format!("{} 1 4\n", base.display())).unwrap();
    for (n, files) in [(1, 3), (2, 0), (9, 1)] {
        let sub = base.join(format!("queue{n}/mess/0"));
        fs::create_dir_all(&sub).unwrap();
        for f in 0..files {
            fs::write(sub.join(format!("{}", 100 + f)), "x").unwrap();
        }
    }
    let out = said(&provision_in(d, "purge"));
    for (n, count) in [(1, 3), (9, 1)] {
        let q = base.join(format!("queue{n}"));
        let line = format!(
            "kept {}: it holds {count} messages; check it with: find {}/mess -type f | wc -l",
            q.display(),
            q.display()
        );
        assert!(out.contains(&line), "{line:?} missing:\n{out}");
    }
    assert!(!out.contains("queue2:"), "{out}");
    assert!(!d.join("state/applied").exists(), "purge left the state");
    // The directory is the package's: its manager removes it (RPM warned
    // "remove failed" when a scriptlet had deleted it first).
    assert!(
        d.join("state").is_dir(),
        "purge removed the package's directory"
    );
}

#[test]
fn man_pages_render() {
    if let Some(why) = missing(&["man"]) {
        return skip("man_pages_render", &why);
    }
    for (page, words) in [
        (
            "qmail-multi.8",
            ["QUEUE_COUNT", "dpkg-reconfigure qmail-multi", "EXIT STATUS"],
        ),
        ("queue-fix.8", ["--retire", "EXIT STATUS", "orphan"]),
        ("queue-stat.8", ["--prometheus", "--check", "EXIT STATUS"]),
    ] {
        let o = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(repo().join("doc").join(page))
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        assert!(o.status.success(), "{page}: {}", show(&o));
        assert!(o.stderr.is_empty(), "{page} warnings: {}", show(&o));
        // Overstrike (bold, underline) and hyphens as typeset.
        let mut text = String::new();
        for c in String::from_utf8_lossy(&o.stdout).chars() {
            match c {
                '\u{8}' => {
                    text.pop();
                }
                '\u{2010}' | '\u{2212}' => text.push('-'),
                c => text.push(c),
            }
        }
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for w in words {
            assert!(text.contains(w), "{page} lacks {w}:\n{text}");
        }
    }
}

#[test]
fn obs_sources_build_a_source_package_offline() {
    if let Some(why) = missing(&["dpkg-source", "rpmspec", "python3", "xz", "cargo"]) {
        return skip("obs_sources_build_a_source_package_offline", &why);
    }
    let _lock = system_lock();
    let out = sh_script("obs-check.sh", &[out_dir().to_str().unwrap()]);
    assert!(out.contains("dpkg-source built and unpacked"), "{out}");
}

/// The packages built from this tree, once per run (callers hold
/// `system_lock()`): .debs of revisions 1 and 2, RPMs of releases 1
/// (default count 5) and 2 (default count 8).
struct Built {
    deb1: PathBuf,
    deb2: PathBuf,
    rpm1: PathBuf,
    rpm2: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: std::sync::OnceLock<Built> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out = out_dir();
        let out_s = out.to_str().unwrap();
        let last = |s: String| PathBuf::from(s.lines().last().unwrap());
        Built {
            deb1: last(sh_script("build-deb.sh", &[out_s])),
            deb2: last(sh_script("build-deb.sh", &[out_s, "2"])),
            rpm1: last(sh_script("build-rpm.sh", &[out_s, "1", "5"])),
            rpm2: last(sh_script("build-rpm.sh", &[out_s, "2", "8"])),
        }
    })
}

/// The build outputs directory is shared by the tests of this binary.
fn system_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn packages_install_provision_and_remove_on_real_services() {
    let name = "packages_install_provision_and_remove_on_real_services";
    if !is_root() {
        return skip(
            name,
            "needs root (installs packages, creates users, runs svscan)",
        );
    }
    let tools = [
        "dpkg-buildpackage",
        "lintian",
        "dpkg",
        "dpkg-reconfigure",
        "rpmbuild",
        "rpmlint",
        "rpm",
        "svscan",
        "svc",
        "svok",
        "svstat",
        "envdir",
        "xz",
        "cargo",
        "useradd",
    ];
    if let Some(why) = missing(&tools) {
        return skip(name, &why);
    }
    if let Some(why) = already_installed() {
        return skip(name, &why);
    }
    if !depositor().exists() {
        return skip(
            name,
            "target/<profile>/examples/test-qmail-queue is not built (cargo build --examples)",
        );
    }
    let _lock = system_lock();
    let started = Instant::now();

    // ---- Debian
    let deb = built().deb1.clone();
    eprintln!("built the packages in {:?}", started.elapsed());
    {
        let _cleanup = SystemCleanup { rpmdb: None };
        // Debian's daemontools-run layout: only etc/service exists.
        let mut w = World::new(Layout::Debian);
        w.start_svscan();
        w.write_conf(None);
        let before = w.pids();
        let mut c = clean("dpkg");
        c.args(["-i", "--force-confold"]).arg(&deb);
        let said = run(&mut c, "dpkg -i");
        assert!(
            said.contains(&format!(
                "services in {} (the first of {} {} that exists)",
                w.svdir.display(),
                w.path("service").display(),
                w.svdir.display()
            )),
            "the install does not say which SERVICEDIR it used: {said}"
        );
        assert!(Path::new(MULTI).exists() && Path::new(QUEUE_FIX).exists());
        w.assert_stat_sees(5);
        assert_eq!(
            diversions(),
            0,
            "the package diverts nothing (it owns no path of IndiMail's)"
        );
        w.assert_queues(5);
        w.assert_seeded(5);
        w.wait_restarted(&before, "services restarted after install", |_, env| {
            World::env_has_count(env, 5)
        });

        grow_and_shrink(&mut w, &configure_deb);

        // Upgrade to a newer build: the admin's count stays, nothing is
        // written, nobody is restarted.
        let deb2 = built().deb2.clone();
        let files = w.snapshot();
        let pids = w.pids();
        run(
            clean("dpkg").args(["-i", "--force-confold"]).arg(&deb2),
            "dpkg -i (upgrade to -2)",
        );
        assert_eq!(w.pids(), pids, "the upgrade restarted services");
        assert_unchanged(&files, &w.snapshot(), "the upgrade");

        // An explicit SERVICEDIR wins over the first one that exists.
        fs::create_dir(w.path("service")).unwrap();
        w.write_conf_with(Some(3), &format!("SERVICEDIR={}\n", w.svdir.display()));
        let files = w.snapshot();
        let said = configure_deb();
        assert!(
            said.contains(&format!(
                "services in {} (set in {CONF})",
                w.svdir.display()
            )),
            "{said}"
        );
        assert_eq!(
            w.pids(),
            pids,
            "an unchanged configuration restarted services"
        );
        assert_unchanged(&files, &w.snapshot(), "an explicit SERVICEDIR");
        fs::remove_dir(w.path("service")).unwrap();
        w.write_conf(Some(3));

        // A service that will not go down postpones the shrink; nothing
        // changes, the install step still succeeds.
        let stubborn = w.service("qmail-smtpd.25");
        fs::write(stubborn.join("stubborn"), "").unwrap();
        let old = w.pid("qmail-smtpd.25");
        run(Command::new("svc").arg("-k").arg(&stubborn), "svc -k");
        wait_for("the stubborn service", 20, || {
            let p = w.pid("qmail-smtpd.25");
            p.is_some() && p != old
        });
        w.write_conf(Some(2));
        let said = configure_deb();
        assert!(
            said.contains("shrink postponed") && said.contains("qmail-smtpd.25"),
            "{said}"
        );
        w.assert_seeded(3);
        w.assert_queues(3);
        w.assert_messages(3);
        assert_eq!(applied(), format!("{} 1 3", w.base().display()));
        wait_for("every service up again", 20, || {
            SERVICES.iter().all(|s| w.pid(s).is_some())
        });

        // Once it stops normally, the same step shrinks. A qmail-queue
        // started with the old count is still writing into queue3: the
        // front ends are restarted with 2 queues at once, and the mail
        // moves only after that injection has ended (it lands in queue3,
        // then moves into the range).
        fs::remove_file(stubborn.join("stubborn")).unwrap();
        run(Command::new("svc").arg("-k").arg(&stubborn), "svc -k");
        wait_for("the service to restart", 20, || {
            w.pid("qmail-smtpd.25").is_some()
        });
        w.write_conf(Some(2));
        let before = w.pids();
        let q3 = w.base().join("queue3");
        let said = shrink_with_injection_in_flight(
            &mut w,
            2,
            &q3,
            2_000_000,
            Duration::from_secs(1),
            configure_deb,
        );
        assert!(!said.contains("postponed"), "{said}");
        w.assert_seeded(2);
        w.assert_queues(2);
        w.assert_messages(2);
        w.wait_restarted(&before, "services restarted with 2 queues", |_, env| {
            World::env_has_count(env, 2)
        });

        // Drift (a hand-edited service) and orphans (mail in queue9) are
        // reported by name, then put right.
        let edited_envdir = w.service("qmail-smtpd.587").join("variables");
        let edited = edited_envdir.join("QUEUE_COUNT");
        w.edit_by_hand(&edited_envdir, "QUEUE_COUNT", "7\n");
        let q9 = w.base().join("queue9");
        w.inject(MESSAGES..MESSAGES + 5, Some(&q9));
        // A service the admin stopped stays stopped through the shrink.
        let stopped = w.service("qmail-qmtpd.209");
        run(Command::new("svc").arg("-d").arg(&stopped), "svc -d");
        wait_for("qmail-qmtpd.209 down", 20, || {
            w.pid("qmail-qmtpd.209").is_none()
        });
        let said = configure_deb();
        assert!(
            said.contains(&edited.display().to_string()),
            "drift not named: {said}"
        );
        assert!(said.contains("queue9"), "orphan not named: {said}");
        w.assert_seeded(2);
        w.assert_queues(2);
        w.assert_messages(2);
        assert_eq!(
            w.pid("qmail-qmtpd.209"),
            None,
            "a stopped service was started"
        );
        run(Command::new("svc").arg("-u").arg(&stopped), "svc -u");
        wait_for("qmail-qmtpd.209 up", 20, || {
            w.pid("qmail-qmtpd.209").is_some()
        });
        wait_for("qmail-qmtpd.209 to record 2 queues", 20, || {
            World::env_has_count(&w.recorded("qmail-qmtpd.209"), 2)
        });

        // Remove: every envdir as it was before the install (the admin's
        // hand-made QUEUE_COUNT included), qmail-send keeps its count.
        let before = w.pids();
        let said = run(clean("dpkg").args(["-r", "qmail-multi"]), "dpkg -r");
        w.assert_restored_said(&said, 2);
        assert!(!Path::new(MULTI).exists(), "{MULTI} left behind");
        assert_eq!(diversions(), 0, "diversions left behind");
        w.assert_restored(2);
        w.wait_restored(&before, 2);
        assert!(Path::new(CONF).exists() && Path::new(STATE).exists());
        w.assert_messages(2);

        // Purge: configuration and state gone, queues and mail kept, and
        // each queue holding mail named with its count.
        let said = run(clean("dpkg").args(["-P", "qmail-multi"]), "dpkg -P");
        assert!(!Path::new("/etc/qmail-multi").exists());
        assert!(!Path::new("/var/lib/qmail-multi").exists());
        w.assert_messages(2);
        w.assert_kept_said(&said);

        // Reinstalling after the purge puts the multiplexer back without
        // calling what the removal left drift: qmail-send's kept range
        // beside front ends that have none again. The one disagreement
        // named is the administrator's QUEUE_COUNT, which removal put back.
        w.write_conf(Some(2));
        let before = w.pids();
        let said = run(
            clean("dpkg").args(["-i", "--force-confold"]).arg(&deb2),
            "dpkg -i (after purge)",
        );
        assert_eq!(said.matches("drift").count(), 1, "{said}");
        assert!(
            said.contains("drift: the seeded envdirs disagree on QUEUE_COUNT")
                && said.contains(&format!("{} = '7'", edited.display())),
            "{said}"
        );
        w.assert_seeded(2);
        w.wait_restarted(
            &before,
            "services restarted after the reinstall",
            |_, env| World::env_has_count(env, 2),
        );
    }
    eprintln!("Debian scenario done at {:?}", started.elapsed());

    // ---- RPM: %post $1=1, upgrade ($1=2, new default count), erase ($1=0)
    let rpm1 = built().rpm1.clone();
    let rpm2 = built().rpm2.clone();
    {
        // IndiMail's layout: only service exists.
        let mut w = World::new(Layout::IndiMail);
        let db = w.path("rpmdb");
        let _cleanup = SystemCleanup {
            rpmdb: Some(db.clone()),
        };
        let rpm = |args: &[&str], pkg: Option<&Path>, what: &str| {
            let mut c = clean("rpm");
            c.arg("--dbpath").arg(&db).args(args);
            if let Some(p) = pkg {
                c.arg(p);
            }
            run(&mut c, what)
        };
        rpm(&["--initdb"], None, "rpm --initdb");
        // No svscan running yet: the install seeds, says it restarted
        // nothing, and succeeds; the services start with the seeded values.
        w.write_conf(None);
        let said = rpm(&["-i", "--nodeps"], Some(&rpm1), "rpm -i (release 1)");
        assert!(
            said.contains("not supervised (no svscan running): not restarted"),
            "{said}"
        );
        assert!(
            said.contains(&format!(
                "services in {} (the first of {} {} that exists)",
                w.svdir.display(),
                w.svdir.display(),
                w.path("etc/service").display()
            )),
            "the install does not say which SERVICEDIR it used: {said}"
        );
        w.assert_queues(5);
        w.assert_seeded(5);
        w.start_svscan();
        for s in SERVICES {
            assert!(
                World::env_has_count(&w.recorded(s), 5),
                "{s}: {:?}",
                w.recorded(s)
            );
        }
        w.inject(0..MESSAGES, None);
        w.assert_messages(5);

        // Upgrade: the new %post applies the new default (8); the old
        // %preun runs with 1 and must not revert anything.
        let before = w.pids();
        rpm(
            &["-U", "--nodeps"],
            Some(&rpm2),
            "rpm -U (release 2, default 8)",
        );
        w.assert_queues(8);
        w.assert_seeded(8);
        w.assert_messages(8);
        w.wait_restarted(&before, "services restarted with 8 queues", |_, env| {
            World::env_has_count(env, 8)
        });

        // The documented reconfigure step on RPM systems: shrink to 3. A
        // qmail-queue started with the old count writes into queue7 for
        // longer than STOP_TIMEOUT: the front ends move to 3 queues, the
        // move of the mail is postponed, qmail-send keeps reading all 8
        // queues; the next run finishes.
        fn configure_rpm() -> String {
            run(clean(PROVISION).arg("configure"), "provision configure")
        }
        w.write_conf(Some(3));
        let q7 = w.base().join("queue7");
        let said = shrink_with_injection_in_flight(
            &mut w,
            3,
            &q7,
            2_000_001,
            Duration::from_secs(7),
            configure_rpm,
        );
        assert!(
            said.contains("shrink postponed: still injecting into queues"),
            "{said}"
        );
        assert_eq!(applied(), format!("{} 1 8", w.base().display()));
        assert_eq!(
            read(w.service("qmail-send.25").join("variables/QUEUE_COUNT")),
            "8\n"
        );
        wait_for("qmail-send up again with 8 queues", 20, || {
            w.pid("qmail-send.25").is_some()
                && World::env_has_count(&w.recorded("qmail-send.25"), 8)
        });
        w.assert_messages(8);
        let before = w.pids();
        let said = configure_rpm();
        assert!(!said.contains("drift"), "{said}");
        w.assert_queues(3);
        w.assert_seeded(3);
        w.assert_messages(3);
        // Only qmail-send restarts: the front ends already have 3 queues.
        wait_for("qmail-send restarted with 3 queues", 30, || {
            let now = w.pid("qmail-send.25");
            now.is_some()
                && now != before["qmail-send.25"]
                && World::env_has_count(&w.recorded("qmail-send.25"), 3)
        });
        for s in SERVICES.iter().filter(|s| **s != "qmail-send.25") {
            assert_eq!(w.pid(s), before[s], "{s} restarted a second time");
            assert!(World::env_has_count(&w.recorded(s), 3), "{s}");
        }
        let files = w.snapshot();
        let pids = w.pids();
        configure_rpm();
        assert_eq!(w.pids(), pids, "a second run restarted services");
        assert_unchanged(&files, &w.snapshot(), "a second run");

        // Erase: %preun with 0 reverts and names the queues kept; the
        // %ghost state goes with it.
        let before = w.pids();
        let said = rpm(&["-e", "--nodeps", "qmail-multi"], None, "rpm -e");
        w.assert_kept_said(&said);
        assert!(!said.contains("remove failed"), "rpm -e warned:\n{said}");
        assert!(
            !Path::new("/var/lib/qmail-multi").exists(),
            "the package's state directory left behind"
        );
        let mut c = clean("rpm");
        c.arg("--dbpath").arg(&db).args(["-q", "qmail-multi"]);
        assert!(!c.output().unwrap().status.success(), "still installed");
        assert!(!Path::new(MULTI).exists(), "{MULTI} left behind");
        assert!(!Path::new(STATE).exists(), "{STATE} (%ghost) left behind");
        w.assert_restored_said(&said, 3);
        w.assert_restored(3);
        w.wait_restored(&before, 3);
        w.assert_messages(3);
    }
    eprintln!("packaging scenarios took {:?}", started.elapsed());
}

// ---- Beside IndiMail: stand-in indimail-mta packages in scratch roots

/// The stand-in indimail-mta versions (tests/packaging/build-standins.sh).
const INDIMAIL_OLD: &str = "3.1.0";
const INDIMAIL_NEW: &str = "3.1.1";
/// The count IndiMail's svctool seeded and its refresh writes back (the
/// services' `.options` say `--qcount=3`); ours is 5 (8 after the RPM
/// upgrade to release 2, whose default it is).
const INDIMAIL_COUNT: &str = "3";
/// What IndiMail's svctool writes into QMAILQUEUE (svctool.sh's SMTP code):
/// its qmail-multi without DKIM keys or a spam filter...
const INDIMAIL_MULTI: &str = "/usr/sbin/qmail-multi";
/// ...and qmail-dkim with them (`--dksign=dkim`, IndiMail's default),
/// which the stand-in world gives the submission port.
const INDIMAIL_DKIM: &str = "/usr/sbin/qmail-dkim";
const DKIM_SERVICE: &str = "qmail-smtpd.587";

/// The QMAILQUEUE IndiMail's svctool writes for `envdir`.
fn indimail_queue(envdir: &str) -> &'static str {
    if envdir.contains(DKIM_SERVICE) {
        INDIMAIL_DKIM
    } else {
        INDIMAIL_MULTI
    }
}
/// Paths IndiMail's packages own that ours owned (or diverted) until
/// 0.1.0-1, and those our trigger and the services rely on.
const INDIMAIL_PATHS: [&str; 7] = [
    "/usr/sbin/qmail-multi",
    "/usr/bin/queue-fix",
    "/usr/share/man/man8/qmail-multi.8.gz",
    "/usr/share/man/man8/queue-fix.8.gz",
    "/usr/sbin/qmail-queue",
    "/usr/sbin/qmail-dkim",
    "/usr/sbin/svctool",
];
/// Where the scratch rpm database lives inside the root.
const SCRATCH_RPMDB: &str = "/var/lib/rpm-scratch";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Manager {
    Rpm,
    Dpkg,
}

/// A scratch root: an overlay whose lower layer is the host's `/` (its
/// shell, coreutils, shadow, daemontools, dpkg database) and whose writes
/// land in a scratch directory, mounted in a private mount namespace held
/// by one `sleep` (killed on drop: the mounts go with the namespace). The
/// packages' scriptlets run chrooted into it, as rpm --root and dpkg --root
/// run them. The test reads and writes the root through the holder's
/// `/proc/PID/root`.
struct ScratchRoot {
    holder: Child,
    dir: tempfile::TempDir,
    manager: Manager,
}

impl ScratchRoot {
    fn new(manager: Manager, norefresh: bool) -> ScratchRoot {
        fs::create_dir_all(out_dir()).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("scratch-root")
            .tempdir_in(out_dir())
            .unwrap();
        for d in ["upper", "work", "root"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "86400"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare starts");
        let r = ScratchRoot {
            holder,
            dir,
            manager,
        };
        let ns = format!("/proc/{}/ns/mnt", r.holder.id());
        wait_for("the mount namespace of the root", 10, || {
            fs::read_link(&ns).ok() != fs::read_link("/proc/self/ns/mnt").ok()
        });
        let root = r.root();
        let opts = format!(
            "lowerdir=/,upperdir={},workdir={}",
            r.dir.path().join("upper").display(),
            r.dir.path().join("work").display()
        );
        run(
            r.ns("mount")
                .args(["-t", "overlay", "overlay", "-o", &opts])
                .arg(&root),
            "mount the scratch root",
        );
        run(
            r.ns("mount")
                .arg("--rbind")
                .arg("/dev")
                .arg(root.join("dev")),
            "bind /dev",
        );
        run(
            r.ns("mount")
                .args(["-t", "proc", "proc"])
                .arg(root.join("proc")),
            "mount /proc",
        );
        // Nothing of ours or IndiMail's the host may hold.
        for p in [
            "/etc/qmail-multi",
            "/var/lib/qmail-multi",
            "/usr/libexec/qmail-multi",
            "/usr/libexec/indimail",
            "/service",
            "/etc/service",
            "/etc/indimail",
            "/var/indimail",
            "/var/log/svctool-standin.log",
            SCRATCH_RPMDB,
        ] {
            let p = r.path(p);
            let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
        }
        for p in INDIMAIL_PATHS.iter().chain(&["/usr/bin/queue-stat"]) {
            let _ = fs::remove_file(r.path(p));
        }
        if manager == Manager::Dpkg {
            // The root's own copy of the host's dpkg database (an opaque
            // directory in the upper layer): other work installing packages
            // on the host meanwhile must not show through the lower layer.
            // A dpkg run on the host can replace files while they are
            // copied: try again a few times.
            run(
                r.ns("sh")
                    .args([
                        "-c",
                        "for try in 1 2 3 4 5; do rm -rf \"$0/var/lib/dpkg\" && \
                         cp -a /var/lib/dpkg \"$0/var/lib/dpkg\" && exit 0; sleep 2; done; exit 1",
                    ])
                    .arg(&root),
                "copy the host's dpkg database into the root",
            );
            r.forget_in_dpkg_database(&["qmail-multi", "indimail-mta"]);
        }
        r.seed_indimail_services(norefresh);
        if manager == Manager::Rpm {
            r.rpm(&["--initdb"], "rpm --initdb");
        }
        r
    }

    /// Drops `packages` from the root's copy of the host's dpkg database
    /// (status, info files, diversions, file trigger interests): the
    /// machine is shared, and another test may have one installed on the
    /// host; every scenario starts without either.
    fn forget_in_dpkg_database(&self, packages: &[&str]) {
        let admin = "/var/lib/dpkg";
        let status = self.read(&format!("{admin}/status"));
        let kept: Vec<&str> = status
            .split("\n\n")
            .filter(|para| {
                !packages
                    .iter()
                    .any(|p| para.lines().any(|l| l == format!("Package: {p}")))
            })
            .collect();
        fs::write(self.path(&format!("{admin}/status")), kept.join("\n\n")).unwrap();
        for e in fs::read_dir(self.path(&format!("{admin}/info"))).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if packages.iter().any(|p| {
                name.strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with(':'))
            }) {
                fs::remove_file(e.path()).unwrap();
            }
        }
        // diversions: records of three lines (path, diverted to, package).
        let divs = self.read(&format!("{admin}/diversions"));
        let lines: Vec<&str> = divs.lines().collect();
        let kept: String = lines
            .chunks(3)
            .filter(|rec| rec.len() == 3 && !packages.contains(&rec[2]))
            .map(|rec| format!("{}\n", rec.join("\n")))
            .collect();
        fs::write(self.path(&format!("{admin}/diversions")), kept).unwrap();
        let file = format!("{admin}/triggers/File");
        let interests: String = self
            .read(&file)
            .lines()
            .filter(|l| {
                // "PATH PACKAGE[/noawait]"
                let who = l.split_whitespace().nth(1).unwrap_or("");
                !packages.contains(&who.split('/').next().unwrap_or(""))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        if self.path(&file).exists() {
            fs::write(self.path(&file), interests).unwrap();
        }
    }

    /// The root as the namespace sees it.
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `abs` inside the root, from this process.
    fn path(&self, abs: &str) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root{}{abs}",
            self.holder.id(),
            self.root().display()
        ))
    }

    fn read(&self, abs: &str) -> String {
        fs::read_to_string(self.path(abs)).unwrap_or_default()
    }

    /// `program` in the root's mount namespace (not chrooted).
    fn ns(&self, program: &str) -> Command {
        let mut c = clean("nsenter");
        c.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "--", program]);
        c
    }

    /// The services and defaultqueue IndiMail's svctool made: the queue
    /// variables of its SMTP/QMQP/QMTP code (`QMAILQUEUE=qmail-multi`, the
    /// count of `--qcount`), the `.options` its refresh re-runs and, for a
    /// fresh 3.x install, `.norefreshsvc` (svctool.sh, refreshsvc()).
    fn seed_indimail_services(&self, norefresh: bool) {
        let mut envdirs: Vec<(String, String)> = SERVICES
            .iter()
            .map(|s| {
                let opts = match *s {
                    "qmail-send.25" => String::new(),
                    DKIM_SERVICE => "--smtp=587 --dkverify=dkim --dksign=dkim".into(),
                    s if s.starts_with("qmail-smtpd.") => {
                        format!("--smtp={}", &s["qmail-smtpd.".len()..])
                    }
                    "qmail-qmqpd.628" => "--qmqp=628".into(),
                    _ => "--qmtp=209".into(),
                };
                (format!("/service/{s}/variables"), opts)
            })
            .collect();
        envdirs.push((
            "/etc/indimail/control/defaultqueue".into(),
            "--queueParam=defaultqueue".into(),
        ));
        for (d, opts) in envdirs {
            let p = self.path(&d);
            fs::create_dir_all(&p).unwrap();
            for (k, v) in [
                ("QUEUE_BASE", "/var/indimail/queue"),
                ("QUEUE_START", "1"),
                ("QUEUE_COUNT", INDIMAIL_COUNT),
                ("QMAILQUEUE", indimail_queue(&d)),
            ] {
                fs::write(p.join(k), format!("{v}\n")).unwrap();
            }
            if !opts.is_empty() {
                fs::write(
                    p.join(".options"),
                    format!(
                        "/usr/sbin/svctool {opts} --servicedir=/service --qbase=/var/indimail/queue --qcount={INDIMAIL_COUNT} --qstart=1\n"
                    ),
                )
                .unwrap();
                if norefresh {
                    fs::write(p.join(".norefreshsvc"), "").unwrap();
                }
            }
        }
    }

    fn rpm(&self, args: &[&str], what: &str) -> String {
        let mut c = self.ns("rpm");
        c.arg("--root")
            .arg(self.root())
            .arg("--dbpath")
            .arg(SCRATCH_RPMDB)
            .args(args);
        run(&mut c, what)
    }

    fn dpkg(&self, args: &[&str], what: &str) -> String {
        let mut c = self.ns("dpkg");
        c.arg("--root").arg(self.root()).args(args);
        run(&mut c, what)
    }

    /// Installs or upgrades a package file: `rpm -U` / `dpkg -i`, without
    /// --nodeps or --force.
    fn install(&self, pkg: &Path, what: &str) -> String {
        let p = pkg.to_str().unwrap();
        match self.manager {
            Manager::Rpm => self.rpm(&["-U", p], what),
            Manager::Dpkg => self.dpkg(&["-i", p], what),
        }
    }

    fn remove(&self, name: &str, what: &str) -> String {
        match self.manager {
            Manager::Rpm => self.rpm(&["-e", name], what),
            Manager::Dpkg => self.dpkg(&["-r", name], what),
        }
    }

    fn installed(&self, name: &str) -> bool {
        let mut c = match self.manager {
            Manager::Rpm => {
                let mut c = self.ns("rpm");
                c.arg("--root")
                    .arg(self.root())
                    .arg("--dbpath")
                    .arg(SCRATCH_RPMDB)
                    .args(["-q", name]);
                c
            }
            Manager::Dpkg => {
                let mut c = self.ns("dpkg-query");
                c.arg(format!("--root={}", self.root().display())).args([
                    "-W",
                    "-f=${db:Status-Status}",
                    name,
                ]);
                c
            }
        };
        let o = c.output().unwrap();
        o.status.success()
            && (self.manager == Manager::Rpm
                || String::from_utf8_lossy(&o.stdout).trim() == "installed")
    }

    /// `rpm -V` / `dpkg --verify` of `name`: exits 0 and reports nothing.
    fn verify(&self, name: &str, when: &str) {
        let mut c = match self.manager {
            Manager::Rpm => {
                let mut c = self.ns("rpm");
                c.arg("--root")
                    .arg(self.root())
                    .arg("--dbpath")
                    .arg(SCRATCH_RPMDB)
                    .args(["-V", name]);
                c
            }
            Manager::Dpkg => {
                let mut c = self.ns("dpkg");
                c.arg("--root").arg(self.root()).args(["--verify", name]);
                c
            }
        };
        let o = c.output().unwrap();
        assert!(
            o.status.success() && o.stdout.is_empty(),
            "{:?} {when}: {name} does not verify clean:\n{}",
            self.manager,
            show(&o)
        );
    }

    /// The package that owns `abs`, as the manager says.
    fn owner(&self, abs: &str) -> String {
        let mut c = match self.manager {
            Manager::Rpm => {
                let mut c = self.ns("rpm");
                c.arg("--root")
                    .arg(self.root())
                    .arg("--dbpath")
                    .arg(SCRATCH_RPMDB)
                    .args(["-qf", "--qf", "%{NAME}\n", abs]);
                c
            }
            Manager::Dpkg => {
                let mut c = self.ns("dpkg-query");
                c.arg(format!("--root={}", self.root().display()))
                    .args(["-S", abs]);
                c
            }
        };
        let o = c.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        match self.manager {
            Manager::Rpm if o.status.success() => out.trim().to_string(),
            Manager::Dpkg if o.status.success() => {
                out.split(':').next().unwrap_or("").trim().to_string()
            }
            _ => String::new(),
        }
    }

    /// The envdirs the provisioning seeds here.
    fn envdirs() -> Vec<String> {
        let mut v: Vec<String> = SERVICES
            .iter()
            .map(|s| format!("/service/{s}/variables"))
            .collect();
        v.push("/etc/indimail/control/defaultqueue".into());
        v
    }

    fn var(&self, envdir: &str, key: &str) -> String {
        self.read(&format!("{envdir}/{key}"))
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// After every step: each installed package verifies clean, IndiMail's
    /// paths are IndiMail's (and gone with it), ours are ours, nothing of
    /// ours is diverted, and every envdir's QMAILQUEUE names a program that
    /// exists. With ours installed, every envdir is seeded with ours and
    /// `count`.
    fn check(&self, when: &str, count: Option<&str>) {
        eprintln!("== {:?}: check {when}", self.manager);
        let indimail = self.installed("indimail-mta");
        let ours = self.installed("qmail-multi");
        assert_eq!(ours, count.is_some(), "{when}: qmail-multi installed");
        if self.manager == Manager::Rpm {
            self.verify("host-base", when);
        }
        if indimail {
            self.verify("indimail-mta", when);
        }
        if ours {
            self.verify("qmail-multi", when);
        }
        for p in INDIMAIL_PATHS {
            let owner = self.owner(p);
            if indimail {
                assert_eq!(owner, "indimail-mta", "{when}: {p}");
            } else {
                assert_eq!(owner, "", "{when}: {p}");
                assert!(!self.path(p).exists(), "{when}: {p} left behind");
            }
        }
        for p in [MULTI, QUEUE_FIX, QUEUE_STAT, PROVISION] {
            assert_eq!(
                self.owner(p),
                if ours { "qmail-multi" } else { "" },
                "{when}: the owner of {p}"
            );
            assert_eq!(self.path(p).exists(), ours, "{when}: {p}");
        }
        if self.manager == Manager::Dpkg {
            let mut c = self.ns("dpkg-divert");
            c.arg(format!("--root={}", self.root().display()))
                .arg("--list");
            let list = run(&mut c, "dpkg-divert --list");
            assert!(
                !list.contains("by qmail-multi"),
                "{when}: diversions left: {list}"
            );
        }
        for d in Self::envdirs() {
            let q = self.var(&d, "QMAILQUEUE");
            // The program and, in a chain ("qmail-multi FILTER..."), every
            // program after it while IndiMail is installed. Without it a
            // chain keeps naming IndiMail's filter (qmail-dkim), which went
            // with the package together with the qmail-smtpd that would run
            // it (indimail-mta.spec.in's %files list both): the provisioning
            // keeps what IndiMail wrote, says so, and the next IndiMail
            // install finds its chain as it left it. Our multiplexer, first,
            // must exist whenever ours is installed; with neither package,
            // the envdirs hold what IndiMail left (ours restored it).
            let named = q.split_whitespace().filter(|w| w.starts_with('/'));
            let must_exist: Vec<&str> = match (indimail, ours) {
                (true, _) => named.collect(),
                (false, true) => named.take(1).collect(),
                (false, false) => Vec::new(),
            };
            for prog in must_exist {
                let m = fs::metadata(self.path(prog));
                assert!(
                    m.is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0),
                    "{when}: {d}/QMAILQUEUE ({q}) names {prog}, which does not exist"
                );
            }
            if let Some(n) = count {
                assert_eq!(
                    q.split_whitespace().next(),
                    Some(MULTI),
                    "{when}: {d}/QMAILQUEUE ({q}) does not start with ours"
                );
                assert_eq!(self.var(&d, "QUEUE_COUNT"), n, "{when}: {d}/QUEUE_COUNT");
                assert_eq!(
                    self.var(&d, "QUEUE_BASE"),
                    "/var/indimail/queue",
                    "{when}: {d}"
                );
            }
        }
    }

    /// What the stand-in's refresh did (svctool-standin.log), then forget.
    fn refresh_log(&self) -> String {
        let p = self.path("/var/log/svctool-standin.log");
        let log = fs::read_to_string(&p).unwrap_or_default();
        let _ = fs::remove_file(p);
        log
    }
}

impl Drop for ScratchRoot {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The stand-in packages, built once (tests/packaging/build-standins.sh);
/// host-base provides what ours and the stand-ins require from the base
/// system.
struct Standins {
    rpm_old: PathBuf,
    rpm_new: PathBuf,
    deb_old: PathBuf,
    deb_new: PathBuf,
    host_base: PathBuf,
}

fn standins() -> &'static Standins {
    static S: std::sync::OnceLock<Standins> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let b = built();
        let dir = PathBuf::from(sh_script(
            "build-standins.sh",
            &[
                out_dir().to_str().unwrap(),
                b.rpm1.to_str().unwrap(),
                b.rpm2.to_str().unwrap(),
            ],
        ));
        Standins {
            rpm_old: dir.join(format!("indimail-mta-{INDIMAIL_OLD}-1.noarch.rpm")),
            rpm_new: dir.join(format!("indimail-mta-{INDIMAIL_NEW}-1.noarch.rpm")),
            deb_old: dir.join(format!("indimail-mta_{INDIMAIL_OLD}-1_all.deb")),
            deb_new: dir.join(format!("indimail-mta_{INDIMAIL_NEW}-1_all.deb")),
            host_base: dir.join("host-base-1-1.noarch.rpm"),
        }
    })
}

/// A fresh root for `manager`, with host-base in its rpm database.
fn scratch(manager: Manager, norefresh: bool) -> ScratchRoot {
    let r = ScratchRoot::new(manager, norefresh);
    if manager == Manager::Rpm {
        r.install(&standins().host_base, "rpm -U host-base");
    }
    r
}

/// Our packages and the stand-ins of one manager.
struct Pkgs {
    ours: PathBuf,
    ours2: PathBuf,
    /// The count ours seeds after upgrading to `ours2` (the RPM's release
    /// 2 changes the default; the .deb's revision 2 does not).
    count2: &'static str,
    indimail: PathBuf,
    indimail_new: PathBuf,
}

fn pkgs(manager: Manager) -> Pkgs {
    let (b, s) = (built(), standins());
    match manager {
        Manager::Rpm => Pkgs {
            ours: b.rpm1.clone(),
            ours2: b.rpm2.clone(),
            count2: "8",
            indimail: s.rpm_old.clone(),
            indimail_new: s.rpm_new.clone(),
        },
        Manager::Dpkg => Pkgs {
            ours: b.deb1.clone(),
            ours2: b.deb2.clone(),
            count2: "5",
            indimail: s.deb_old.clone(),
            indimail_new: s.deb_new.clone(),
        },
    }
}

/// Runs `scenario`, recording its name and whether it passed (a failure is
/// re-raised once every scenario has run, so the figures are complete).
fn scenario(
    results: &mut Vec<(String, Result<(), String>)>,
    name: String,
    f: impl FnOnce() + std::panic::UnwindSafe,
) {
    eprintln!("==== scenario: {name}");
    let r = std::panic::catch_unwind(f).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    });
    eprintln!(
        "==== {name}: {}",
        if r.is_ok() { "passed" } else { "FAILED" }
    );
    results.push((name, r));
}

#[test]
fn packages_install_beside_indimail_in_scratch_roots() {
    let name = "packages_install_beside_indimail_in_scratch_roots";
    if !is_root() {
        return skip(name, "needs root (mount namespaces, overlay roots)");
    }
    let tools = [
        "dpkg-buildpackage",
        "dpkg-deb",
        "lintian",
        "dpkg",
        "rpmbuild",
        "rpmlint",
        "rpm",
        "unshare",
        "nsenter",
        "mount",
        "svok",
        "xz",
        "cargo",
        "useradd",
    ];
    if let Some(why) = missing(&tools) {
        return skip(name, &why);
    }
    let _lock = system_lock();
    let started = Instant::now();
    standins();
    eprintln!("built the packages in {:?}", started.elapsed());
    let mut results = Vec::new();
    for m in [Manager::Rpm, Manager::Dpkg] {
        let p = pkgs(m);
        let ours = "5";

        scenario(
            &mut results,
            format!("{m:?} 1: IndiMail first, then ours"),
            || {
                let r = scratch(m, false);
                r.install(&p.indimail, "install IndiMail");
                r.check("IndiMail alone", None);
                r.install(&p.ours, "install ours");
                r.check("ours after IndiMail", Some(ours));
            },
        );

        scenario(
            &mut results,
            format!("{m:?} 2: ours first, then IndiMail"),
            || {
                let r = scratch(m, false);
                r.install(&p.ours, "install ours");
                r.check("ours alone", Some(ours));
                r.install(&p.indimail, "install IndiMail");
                assert_eq!(r.refresh_log(), "", "a fresh install refreshed");
                r.check("IndiMail after ours", Some(ours));
            },
        );

        scenario(&mut results, format!("{m:?} 3: either upgraded"), || {
            // A fresh 3.x: .norefreshsvc everywhere, the refresh skips.
            let r = scratch(m, true);
            r.install(&p.indimail, "install IndiMail");
            r.install(&p.ours, "install ours");
            r.install(&p.indimail_new, "upgrade IndiMail");
            let log = r.refresh_log();
            assert!(
                log.contains("skipped /service/qmail-smtpd.25") && !log.contains("refreshed"),
                "the refresh did not skip: {log}"
            );
            r.check("IndiMail upgraded", Some(ours));
            r.install(&p.ours2, "upgrade ours");
            r.check("ours upgraded", Some(p.count2));
        });

        scenario(&mut results, format!("{m:?} 4: either removed"), || {
            let r = scratch(m, false);
            r.install(&p.indimail, "install IndiMail");
            r.install(&p.ours, "install ours");
            r.remove("indimail-mta", "remove IndiMail");
            r.check("IndiMail removed", Some(ours));
            r.install(&p.indimail, "reinstall IndiMail");
            r.check("IndiMail reinstalled", Some(ours));
            r.remove("qmail-multi", "remove ours");
            r.check("ours removed", None);
            for d in ScratchRoot::envdirs() {
                assert_ne!(r.var(&d, "QMAILQUEUE"), MULTI, "{d} still names ours");
            }
        });

        scenario(
            &mut results,
            format!("{m:?} 5: IndiMail's upgrade refreshes our envdirs, the trigger restores them"),
            || {
                let r = scratch(m, false);
                r.install(&p.indimail, "install IndiMail");
                r.install(&p.ours, "install ours");
                r.check("before the upgrade", Some(ours));
                let fronts: Vec<String> = ScratchRoot::envdirs()
                    .into_iter()
                    .filter(|d| !d.contains("qmail-send"))
                    .collect();
                let rewritten = |r: &ScratchRoot| {
                    for d in &fronts {
                        assert_eq!(r.var(d, "QMAILQUEUE"), indimail_queue(d), "{d}");
                        assert_eq!(r.var(d, "QUEUE_COUNT"), INDIMAIL_COUNT, "{d}");
                    }
                };
                match m {
                    Manager::Rpm => {
                        // One transaction: IndiMail's %post refreshes, our
                        // %triggerin runs after it.
                        r.install(&p.indimail_new, "rpm -U IndiMail");
                    }
                    Manager::Dpkg => {
                        // As apt runs dpkg (apt.conf(5): DPkg::NoTriggers,
                        // DPkg::ConfigurePending): IndiMail's postinst runs
                        // and rewrites, our trigger is still pending...
                        let new = p.indimail_new.to_str().unwrap();
                        r.dpkg(&["--no-triggers", "--unpack", new], "dpkg --unpack (apt)");
                        r.dpkg(
                            &["--no-triggers", "--configure", "indimail-mta"],
                            "dpkg --configure indimail-mta (apt)",
                        );
                        rewritten(&r);
                        // ...and runs at the end.
                        r.dpkg(
                            &["--configure", "--pending"],
                            "dpkg --configure --pending (apt)",
                        );
                    }
                }
                let log = r.refresh_log();
                for d in [
                    "qmail-smtpd.25",
                    "qmail-smtpd.587",
                    "qmail-qmtpd.209",
                    "qmail-send.25",
                ] {
                    assert!(
                        log.contains(&format!("refreshed /service/{d}\n")),
                        "IndiMail's upgrade did not refresh {d}: {log}"
                    );
                }
                r.check("IndiMail's upgrade refreshed, our trigger ran", Some(ours));
                if m == Manager::Dpkg {
                    // dpkg -i orders it the same way.
                    r.install(&p.indimail, "dpkg -i (IndiMail downgraded: a refresh)");
                    assert!(r.refresh_log().contains("refreshed"));
                    r.check("dpkg -i IndiMail", Some(ours));
                    // A bare dpkg --unpack runs the trigger at its end,
                    // before IndiMail's postinst: the trigger says so, the
                    // refresh then wins until dpkg-reconfigure.
                    let new = p.indimail_new.to_str().unwrap();
                    let said = r.dpkg(&["--unpack", new], "bare dpkg --unpack");
                    assert!(
                        said.contains("indimail-mta is not configured yet")
                            && said.contains("dpkg-reconfigure qmail-multi"),
                        "{said}"
                    );
                    r.dpkg(
                        &["--configure", "indimail-mta"],
                        "dpkg --configure indimail-mta",
                    );
                    rewritten(&r);
                    let mut c = r.ns("chroot");
                    c.arg(r.root())
                        .args(["dpkg-reconfigure", "-fnoninteractive", "qmail-multi"]);
                    run(&mut c, "dpkg-reconfigure qmail-multi");
                    r.check("dpkg-reconfigure after a bare unpack", Some(ours));
                }
            },
        );

        if m == Manager::Dpkg {
            scenario(
                &mut results,
                format!("{m:?} 6: upgrade from the diverting 0.1.0-0 gives IndiMail's files back"),
                || {
                    let r = scratch(m, false);
                    r.install(&p.indimail, "install IndiMail");
                    let old = diverting_deb(&r);
                    r.install(&old, "install the diverting version");
                    let list = run(
                        r.ns("dpkg-divert")
                            .arg(format!("--root={}", r.root().display()))
                            .arg("--list"),
                        "dpkg-divert --list",
                    );
                    assert_eq!(list.matches("by qmail-multi").count(), 4, "{list}");
                    r.install(&p.ours, "upgrade to the current version");
                    r.check("upgraded from the diverting version", Some(ours));
                    assert!(!r.path("/usr/sbin/qmail-multi.indimail").exists());
                },
            );
        }
    }
    eprintln!("scenarios beside IndiMail took {:?}", started.elapsed());
    for (m, label) in [(Manager::Rpm, "Rpm"), (Manager::Dpkg, "Dpkg")] {
        let mine: Vec<_> = results
            .iter()
            .filter(|(n, _)| n.starts_with(label))
            .collect();
        let passed = mine.iter().filter(|(_, r)| r.is_ok()).count();
        eprintln!("SCENARIOS {m:?}: {passed} of {} passed", mine.len());
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "scenarios failed:\n{}",
        failed.join("\n")
    );
}

/// The package as released up to 0.1.0-1 (version 0.1.0-0 here): its
/// maintainer scripts from git (preinst diverting IndiMail's qmail-multi,
/// queue-fix and man pages; postrm giving them back on removal) and files
/// at those paths, built with dpkg-deb. Its binaries are stand-ins: the
/// upgrade under test replaces them.
fn diverting_deb(r: &ScratchRoot) -> PathBuf {
    let dir = r.dir.path().join("diverting");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("DEBIAN")).unwrap();
    for (script, rev) in [("preinst", "613366e"), ("postrm", "613366e")] {
        let mut c = clean("git");
        c.arg("-C")
            .arg(repo())
            .args(["show", &format!("{rev}:packaging/debian/{script}")]);
        let text = run_output(&mut c, "git show the diverting version's scripts").stdout;
        let text = String::from_utf8(text).unwrap().replace("#DEBHELPER#", "");
        let p = dir.join("DEBIAN").join(script);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for p in [
        "usr/sbin/qmail-multi",
        "usr/bin/queue-fix",
        "usr/share/man/man8/qmail-multi.8.gz",
        "usr/share/man/man8/queue-fix.8.gz",
    ] {
        let f = dir.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, "qmail-multi 0.1.0-0 stand-in\n").unwrap();
    }
    fs::write(
        dir.join("DEBIAN/control"),
        "Package: qmail-multi\nVersion: 0.1.0-0\nArchitecture: all\n\
         Maintainer: qmail-multi tests <tests@packages.invalid>\n\
         Description: qmail-multi as released up to 0.1.0-1 (diversions)\n \
         Stand-in for the upgrade test.\n",
    )
    .unwrap();
    let deb = r.dir.path().join("qmail-multi_0.1.0-0_all.deb");
    run(
        clean("dpkg-deb")
            .args(["--root-owner-group", "-b"])
            .arg(&dir)
            .arg(&deb),
        "dpkg-deb -b the diverting version",
    );
    deb
}
