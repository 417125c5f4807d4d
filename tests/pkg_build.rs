//! How the packages are built, as a distribution or build service builds
//! them: the declared build dependencies (dpkg-checkbuilddeps over a scratch
//! dpkg database), reproducible .debs (two builds in different directories at
//! different times, compared with diffoscope), the OBS build by Debian's
//! obs-build in a chroot filled from a local directory of .debs, and the RPM
//! repository metadata as dnf and zypper read it.
//!
//! Nothing here installs our packages on the host: the package lifecycle is
//! tests/pkg_packaging.rs's. The heavy tests share one reference .deb build
//! and run one at a time (two cores; the builds are CPU-bound).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

mod pkg_support;
use pkg_support::*;

/// Where the second build of the reproducibility test happens.
fn elsewhere() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pkgbuild-elsewhere")
}

fn skip(test: &str, why: &str) {
    eprintln!("skipped: {why} ({test})");
}

fn output(c: &mut Command, what: &str) -> Output {
    c.output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"))
}

/// Runs `c`, fails the test unless it succeeded; returns its stdout.
fn run(c: &mut Command, what: &str) -> String {
    let o = output(c, what);
    assert!(o.status.success(), "{what} failed:\n{}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a script of tests/packaging (its progress goes to the test's
/// stderr); returns the last line of its standard output.
fn sh_script(name: &str, args: &[&str]) -> String {
    let mut c = clean("sh");
    c.arg(script(name)).args(args);
    let out = run(&mut c, name);
    eprint!("== {name}\n{out}");
    out.lines().last().unwrap_or_default().trim().to_string()
}

// ---- build dependencies

/// One installed package of a scratch dpkg status file.
fn status_entry(name: &str, version: &str, provides: &str) -> String {
    let arch = run(
        clean("dpkg").arg("--print-architecture"),
        "dpkg --print-architecture",
    );
    let mut e = format!(
        "Package: {name}\nStatus: install ok installed\nPriority: optional\n\
         Section: devel\nMaintainer: nobody <nobody@packages.invalid>\n\
         Architecture: {}\nVersion: {version}\n",
        arch.trim()
    );
    if !provides.is_empty() {
        e.push_str(&format!("Provides: {provides}\n"));
    }
    e.push_str("Description: scratch entry\n\n");
    e
}

/// The Build-Depends field of a deb822 file, continuation lines joined.
fn build_depends(file: &Path) -> String {
    let text = read(file);
    let mut value = String::new();
    let mut inside = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Build-Depends:") {
            value.push_str(v.trim());
            inside = true;
        } else if inside && line.starts_with([' ', '\t']) {
            value.push(' ');
            value.push_str(line.trim());
        } else {
            inside = false;
        }
    }
    assert!(!value.is_empty(), "{}: no Build-Depends", file.display());
    value
}

#[test]
fn build_dependencies_reject_a_toolchain_older_than_1_85() {
    let name = "build_dependencies_reject_a_toolchain_older_than_1_85";
    if let Some(why) = missing(&["dpkg-checkbuilddeps", "dpkg"]) {
        return skip(name, &why);
    }
    let control = repo().join("packaging/debian/control");
    let dsc = repo().join("packaging/obs/qmail-multi.dsc");
    let from_control = build_depends(&control);
    let from_dsc = build_depends(&dsc);
    let normal = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        normal(&from_control),
        normal(&from_dsc),
        "the OBS .dsc must declare the Build-Depends of debian/control"
    );

    let debhelper = status_entry(
        "debhelper",
        "13.11.4",
        "debhelper-compat (= 12), debhelper-compat (= 13)",
    );
    let old = "1.78.0+dfsg1-2~deb12u1";
    let new = "1.85.0+dfsg3-1~deb12u3";
    // (installed toolchain, accepted?)
    let cases: [(&[(&str, &str)], bool); 6] = [
        (&[("cargo-web", old), ("rustc-web", old)], false),
        (&[("cargo", old), ("rustc", old)], false),
        (&[("cargo-web", new), ("rustc-web", old)], false),
        (&[("cargo-web", new), ("rustc-web", new)], true),
        (&[("cargo", new), ("rustc", new)], true),
        (&[("cargo-web", old), ("cargo", new), ("rustc", new)], true),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (installed, accepted) in cases {
        let admin = tmp.path().join("admin");
        let _ = fs::remove_dir_all(&admin);
        fs::create_dir_all(admin.join("updates")).unwrap();
        fs::create_dir_all(admin.join("info")).unwrap();
        let mut status = debhelper.clone();
        for (p, v) in installed {
            status.push_str(&status_entry(p, v, ""));
        }
        fs::write(admin.join("status"), status).unwrap();
        fs::write(admin.join("available"), "").unwrap();
        // -I: build-essential is not in this scratch database on purpose;
        // only the declared dependencies are under test. The control file
        // and the .dsc's field are checked against the same database.
        for (what, args) in [
            (
                "debian/control",
                vec![control.to_str().unwrap().to_string()],
            ),
            (
                "qmail-multi.dsc",
                vec![
                    "-d".to_string(),
                    from_dsc.clone(),
                    control.to_str().unwrap().to_string(),
                ],
            ),
        ] {
            let mut c = clean("dpkg-checkbuilddeps");
            c.arg("-I")
                .arg(format!("--admindir={}", admin.display()))
                .args(&args);
            let o = output(&mut c, "dpkg-checkbuilddeps");
            let said = String::from_utf8_lossy(&o.stderr);
            eprintln!("{what} with {installed:?}: {:?} {said}", o.status.code());
            if accepted {
                assert!(
                    o.status.success(),
                    "{what}: {installed:?} satisfies the build dependencies:\n{}",
                    show(&o)
                );
            } else {
                assert_eq!(
                    o.status.code(),
                    Some(1),
                    "{what}: {installed:?} must be rejected:\n{}",
                    show(&o)
                );
                assert!(
                    said.contains("Unmet build dependencies") && said.contains("(>= 1.85)"),
                    "{what}: the rejection must name the version:\n{}",
                    show(&o)
                );
            }
        }
    }
}

// ---- reproducible .debs

/// The heavy tests build one after the other: the builds are CPU-bound and
/// share the reference build's directory.
fn builds() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// build-deb.sh's .deb in out_dir(), built once per run (callers hold
/// `builds()`).
fn reference_deb() -> PathBuf {
    static DEB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DEB.get_or_init(|| PathBuf::from(sh_script("build-deb.sh", &[out_dir().to_str().unwrap()])))
        .clone()
}

/// Whether `needle` occurs in any file under `dir`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                let bytes = fs::read(&p).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

/// diffoscope's verdict on two packages: None when identical, else its
/// text report.
fn diffoscope(a: &Path, b: &Path) -> Option<String> {
    let mut c = clean("diffoscope");
    c.args(["--no-progress", "--text", "-"]).arg(a).arg(b);
    let o = output(&mut c, "diffoscope");
    match o.status.code() {
        Some(0) => None,
        Some(1) => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        _ => panic!("diffoscope failed:\n{}", show(&o)),
    }
}

#[test]
fn deb_rebuilt_in_another_directory_later_is_identical() {
    let name = "deb_rebuilt_in_another_directory_later_is_identical";
    let tools = [
        "dpkg-buildpackage",
        "dpkg-deb",
        "lintian",
        "fakeroot",
        "diffoscope",
        "xz",
        "cargo",
    ];
    if let Some(why) = missing(&tools) {
        return skip(name, &why);
    }
    let _builds = builds();
    let a = reference_deb();
    let out_a = out_dir();

    // The same sources, a longer path, a later time, another umask.
    let out_b = elsewhere().join("and/deeper");
    let _ = fs::remove_dir_all(elsewhere());
    fs::create_dir_all(&out_b).unwrap();
    for f in ["vendor.tar.xz", "vendor.stamp"] {
        fs::copy(out_a.join(f), out_b.join(f)).unwrap();
    }
    let mut c = clean("sh");
    c.arg("-c")
        .arg("umask 077 && exec sh \"$0\" \"$1\"")
        .arg(script("build-deb.sh"))
        .arg(&out_b);
    let said = run(&mut c, "build-deb.sh (second build)");
    eprint!("{said}");
    let b = PathBuf::from(said.lines().last().unwrap().trim());

    // Neither build's directory is left in what the package installs.
    for (deb, out) in [(&a, &out_a), (&b, &out_b)] {
        let x = tempfile::tempdir().unwrap();
        run(
            clean("dpkg-deb").arg("-x").arg(deb).arg(x.path()),
            "dpkg-deb -x",
        );
        let hits = files_containing(x.path(), out.to_str().unwrap().as_bytes());
        assert!(
            hits.is_empty(),
            "{} embeds its build directory {}: {hits:?}",
            deb.display(),
            out.display()
        );
    }
    if let Some(report) = diffoscope(&a, &b) {
        panic!("{} and {} differ:\n{report}", a.display(), b.display());
    }
    eprintln!("{} and {} are identical", a.display(), b.display());
    let _ = fs::remove_dir_all(elsewhere());
}

// ---- OBS

#[test]
fn obs_build_from_packaging_obs_makes_the_deb_build_deb_makes() {
    let name = "obs_build_from_packaging_obs_makes_the_deb_build_deb_makes";
    if !is_root() {
        return skip(
            name,
            "needs root (obs-build sets up and enters a chroot, mounts /proc in it)",
        );
    }
    let tools = [
        "/usr/lib/obs-build/build",
        "apt-get",
        "unshare",
        "dpkg-buildpackage",
        "lintian",
        "diffoscope",
        "xz",
        "cargo",
    ];
    if let Some(why) = missing(&tools) {
        return skip(name, &why);
    }
    // The chroot gets the host's cargo-web version; build-deb.sh uses it
    // only when it is installed (else rustup's cargo, another compiler).
    let installed = output(
        clean("dpkg-query").args(["-W", "-f=${Status}", "cargo-web"]),
        "dpkg-query",
    );
    if !String::from_utf8_lossy(&installed.stdout).contains("ok installed") {
        return skip(
            name,
            "cargo-web is not installed: build-deb.sh would use another compiler than the chroot",
        );
    }
    let _builds = builds();
    let reference = reference_deb();
    let out = out_dir();
    let obs = PathBuf::from(sh_script("obs-build.sh", &[out.to_str().unwrap()]));
    let log = read(out.join("obs-build/build.log"));
    // The path OBS takes for a .dsc with debian.* files beside it.
    assert!(
        log.contains("running debian transformer"),
        "obs-build did not run debtransform:\n{log}"
    );
    assert!(
        log.contains("Sourcing build.script"),
        "obs-build did not use packaging/obs/build.script:\n{log}"
    );
    if let Some(report) = diffoscope(&reference, &obs) {
        panic!(
            "obs-build's {} differs from build-deb.sh's {}:\n{report}",
            obs.display(),
            reference.display()
        );
    }
    eprintln!(
        "obs-build's {} is identical to build-deb.sh's {}",
        obs.display(),
        reference.display()
    );
}

// ---- RPM repository metadata

fn lines(s: &str) -> BTreeSet<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// `*` matches any run of characters; nothing else is special.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            s.starts_with(head) && (head.len()..=s.len()).any(|i| glob(rest, &s[i..]))
        }
    }
}

/// The entries of the spec's %files section, directives stripped:
/// (path or pattern, whether it is a %license/%doc name relative to the
/// package's documentation directory).
fn spec_files(parsed_spec: &str) -> Vec<(String, bool)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in parsed_spec.lines() {
        let l = line.trim();
        if l.starts_with('%') && !l.starts_with("%{") {
            let word = l.split_whitespace().next().unwrap();
            let section = word.split('(').next().unwrap();
            if section == "%files" {
                inside = true;
                continue;
            }
            if [
                "%changelog",
                "%post",
                "%pre",
                "%preun",
                "%postun",
                "%description",
                "%package",
            ]
            .contains(&section)
            {
                inside = false;
                continue;
            }
        }
        if !inside || l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut words: Vec<&str> = l.split_whitespace().collect();
        let mut relative = false;
        while let Some(w) = words.first() {
            if !w.starts_with('%') {
                break;
            }
            relative |= *w == "%license" || *w == "%doc";
            words.remove(0);
        }
        for w in words {
            out.push((w.to_string(), relative));
        }
    }
    out
}

/// zypper info's lists: `Key : value` or `Key : [N]` and N indented lines.
fn zypper_lists(info: &str) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut map = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in info.lines() {
        if line.starts_with("    ") {
            if let Some(k) = &current {
                map.entry(k.clone())
                    .or_insert_with(BTreeSet::new)
                    .insert(line.trim().to_string());
            }
            continue;
        }
        current = None;
        if let Some((k, v)) = line.split_once(" : ") {
            let (k, v) = (k.trim().to_string(), v.trim());
            let set = map.entry(k.clone()).or_insert_with(BTreeSet::new);
            if v.starts_with('[') && v.ends_with(']') {
                current = Some(k);
            } else if !v.is_empty() && v != "---" {
                // "---": zypper's empty list (Conflicts of a package
                // declaring none).
                set.insert(v.to_string());
            }
        }
    }
    map
}

#[test]
fn rpm_repository_tells_dnf_and_zypper_what_the_spec_declares() {
    let name = "rpm_repository_tells_dnf_and_zypper_what_the_spec_declares";
    let tools = [
        "rpmbuild",
        "rpmlint",
        "rpmspec",
        "rpm",
        "createrepo_c",
        "dnf",
        "zypper",
        "xz",
        "cargo",
    ];
    if let Some(why) = missing(&tools) {
        return skip(name, &why);
    }
    let _builds = builds();
    let out = out_dir();
    let rpm = PathBuf::from(sh_script(
        "build-rpm.sh",
        &[out.to_str().unwrap(), "1", "5"],
    ));
    let spec = repo().join("packaging/rpm/qmail-multi.spec");

    // What the spec declares, and what the package holds.
    let specq = |args: &[&str]| {
        run(
            clean("rpmspec")
                .args(["-q", "--define", "pkg_release 1"])
                .args(args)
                .arg(&spec),
            "rpmspec -q",
        )
    };
    let nvr = specq(&["--qf", "%{name}|%{version}|%{release}\n"]);
    let spec_requires = lines(&specq(&["--requires"]));
    let spec_conflicts = lines(&specq(&["--conflicts"]));
    let spec_provides = lines(&specq(&["--provides"]));
    let parsed = run(
        clean("rpmspec")
            .args(["-P", "--define", "pkg_release 1"])
            .arg(&spec),
        "rpmspec -P",
    );
    let rpmq = |args: &[&str]| run(clean("rpm").arg("-qp").args(args).arg(&rpm), "rpm -qp");
    let arch = rpmq(&["--qf", "%{arch}"]);
    // rpmlib() requirements are rpm's own and not repository metadata.
    let rpm_requires: BTreeSet<String> = lines(&rpmq(&["--requires"]))
        .into_iter()
        .filter(|r| !r.starts_with("rpmlib("))
        .collect();
    let rpm_provides = lines(&rpmq(&["--provides"]));
    let rpm_files = lines(&rpmq(&["-l"]));
    // It installs beside IndiMail's indimail-mta and qmta (README, "Paths
    // on each kind of host"): no Conflicts at all.
    assert!(spec_conflicts.is_empty(), "{spec_conflicts:?}");

    // The repository, with a stand-in of IndiMail's indimail-mta owning its
    // paths that collided with ours (tests/packaging/build-standins.sh) and
    // host-base providing what the packages need from the base system.
    let repodir = out.join("rpm-repo");
    let _ = fs::remove_dir_all(&repodir);
    fs::create_dir_all(&repodir).unwrap();
    fs::copy(&rpm, repodir.join(rpm.file_name().unwrap())).unwrap();
    let standins = PathBuf::from(sh_script(
        "build-standins.sh",
        &[out.to_str().unwrap(), rpm.to_str().unwrap()],
    ));
    for f in [
        "indimail-mta-3.1.0-1.noarch.rpm",
        "host-base-1-1.noarch.rpm",
    ] {
        fs::copy(standins.join(f), repodir.join(f)).unwrap();
    }
    run(clean("createrepo_c").arg(&repodir), "createrepo_c");
    let url = format!("file://{}", repodir.display());

    // dnf, with a scratch installroot and only this repository.
    let scratch = tempfile::tempdir().unwrap();
    let dnfroot = scratch.path().join("dnf");
    fs::create_dir_all(&dnfroot).unwrap();
    let dnf_cmd = || {
        let mut c = clean("dnf");
        c.arg(format!("--installroot={}", dnfroot.display()))
            .args(["--releasever=1", "--setopt=reposdir=/nonexistent"])
            .arg(format!("--setopt=cachedir={}/cache", dnfroot.display()))
            .arg(format!("--repofrompath=qmail-multi-test,{url}"))
            .args([
                "--repo=qmail-multi-test",
                "--setopt=qmail-multi-test.gpgcheck=0",
            ]);
        c
    };
    let dnf = |args: &[&str]| {
        let mut c = dnf_cmd();
        c.args(["-q", "repoquery"]).args(args).arg("qmail-multi");
        lines(&run(&mut c, "dnf repoquery"))
    };
    let dnf_nvra = dnf(&["--qf", "%{name}|%{version}|%{release}|%{arch}"]);
    assert_eq!(
        dnf_nvra,
        BTreeSet::from([format!("{}|{arch}", nvr.trim())]),
        "dnf sees another name, version or release than the spec's"
    );
    let dnf_requires = dnf(&["--requires"]);
    let dnf_conflicts = dnf(&["--conflicts"]);
    let dnf_provides = dnf(&["--provides"]);
    let dnf_files = dnf(&["-l"]);
    eprintln!(
        "dnf: {dnf_nvra:?}\nrequires {dnf_requires:?}\nconflicts {dnf_conflicts:?}\n\
         provides {dnf_provides:?}\nfiles {dnf_files:?}"
    );
    // createrepo_c keeps only the highest symbol version of each library
    // and drops what the package provides itself; it invents nothing.
    assert!(
        dnf_requires.is_subset(&rpm_requires),
        "dnf requires {:?}, which the package does not",
        dnf_requires.difference(&rpm_requires).collect::<Vec<_>>()
    );
    assert!(
        spec_requires.is_subset(&dnf_requires),
        "the spec's requirements {spec_requires:?} are not all in the metadata"
    );
    // Anything beyond the spec's own is rpm's automatic shared-library and
    // interpreter dependencies, nothing else.
    for r in dnf_requires.difference(&spec_requires) {
        assert!(
            r.starts_with("lib") && r.contains(".so")
                || r.starts_with("ld-linux")
                || r.starts_with("rtld(")
                || r == "/bin/sh",
            "requirement {r} is neither the spec's nor automatic"
        );
    }
    assert_eq!(dnf_conflicts, spec_conflicts, "dnf conflicts vs the spec's");
    assert_eq!(dnf_provides, rpm_provides, "dnf provides vs the package's");
    assert!(
        spec_provides.is_subset(&dnf_provides),
        "{spec_provides:?} not in {dnf_provides:?}"
    );
    assert_eq!(dnf_files, rpm_files, "dnf's file list vs the package's");
    for (entry, relative) in spec_files(&parsed) {
        let found = dnf_files.iter().any(|f| {
            if relative {
                // %doc/%license take the last part of a relative path
                // (doc/examples -> /usr/share/doc/NAME/examples/...).
                let last = entry.rsplit('/').next().unwrap_or(&entry);
                f.starts_with("/usr/share/")
                    && (f.ends_with(&format!("/{last}")) || f.contains(&format!("/{last}/")))
            } else {
                glob(&entry, f)
            }
        });
        assert!(
            found,
            "%files entry {entry} is not in the metadata's file list"
        );
    }

    // zypper, with a scratch root that knows only this repository.
    let zroot = scratch.path().join("zypper");
    fs::create_dir_all(&zroot).unwrap();
    let zypper = |args: &[&str]| {
        let mut c = clean("zypper");
        c.arg("--root")
            .arg(&zroot)
            .args(["--non-interactive", "--no-gpg-checks"])
            .args(args);
        run(&mut c, "zypper")
    };
    zypper(&["addrepo", "--no-gpgcheck", &url, "qmail-multi-test"]);
    zypper(&["refresh"]);
    let info = zypper(&[
        "info",
        "--requires",
        "--provides",
        "--conflicts",
        "qmail-multi",
    ]);
    eprintln!("zypper info:\n{info}");
    let z = zypper_lists(&info);
    let get = |k: &str| z.get(k).cloned().unwrap_or_default();
    let (n, v, _) = {
        let mut it = nvr.trim().split('|');
        (it.next().unwrap(), it.next().unwrap(), it.next())
    };
    let release = nvr.trim().rsplit('|').next().unwrap();
    assert_eq!(get("Name"), BTreeSet::from([n.to_string()]));
    assert_eq!(get("Version"), BTreeSet::from([format!("{v}-{release}")]));
    assert_eq!(get("Arch"), BTreeSet::from([arch.trim().to_string()]));
    assert_eq!(get("Requires"), dnf_requires, "zypper requires vs dnf's");
    assert_eq!(get("Conflicts"), dnf_conflicts, "zypper conflicts vs dnf's");
    assert_eq!(get("Provides"), dnf_provides, "zypper provides vs dnf's");
    // libzypp (17.25 here) reads primary.xml of an rpm-md repository, not
    // filelists.xml: its file list holds the paths a file dependency can
    // name (under /etc and the bin directories), which is what zypper
    // resolves with. dnf above read the whole list.
    let primary: Vec<&String> = rpm_files
        .iter()
        .filter(|f| f.starts_with("/etc/") || f.contains("bin/"))
        .collect();
    assert!(
        primary.iter().any(|f| f.as_str() == "/usr/bin/queue-stat"),
        "{primary:?}"
    );
    for f in primary {
        let found = zypper(&["search", "--file-list", "--match-exact", f]);
        assert!(
            found
                .lines()
                .any(|l| l.split('|').nth(1).map(str::trim) == Some(n)),
            "zypper finds no package owning {f}:\n{found}"
        );
    }

    // Side by side with IndiMail: dnf resolves both and runs rpm's test
    // transaction (tsflags=test: the file conflict check, nothing
    // installed); zypper resolves both and, with the packages downloaded
    // first, checks their file lists for conflicts.
    let mut c = dnf_cmd();
    c.args([
        "--setopt=tsflags=test",
        "install",
        "-y",
        "qmail-multi",
        "indimail-mta",
    ]);
    let said = run(
        &mut c,
        "dnf install (test transaction) qmail-multi indimail-mta",
    );
    eprintln!("dnf beside indimail-mta:\n{said}");
    assert!(
        said.contains("Transaction test succeeded") && said.contains("indimail-mta"),
        "{said}"
    );
    zypper(&[
        "install",
        "--dry-run",
        "--download-only",
        "qmail-multi",
        "indimail-mta",
    ]);
    let said = zypper(&["install", "--dry-run", "qmail-multi", "indimail-mta"]);
    eprintln!("zypper beside indimail-mta:\n{said}");
    assert!(
        said.contains("3 new packages to install")
            && said.contains("Checking for file conflicts")
            && !said.contains("excluded from file conflicts check")
            && !said.contains("Detected"),
        "{said}"
    );
}
