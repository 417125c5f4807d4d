//! The environment every program resolves the same way (`QUEUE_BASE`,
//! `QUEUE_COUNT`, `QUEUE_START`, `control/queue_base`, `QMAILHOME`, and
//! qmail-multi's own variables, so queue-stat refuses what it refuses),
//! read once, checked strictly.
//!
//! Pure: the caller hands in a lookup function, so every rule is
//! unit-tested without touching the process environment.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Build-time defaults (upstream's `auto_qmail`, `controldir`, `qmail-queue`).
pub const DEFAULT_QMAILHOME: &str = "/var/indimail";
pub const DEFAULT_CONTROLDIR: &str = "/etc/indimail/control";
pub const DEFAULT_QUEUEPROG: &str = "/usr/sbin/qmail-queue";
pub const DEFAULT_TMPDIR: &str = "/tmp";
pub const DEFAULT_COUNT: u32 = 10;
pub const DEFAULT_START: u64 = 1;
/// More queues than this is a typo, not a configuration: selection may
/// probe every one of them when most are unusable.
pub const MAX_COUNT: u32 = 100_000;

/// Set by qmail-multi in the environment of the program it runs: how many
/// times this injection has passed through qmail-multi. A chain that comes
/// back (QUEUEPROG naming qmail-multi by any path, a wrapper, a
/// `qmail-queue` that is really qmail-multi) counts up and stops at
/// [`MAX_PASSES`] instead of exec'ing forever.
pub const PASSES_VARIABLE: &str = "QMAIL_MULTI_PASSES";
/// Passes a legitimate chain may make: `qmail-multi qmail-dkim` whose
/// qmail-dkim runs qmail-multi again is two; a loop reaches this at once.
pub const MAX_PASSES: u32 = 4;

/// Where the queue goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `QUEUEDIR` was given: exactly this queue, no selection.
    Fixed(PathBuf),
    /// Choose one of `base/queue<start> .. base/queue<start+count-1>`.
    Select { base: Base, start: u64, count: u32 },
}

/// Where `QUEUE_BASE` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    Given(PathBuf),
    /// Unset: first line of `<controldir>/queue_base`, else `<qmailhome>/queue`.
    Fallback {
        controldir: PathBuf,
        qmailhome: PathBuf,
    },
}

/// Everything one injection needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub target: Target,
    /// Bytes that must stay free on a queue's filesystem.
    pub min_free: Option<u64>,
    pub queue_prog: PathBuf,
    pub qmail_home: PathBuf,
    /// Shell command the message is piped through first.
    pub filter: Option<OsString>,
    pub make_seekable: bool,
    pub tmpdir: PathBuf,
    /// `DYNAMIC_QUEUE`: least-loaded choice from qscheduler's segments.
    pub dynamic: bool,
    /// Earlier qmail-multi passes of this injection ([`PASSES_VARIABLE`]).
    pub passes: u32,
}

/// A variable whose value is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: OsString,
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}=\"{}\" is not {}",
            self.variable,
            crate::fsx::escape::name(&self.value),
            self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// Canonical unsigned decimal: digits only, no sign, no blanks, no
/// overflow. envdir files end in a newline that envdir already strips, so a
/// blank here is a real mistake worth refusing.
fn parse_decimal(text: &OsStr) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

impl Config {
    /// Reads the configuration through `var`, which returns a variable's
    /// value; an empty value counts as unset (envdir's convention).
    pub fn from_env<F>(var: F) -> Result<Config, ConfigError>
    where
        F: Fn(&str) -> Option<OsString>,
    {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        let number = |name: &'static str, expected: &'static str, ok: &dyn Fn(u64) -> bool| {
            get(name)
                .map(|value| match parse_decimal(&value) {
                    Some(n) if ok(n) => Ok(n),
                    _ => Err(ConfigError {
                        variable: name,
                        value,
                        expected,
                    }),
                })
                .transpose()
        };
        let path =
            |name: &str, default: &str| get(name).map_or_else(|| default.into(), PathBuf::from);

        let count = number("QUEUE_COUNT", "a whole number from 1 to 100000", &|n| {
            (1..=u64::from(MAX_COUNT)).contains(&n)
        })?
        .map_or(DEFAULT_COUNT, |n| n as u32);
        let start = number("QUEUE_START", "a whole number of at least 0", &|_| true)?
            .unwrap_or(DEFAULT_START);
        if start.checked_add(u64::from(count) - 1).is_none() {
            return Err(ConfigError {
                variable: "QUEUE_START",
                value: start.to_string().into(),
                expected: "small enough that QUEUE_START+QUEUE_COUNT-1 fits in 64 bits",
            });
        }
        let min_free = number("MIN_FREE", "a whole number of bytes", &|_| true)?;
        let passes = number(
            PASSES_VARIABLE,
            "a whole number (qmail-multi sets it for the program it runs)",
            &|n| n <= u64::from(u32::MAX),
        )?
        .map_or(0, |n| n as u32);
        let qmail_home = path("QMAILHOME", DEFAULT_QMAILHOME);
        let target = match get("QUEUEDIR") {
            Some(dir) => Target::Fixed(dir.into()),
            None => Target::Select {
                base: match get("QUEUE_BASE") {
                    Some(base) => Base::Given(base.into()),
                    None => Base::Fallback {
                        controldir: path("CONTROLDIR", DEFAULT_CONTROLDIR),
                        qmailhome: qmail_home.clone(),
                    },
                },
                start,
                count,
            },
        };
        Ok(Config {
            target,
            min_free,
            queue_prog: path("QUEUEPROG", DEFAULT_QUEUEPROG),
            qmail_home,
            filter: get("FILTERARGS"),
            make_seekable: get("MAKE_SEEKABLE").is_some(),
            tmpdir: path("TMPDIR", DEFAULT_TMPDIR),
            dynamic: get("DYNAMIC_QUEUE").is_some(),
            passes,
        })
    }
}

/// `QUEUE_BASE` from the first line of a `control/queue_base` file's text;
/// `None` when that line is empty (then `<QMAILHOME>/queue` applies).
pub fn base_from_control(text: &[u8]) -> Option<PathBuf> {
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        None
    } else {
        Some(PathBuf::from(OsStr::from_bytes(line)))
    }
}

/// `QUEUE_BASE`, or the first line of `control/queue_base`, or
/// `QMAILHOME/queue`.
pub fn resolve_base(base: &Base) -> Result<PathBuf, String> {
    match base {
        Base::Given(path) => Ok(path.clone()),
        Base::Fallback {
            controldir,
            qmailhome,
        } => {
            let file = controldir.join("queue_base");
            match std::fs::read(&file) {
                Ok(text) => Ok(base_from_control(&text).unwrap_or_else(|| qmailhome.join("queue"))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(qmailhome.join("queue")),
                Err(e) => Err(format!(
                    "cannot read {}: {e}",
                    crate::fsx::escape::path(&file)
                )),
            }
        }
    }
}

/// The directory of queue number `n` under `base`.
pub fn queue_path(base: &std::path::Path, n: u64) -> PathBuf {
    base.join(format!("queue{n}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::from_env(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.target,
            Target::Select {
                base: Base::Fallback {
                    controldir: DEFAULT_CONTROLDIR.into(),
                    qmailhome: DEFAULT_QMAILHOME.into()
                },
                start: 1,
                count: 10
            }
        );
        assert_eq!(c.min_free, None);
        assert_eq!(c.queue_prog, PathBuf::from(DEFAULT_QUEUEPROG));
        assert_eq!(c.qmail_home, PathBuf::from(DEFAULT_QMAILHOME));
        assert_eq!(c.filter, None);
        assert!(!c.make_seekable);
        assert_eq!(c.tmpdir, PathBuf::from("/tmp"));
        assert!(!c.dynamic);
        assert_eq!(c.passes, 0);
    }

    #[test]
    fn empty_is_unset() {
        let all_empty: Vec<(&str, &str)> = [
            "QUEUEDIR",
            "QUEUE_BASE",
            "QUEUE_COUNT",
            "QUEUE_START",
            "MIN_FREE",
            "QUEUEPROG",
            "QMAILHOME",
            "CONTROLDIR",
            "FILTERARGS",
            "MAKE_SEEKABLE",
            "TMPDIR",
            "DYNAMIC_QUEUE",
            PASSES_VARIABLE,
        ]
        .iter()
        .map(|v| (*v, ""))
        .collect();
        assert_eq!(config(&all_empty).unwrap(), config(&[]).unwrap());
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("QUEUE_BASE", "/q"),
            ("QUEUE_COUNT", "3"),
            ("QUEUE_START", "0"),
            ("MIN_FREE", "18446744073709551615"),
            ("QUEUEPROG", "/bin/qq"),
            ("QMAILHOME", "/home/q"),
            ("FILTERARGS", "cat -v"),
            ("MAKE_SEEKABLE", "1"),
            ("TMPDIR", "/var/tmp"),
            ("DYNAMIC_QUEUE", "1"),
            (PASSES_VARIABLE, "2"),
        ])
        .unwrap();
        assert_eq!(
            c.target,
            Target::Select {
                base: Base::Given("/q".into()),
                start: 0,
                count: 3
            }
        );
        assert_eq!(c.min_free, Some(u64::MAX));
        assert_eq!(c.queue_prog, PathBuf::from("/bin/qq"));
        assert_eq!(c.qmail_home, PathBuf::from("/home/q"));
        assert_eq!(c.filter, Some("cat -v".into()));
        assert!(c.make_seekable);
        assert_eq!(c.tmpdir, PathBuf::from("/var/tmp"));
        assert!(c.dynamic);
        assert_eq!(c.passes, 2);

        let c = config(&[("CONTROLDIR", "/c"), ("QMAILHOME", "/h")]).unwrap();
        assert!(
            matches!(c.target, Target::Select { base: Base::Fallback { controldir, qmailhome }, .. }
            if controldir.as_path() == std::path::Path::new("/c") && qmailhome.as_path() == std::path::Path::new("/h"))
        );
    }

    #[test]
    fn queuedir_bypasses_selection() {
        let c = config(&[("QUEUEDIR", "/x/queue7"), ("QUEUE_BASE", "/q")]).unwrap();
        assert_eq!(c.target, Target::Fixed("/x/queue7".into()));
    }

    #[test]
    fn bad_numbers_name_the_variable_and_value() {
        for var in ["QUEUE_COUNT", "QUEUE_START", "MIN_FREE", PASSES_VARIABLE] {
            for bad in ["abc", "-3", "99999999999999999999", " 5", "5x", "+5", "5 "] {
                let e = config(&[(var, bad)]).unwrap_err();
                assert_eq!(e.variable, var);
                assert_eq!(e.value, OsString::from(bad));
                let text = e.to_string();
                assert!(text.starts_with(&format!("{var}=")), "{text}");
            }
        }
        assert_eq!(
            config(&[("QUEUE_COUNT", "0")]).unwrap_err().variable,
            "QUEUE_COUNT"
        );
        assert_eq!(
            config(&[("QUEUE_COUNT", "100001")]).unwrap_err().variable,
            "QUEUE_COUNT"
        );
        assert!(config(&[("QUEUE_COUNT", "100000")]).is_ok());
        assert!(config(&[("QUEUE_START", "0"), ("MIN_FREE", "0")]).is_ok());
    }

    #[test]
    fn the_last_queue_number_must_not_overflow() {
        let max = u64::MAX.to_string();
        assert!(config(&[("QUEUE_START", &max), ("QUEUE_COUNT", "1")]).is_ok());
        let e = config(&[("QUEUE_START", &max), ("QUEUE_COUNT", "2")]).unwrap_err();
        assert_eq!(e.variable, "QUEUE_START");
    }

    #[test]
    fn control_file_first_line() {
        assert_eq!(
            base_from_control(b"/var/q\n/other\n"),
            Some("/var/q".into())
        );
        assert_eq!(base_from_control(b"/var/q"), Some("/var/q".into()));
        assert_eq!(base_from_control(b"/var/q\r\n"), Some("/var/q".into()));
        assert_eq!(base_from_control(b"\n/var/q\n"), None);
        assert_eq!(base_from_control(b""), None);
    }
}
