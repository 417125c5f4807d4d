//! The host's queue settings as IndiMail's own tools read them: the one
//! place that says which `BIGTODO`, `CONFSPLIT`, `QUEUE_BASE`,
//! `QUEUE_COUNT` and `QUEUE_START` queue-fix and queue-stat use, and where
//! each came from.
//!
//! Order, first found wins: the command line, the process environment,
//! then the files IndiMail's `set_environment()` loads
//! (indimail-mta-x/set_environment.c, revision 1.10):
//!
//! 1. `$HOME/.defaultqueue`, an envdir, unless `SKIP_LOCAL_ENVIRONMENT` is
//!    set or `HOME` is not, and only when `access(X_OK)` allows it. Root
//!    loads it too: queue-fix and qmail-qread are `root_rc` callers there,
//!    and queue-stat reads what qmail-qread reads.
//! 2. When `QUEUE_BASE` is still unset (by the environment or step 1): the
//!    envdir `CONTROLDIR/defaultqueue` (`CONTROLDIR` unset: the compiled-in
//!    `/etc/indimail/control`), with its `.envdir` chain; svctool's
//!    `create_queuedef()` and `link_with_global()` write
//!    `defaultqueue/.envdir` holding the path of `control/global_vars`,
//!    which keeps `BIGTODO=0` and `CONFSPLIT`, and whose `QUEUE_BASE`,
//!    `QUEUE_COUNT` and `QUEUE_START` are symlinks into `defaultqueue`.
//!    Its values override step 1's, as the second `envdir()` call does.
//!
//! One difference from IndiMail: there the files override the process
//! environment (`pathexec_env` replaces a variable; only `QUEUE_BASE` in
//! the environment keeps `defaultqueue` out). Here a variable the caller
//! set is used as set, so that a service's own envdir, which runs its
//! queue-fix with the values it also gives qmail-send, always decides.
//!
//! Each envdir is read as libqmail's `envdir()` reads it (libqmail,
//! base/envdir.c, revision 1.17): `.envfile` first, then `.envdir`, then
//! the directory's own files, so that a directory's own file beats what its
//! chain says. `.envdir` is a directory, a symlink to one, or a file (or a
//! symlink to one) listing one directory per line; a directory already
//! visited (by the inode `lstat` gives its path) is skipped, which ends a
//! cycle. A file's first line is the value, trailing blanks and tabs
//! removed and NUL bytes made newlines; an empty file unsets the variable
//! (a file holding only a newline sets it to the empty string).
//!
//! What is not IndiMail's: a setting that cannot be read is an error naming
//! its path (IndiMail skips an unreadable file under `defaultqueue` and
//! drops `$HOME/.defaultqueue` with a warning): a queue repaired under a
//! default instead of the host's value is the failure this module exists
//! to prevent. The chain is at most [`MAX_DEPTH`] directories deep. Only
//! the five names are read; every other file is left unopened.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The settings resolved here.
pub const BIGTODO: &str = "BIGTODO";
pub const CONFSPLIT: &str = "CONFSPLIT";
pub const QUEUE_BASE: &str = "QUEUE_BASE";
pub const QUEUE_COUNT: &str = "QUEUE_COUNT";
pub const QUEUE_START: &str = "QUEUE_START";
pub const NAMES: [&str; 5] = [BIGTODO, CONFSPLIT, QUEUE_BASE, QUEUE_COUNT, QUEUE_START];

/// How many directories deep a `.envdir` chain may go (svctool's is two:
/// `defaultqueue`, `global_vars`).
pub const MAX_DEPTH: usize = 16;

/// The most of a setting file that is read: values are numbers and paths.
pub const MAX_FILE: usize = 64 * 1024;

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A command-line option (`-b`, `-s`, `--count`, …).
    Option(&'static str),
    Environment,
    /// A file of an envdir; `chain`: the `.envdir` files followed to reach
    /// its directory, outermost first (empty: the envdir itself).
    File {
        path: PathBuf,
        chain: Vec<PathBuf>,
    },
    NotSet,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Option(o) => write!(f, "option {o}"),
            Source::Environment => f.write_str("environment"),
            Source::File { path, chain } => {
                f.write_str(&crate::fsx::escape::path(path))?;
                for link in chain.iter().rev() {
                    write!(f, " via {}", crate::fsx::escape::path(link))?;
                }
                Ok(())
            }
            Source::NotSet => f.write_str("not set"),
        }
    }
}

/// One setting: its value (`None`: not set anywhere) and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub value: Option<OsString>,
    pub source: Source,
}

impl Setting {
    /// The value parsed by `parse`; an error names the setting, the value
    /// and where it came from.
    pub fn parse<T>(&self, parse: impl Fn(&str) -> Result<T, String>) -> Result<Option<T>, String> {
        let Some(v) = &self.value else {
            return Ok(None);
        };
        let text = v.to_string_lossy();
        parse(&text)
            .map(Some)
            .map_err(|e| format!("{} {text:?} ({}): {e}", self.name, self.source))
    }
}

/// A settings file or directory that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub path: PathBuf,
    pub what: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", crate::fsx::escape::path(&self.path), self.what)
    }
}

fn error(path: &Path, what: impl fmt::Display) -> Error {
    Error {
        path: path.to_owned(),
        what: what.to_string(),
    }
}

/// What `lstat` says of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Dir { id: (u64, u64) },
    Symlink { id: (u64, u64) },
    File,
    Other,
}

/// The reads the resolver makes, so that its rules are tested on real
/// directories without root and without the process's own environment.
pub trait SettingsFs {
    /// `lstat`; `None`: nothing there.
    fn lstat(&self, path: &Path) -> io::Result<Option<Node>>;
    /// The first [`MAX_FILE`] + 1 bytes of a file, following symlinks as
    /// `open` does; `None`: nothing there (a dangling symlink included);
    /// a directory is an error of kind `IsADirectory`.
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;
    /// The names in a directory (following a symlink to it).
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// `access(path, X_OK)`: `Ok(false)` when nothing is there.
    fn searchable(&self, path: &Path) -> io::Result<bool>;
}

/// The real file system.
pub struct HostFs;

impl SettingsFs for HostFs {
    fn lstat(&self, path: &Path) -> io::Result<Option<Node>> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(path) {
            Ok(m) => {
                let id = (m.dev(), m.ino());
                let t = m.file_type();
                Ok(Some(if t.is_dir() {
                    Node::Dir { id }
                } else if t.is_symlink() {
                    Node::Symlink { id }
                } else if t.is_file() {
                    Node::File
                } else {
                    Node::Other
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        f.take(MAX_FILE as u64 + 1).read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn searchable(&self, path: &Path) -> io::Result<bool> {
        use nix::unistd::{access, AccessFlags};
        match access(path, AccessFlags::X_OK) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::ENOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// What the envdirs say: per name, set (value, where) or unset by an
/// empty file; a name no file mentions is absent.
type Overlay = BTreeMap<&'static str, Option<(OsString, Source)>>;

fn known(name: &OsStr) -> Option<&'static str> {
    NAMES.iter().copied().find(|n| OsStr::new(n) == name)
}

/// One `envdir()` call's walk; `visited` outlives it, as libqmail's static
/// list of visited inodes outlives each call in one process.
struct Walk<'a, F: SettingsFs> {
    fs: &'a F,
    visited: &'a mut HashSet<(u64, u64)>,
    overlay: &'a mut Overlay,
}

impl<F: SettingsFs> Walk<'_, F> {
    fn envdir(&mut self, dir: &Path, chain: &[PathBuf]) -> Result<(), Error> {
        if chain.len() > MAX_DEPTH {
            return Err(error(
                dir,
                format!("the .envdir chain is more than {MAX_DEPTH} directories deep"),
            ));
        }
        let id = match self.fs.lstat(dir) {
            Ok(Some(Node::Dir { id } | Node::Symlink { id })) => id,
            Ok(Some(_)) => return Err(error(dir, "not a directory")),
            Ok(None) => return Err(error(dir, "no such directory")),
            Err(e) => return Err(error(dir, e)),
        };
        if !self.visited.insert(id) {
            return Ok(());
        }
        self.envfile(&dir.join(".envfile"), chain)?;
        self.dot_envdir(&dir.join(".envdir"), chain)?;
        let mut names = self.fs.list(dir).map_err(|e| error(dir, e))?;
        // readdir order decides nothing: each name is set once here.
        names.sort();
        for name in names {
            let Some(known) = known(&name) else { continue };
            let path = dir.join(&name);
            let bytes = match self.fs.read(&path) {
                Ok(Some(b)) => b,
                // A dangling symlink: openreadclose() finds nothing, and
                // envdir() skips it under defaultqueue's ignore_unreadable.
                Ok(None) => continue,
                Err(e) => return Err(error(&path, e)),
            };
            let value = file_value(&bytes).map_err(|e| error(&path, e))?;
            let source = Source::File {
                path,
                chain: chain.to_vec(),
            };
            self.overlay.insert(known, value.map(|v| (v, source)));
        }
        Ok(())
    }

    /// `process_dot_envdir()`: a directory (or a symlink to one) is read
    /// as an envdir; a file (or a symlink to one) lists directories.
    fn dot_envdir(&mut self, path: &Path, chain: &[PathBuf]) -> Result<(), Error> {
        let inner = || {
            let mut c = chain.to_vec();
            c.push(path.to_owned());
            c
        };
        match self.fs.lstat(path).map_err(|e| error(path, e))? {
            None | Some(Node::Other) => Ok(()),
            Some(Node::Dir { .. }) => self.envdir(path, &inner()),
            Some(Node::File | Node::Symlink { .. }) => match self.fs.read(path) {
                Err(e) if e.kind() == io::ErrorKind::IsADirectory => self.envdir(path, &inner()),
                Err(e) => Err(error(path, e)),
                Ok(None) => Err(error(path, "a symbolic link to nothing")),
                Ok(Some(list)) => {
                    if list.len() > MAX_FILE {
                        return Err(error(path, "longer than a list of directories can be"));
                    }
                    // libqmail resolves a relative line against the
                    // working directory (it no longer changes directory):
                    // so does this, by passing the line as it is.
                    for line in list.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        self.envdir(Path::new(OsStr::from_bytes(line)), &inner())?;
                    }
                    Ok(())
                }
            },
        }
    }

    /// `process_dot_envfile()`: `NAME=value` lines set, a bare `NAME`
    /// unsets; leading blanks, empty lines and `#` comments are skipped.
    fn envfile(&mut self, path: &Path, chain: &[PathBuf]) -> Result<(), Error> {
        match self.fs.lstat(path).map_err(|e| error(path, e))? {
            None | Some(Node::Dir { .. } | Node::Other) => return Ok(()),
            Some(Node::File | Node::Symlink { .. }) => {}
        }
        let text = match self.fs.read(path) {
            Ok(Some(t)) if t.len() <= MAX_FILE => t,
            Ok(Some(_)) => return Err(error(path, "longer than a settings file can be")),
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => return Ok(()),
            Ok(None) => return Err(error(path, "a symbolic link to nothing")),
            Err(e) => return Err(error(path, e)),
        };
        for line in text.split(|&b| b == b'\n') {
            let line = line.trim_ascii_start();
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let (name, value) = match line.iter().position(|&b| b == b'=') {
                Some(i) => (&line[..i], Some(&line[i + 1..])),
                None => (line, None),
            };
            if let Some(known) = known(OsStr::from_bytes(name)) {
                let source = Source::File {
                    path: path.to_owned(),
                    chain: chain.to_vec(),
                };
                let value = value.map(|v| (OsString::from_vec(v.to_vec()), source));
                self.overlay.insert(known, value);
            }
        }
        Ok(())
    }
}

/// A setting file's value as `envdir()` takes it: `None` for an empty
/// file (the variable is unset), else the first line without trailing
/// blanks and tabs, NUL bytes made newlines.
pub fn file_value(bytes: &[u8]) -> Result<Option<OsString>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => &bytes[..i],
        None if bytes.len() > MAX_FILE => {
            return Err(format!("no newline in the first {MAX_FILE} bytes"))
        }
        None => bytes,
    };
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    let value = line[..end]
        .iter()
        .map(|&b| if b == 0 { b'\n' } else { b })
        .collect();
    Ok(Some(OsString::from_vec(value)))
}

/// The five settings, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    settings: Vec<Setting>,
}

impl Settings {
    /// Resolves every name: `options` (name, the option's spelling, its
    /// value when given) first, then `env`, then the host's files as
    /// `set_environment()` loads them, read through `fs`.
    pub fn resolve<F, E>(
        fs: &F,
        options: &[(&'static str, &'static str, Option<OsString>)],
        env: E,
    ) -> Result<Settings, Error>
    where
        F: SettingsFs,
        E: Fn(&str) -> Option<OsString>,
    {
        let files = host_files(fs, &env)?;
        let settings = NAMES
            .iter()
            .map(|&name| {
                let option = options
                    .iter()
                    .find(|(n, _, v)| *n == name && v.is_some())
                    .map(|(_, flag, v)| (v.clone(), Source::Option(flag)));
                let (value, source) = option
                    .or_else(|| env(name).map(|v| (Some(v), Source::Environment)))
                    .or_else(|| {
                        files
                            .get(name)
                            .cloned()
                            .flatten()
                            .map(|(v, s)| (Some(v), s))
                    })
                    .unwrap_or((None, Source::NotSet));
                Setting {
                    name,
                    value,
                    source,
                }
            })
            .collect();
        Ok(Settings { settings })
    }

    /// The real host: this process's environment and file system.
    pub fn of_host(
        options: &[(&'static str, &'static str, Option<OsString>)],
    ) -> Result<Settings, Error> {
        Self::resolve(&HostFs, options, |v| std::env::var_os(v))
    }

    pub fn get(&self, name: &str) -> &Setting {
        self.settings
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} is not a queue setting"))
    }

    /// A variable as a program reading its environment after
    /// `set_environment()` would see it: the resolved value of the five
    /// names, `env`'s for any other.
    pub fn var(&self, name: &str, env: impl FnOnce(&str) -> Option<OsString>) -> Option<OsString> {
        match self.settings.iter().find(|s| s.name == name) {
            Some(s) => s.value.clone(),
            None => env(name),
        }
    }

    /// `NAME=value (source)`, or `NAME not set`, for the run's one line.
    pub fn describe(&self, name: &str) -> String {
        let s = self.get(name);
        match &s.value {
            Some(v) => format!("{name}={} ({})", escape_value(v), s.source),
            None => format!("{name} not set"),
        }
    }
}

fn escape_value(v: &OsStr) -> String {
    crate::fsx::escape::path(Path::new(v))
}

/// What the host's files say, `set_environment()`'s two steps.
fn host_files<F, E>(fs: &F, env: &E) -> Result<Overlay, Error>
where
    F: SettingsFs,
    E: Fn(&str) -> Option<OsString>,
{
    let mut overlay = Overlay::new();
    let mut visited = HashSet::new();
    if env("SKIP_LOCAL_ENVIRONMENT").is_none() {
        if let Some(home) = env("HOME") {
            let mut dir = home.into_vec();
            dir.extend_from_slice(b"/.defaultqueue");
            let dir = PathBuf::from(OsString::from_vec(dir));
            // access() failing for any reason skips it, as there.
            if fs.searchable(&dir).unwrap_or(false) {
                Walk {
                    fs,
                    visited: &mut visited,
                    overlay: &mut overlay,
                }
                .envdir(&dir, &[])?;
            }
        }
    }
    let queue_base_set = match overlay.get(QUEUE_BASE) {
        Some(v) => v.is_some(),
        None => env(QUEUE_BASE).is_some(),
    };
    if !queue_base_set {
        let control = env("CONTROLDIR").filter(|c| !c.is_empty()).map_or_else(
            || PathBuf::from(super::config::DEFAULT_CONTROLDIR),
            PathBuf::from,
        );
        let dir = control.join("defaultqueue");
        // Anything but "not there" stops, as set_environment() dies 111
        // ("unable to access defaultqueue").
        if fs.searchable(&dir).map_err(|e| error(&dir, e))? {
            Walk {
                fs,
                visited: &mut visited,
                overlay: &mut overlay,
            }
            .envdir(&dir, &[])?;
        }
    }
    Ok(overlay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::symlink;

    fn write(p: &Path, text: &str) {
        std::fs::write(p, text).unwrap();
    }

    fn resolve_with(vars: &[(&str, &Path)], env: &[(&str, &str)]) -> Result<Settings, Error> {
        let mut map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        map.extend(env.iter().map(|(k, v)| (k.to_string(), OsString::from(v))));
        Settings::resolve(&HostFs, &[], |v| map.get(v).cloned())
    }

    /// svctool's shape: defaultqueue with QUEUE_* and `.envdir` naming
    /// global_vars, whose QUEUE_* are symlinks into defaultqueue.
    fn svctool_host(control: &Path) {
        let dq = control.join("defaultqueue");
        let gv = control.join("global_vars");
        std::fs::create_dir_all(&dq).unwrap();
        std::fs::create_dir_all(&gv).unwrap();
        write(&dq.join("QUEUE_BASE"), "/var/indimail/queue\n");
        write(&dq.join("QUEUE_COUNT"), "5\n");
        write(&dq.join("QUEUE_START"), "1\n");
        write(&dq.join(".envdir"), &format!("{}\n", gv.display()));
        write(&gv.join("BIGTODO"), "0\n");
        write(&gv.join("CONFSPLIT"), "23\n");
        for n in [QUEUE_BASE, QUEUE_COUNT, QUEUE_START] {
            symlink(Path::new("../defaultqueue").join(n), gv.join(n)).unwrap();
        }
    }

    #[test]
    fn the_chain_gives_global_vars_and_a_directory_beats_its_chain() {
        let t = tempfile::tempdir().unwrap();
        let control = t.path().join("control");
        svctool_host(&control);
        let s = resolve_with(&[("CONTROLDIR", &control)], &[]).unwrap();
        let big = s.get(BIGTODO);
        assert_eq!(big.value.as_deref(), Some(OsStr::new("0")));
        assert_eq!(
            big.source,
            Source::File {
                path: control.join("global_vars/BIGTODO"),
                chain: vec![control.join("defaultqueue/.envdir")],
            }
        );
        assert!(s.describe(CONFSPLIT).contains("global_vars/CONFSPLIT via "));
        // global_vars/QUEUE_COUNT leads to the same file, but defaultqueue's
        // own entry is read after its chain and names the source.
        write(&control.join("defaultqueue/QUEUE_COUNT"), "7 \t\n");
        let s = resolve_with(&[("CONTROLDIR", &control)], &[]).unwrap();
        let count = s.get(QUEUE_COUNT);
        assert_eq!(count.value.as_deref(), Some(OsStr::new("7")));
        assert_eq!(
            count.source,
            Source::File {
                path: control.join("defaultqueue/QUEUE_COUNT"),
                chain: vec![]
            }
        );
    }

    #[test]
    fn the_environment_and_options_come_first_and_queue_base_keeps_defaultqueue_out() {
        let t = tempfile::tempdir().unwrap();
        let control = t.path().join("control");
        svctool_host(&control);
        let s = resolve_with(&[("CONTROLDIR", &control)], &[(BIGTODO, "1")]).unwrap();
        assert_eq!(s.get(BIGTODO).source, Source::Environment);
        assert_eq!(s.get(BIGTODO).value.as_deref(), Some(OsStr::new("1")));
        assert!(matches!(s.get(CONFSPLIT).source, Source::File { .. }));
        // QUEUE_BASE in the environment: set_environment() loads nothing.
        let s = resolve_with(&[("CONTROLDIR", &control)], &[(QUEUE_BASE, "/q")]).unwrap();
        assert_eq!(s.get(CONFSPLIT).source, Source::NotSet);
        assert_eq!(s.describe(CONFSPLIT), "CONFSPLIT not set");
        let env: HashMap<&str, OsString> =
            [("CONTROLDIR", control.clone().into_os_string())].into();
        let s = Settings::resolve(&HostFs, &[(CONFSPLIT, "-s", Some("151".into()))], |v| {
            env.get(v).cloned()
        })
        .unwrap();
        assert_eq!(s.describe(CONFSPLIT), "CONFSPLIT=151 (option -s)");
    }

    #[test]
    fn home_defaultqueue_is_read_first_and_its_queue_base_keeps_control_out() {
        let t = tempfile::tempdir().unwrap();
        let control = t.path().join("control");
        svctool_host(&control);
        let home = t.path().join("home");
        let hq = home.join(".defaultqueue");
        std::fs::create_dir_all(&hq).unwrap();
        write(&hq.join("CONFSPLIT"), "7\n");
        write(&hq.join("QUEUE_COUNT"), "3\n");
        let vars = [("CONTROLDIR", control.as_path()), ("HOME", home.as_path())];
        // No QUEUE_BASE at home: defaultqueue is loaded after it and wins.
        let s = resolve_with(&vars, &[]).unwrap();
        assert_eq!(s.get(CONFSPLIT).value.as_deref(), Some(OsStr::new("23")));
        write(&hq.join("QUEUE_BASE"), "/home/queue\n");
        let s = resolve_with(&vars, &[]).unwrap();
        assert_eq!(s.get(CONFSPLIT).value.as_deref(), Some(OsStr::new("7")));
        assert_eq!(
            s.get(CONFSPLIT).source,
            Source::File {
                path: hq.join("CONFSPLIT"),
                chain: vec![]
            }
        );
        assert_eq!(s.get(BIGTODO).source, Source::NotSet);
        // SKIP_LOCAL_ENVIRONMENT, even empty, skips it.
        let s = resolve_with(&vars, &[("SKIP_LOCAL_ENVIRONMENT", "")]).unwrap();
        assert_eq!(s.get(CONFSPLIT).value.as_deref(), Some(OsStr::new("23")));
    }

    #[test]
    fn an_empty_file_unsets_what_the_chain_set() {
        let t = tempfile::tempdir().unwrap();
        let control = t.path().join("control");
        svctool_host(&control);
        write(&control.join("defaultqueue/BIGTODO"), "");
        write(&control.join("defaultqueue/CONFSPLIT"), "\n");
        let s = resolve_with(&[("CONTROLDIR", &control)], &[]).unwrap();
        assert_eq!(s.get(BIGTODO).source, Source::NotSet);
        // A lone newline is the empty string, which is set.
        assert_eq!(s.get(CONFSPLIT).value.as_deref(), Some(OsStr::new("")));
        assert_eq!(file_value(b"1\0x  \nignored"), Ok(Some("1\nx".into())));
    }

    #[test]
    fn a_cycle_ends_and_a_deep_chain_or_a_missing_link_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let control = t.path().join("control");
        svctool_host(&control);
        // global_vars leads back to defaultqueue: visited, skipped.
        symlink(
            control.join("defaultqueue"),
            control.join("global_vars/.envdir"),
        )
        .unwrap();
        let s = resolve_with(&[("CONTROLDIR", &control)], &[]).unwrap();
        assert_eq!(s.get(CONFSPLIT).value.as_deref(), Some(OsStr::new("23")));
        // A chain of distinct directories deeper than MAX_DEPTH.
        let deep = t.path().join("deep");
        for i in 0..=MAX_DEPTH + 1 {
            let d = deep.join(i.to_string());
            std::fs::create_dir_all(&d).unwrap();
            write(
                &d.join(".envdir"),
                &format!("{}\n", deep.join((i + 1).to_string()).display()),
            );
        }
        std::fs::create_dir_all(deep.join((MAX_DEPTH + 2).to_string())).unwrap();
        let e = Settings::resolve(&HostFs, &[], |v| {
            (v == "CONTROLDIR").then(|| t.path().join("c2").into_os_string())
        });
        assert!(e.is_ok(), "no defaultqueue there: nothing read");
        std::fs::create_dir_all(t.path().join("c2")).unwrap();
        symlink(deep.join("0"), t.path().join("c2/defaultqueue")).unwrap();
        let e = Settings::resolve(&HostFs, &[], |v| {
            (v == "CONTROLDIR").then(|| t.path().join("c2").into_os_string())
        })
        .unwrap_err();
        assert!(e.what.contains("deep"), "{e}");
        // .envdir naming a directory that is not there.
        write(&control.join("global_vars/.envfile"), "# none\n");
        std::fs::remove_file(control.join("global_vars/.envdir")).unwrap();
        write(&control.join("global_vars/.envdir"), "/nonexistent/dir\n");
        let e = resolve_with(&[("CONTROLDIR", &control)], &[]).unwrap_err();
        assert_eq!(e.path, Path::new("/nonexistent/dir"));
    }

    #[test]
    fn envfile_lines_set_and_unset_before_the_directory() {
        let t = tempfile::tempdir().unwrap();
        let control = t.path().join("control");
        svctool_host(&control);
        write(
            &control.join("global_vars/.envfile"),
            "  # comment\n\nQUEUE_START=4\nCONFSPLIT=11\nOTHER=x\n",
        );
        // The directory's own CONFSPLIT file still beats its .envfile.
        let s = resolve_with(&[("CONTROLDIR", &control)], &[]).unwrap();
        assert_eq!(s.get(CONFSPLIT).value.as_deref(), Some(OsStr::new("23")));
        // defaultqueue's own QUEUE_START (read last) beats both.
        assert_eq!(s.get(QUEUE_START).value.as_deref(), Some(OsStr::new("1")));
        std::fs::remove_file(control.join("global_vars/CONFSPLIT")).unwrap();
        let s = resolve_with(&[("CONTROLDIR", &control)], &[]).unwrap();
        assert_eq!(s.get(CONFSPLIT).value.as_deref(), Some(OsStr::new("11")));
        write(&control.join("global_vars/.envfile"), "BIGTODO\n");
        let s = resolve_with(&[("CONTROLDIR", &control)], &[]).unwrap();
        assert_eq!(s.get(BIGTODO).value.as_deref(), Some(OsStr::new("0")));
    }

    #[test]
    fn an_unreadable_setting_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let control = t.path().join("control");
        svctool_host(&control);
        std::fs::create_dir(control.join("defaultqueue/BIGTODO")).unwrap();
        let e = resolve_with(&[("CONTROLDIR", &control)], &[]).unwrap_err();
        assert_eq!(e.path, control.join("defaultqueue/BIGTODO"));
        // A dangling link is skipped, as envdir() skips it.
        std::fs::remove_dir(control.join("defaultqueue/BIGTODO")).unwrap();
        std::fs::remove_file(control.join("defaultqueue/QUEUE_COUNT")).unwrap();
        let s = resolve_with(&[("CONTROLDIR", &control)], &[]).unwrap();
        assert_eq!(s.get(QUEUE_COUNT).source, Source::NotSet);
    }
}
