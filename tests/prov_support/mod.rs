//! The provisioning tests' sandbox: a mount namespace whose `/etc` is a
//! scratch copy, so that the qmail users the provisioning creates never
//! reach the host.

use std::path::Path;
use std::process::Command;

use super::pkg_support::{have, is_root, read};

/// A mount namespace whose /etc is a private copy: `useradd` and
/// `groupadd` (run by the provisioning) write there, and queue-fix looks
/// the qmail users up there.
pub struct Sandbox {
    pub etc: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Result<Sandbox, String> {
        if !is_root() {
            return Err("needs root (mount namespace, chown, useradd)".into());
        }
        for t in ["unshare", "mount", "useradd", "groupadd", "cp"] {
            if !have(t) {
                return Err(format!("missing tool: {t}"));
            }
        }
        let etc = tempfile::Builder::new()
            .prefix("prov-etc")
            .tempdir()
            .unwrap();
        let ok = Command::new("cp")
            .args(["-a", "/etc/."])
            .arg(etc.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("cannot copy /etc".into());
        }
        let probe = Command::new("unshare")
            .args(["-m", "--propagation", "private", "true"])
            .status()
            .is_ok_and(|s| s.success());
        if !probe {
            return Err("unshare -m does not work here".into());
        }
        Ok(Sandbox { etc })
    }

    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$0\" /etc || exit 99; exec \"$@\"")
            .arg(self.etc.path())
            .arg(program);
        c
    }

    /// uid of a user, gid of a group, from the private /etc.
    pub fn id(&self, file: &str, name: &str) -> Option<u32> {
        read(self.etc.path().join(file)).lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| f[2].parse().unwrap())
        })
    }
}
