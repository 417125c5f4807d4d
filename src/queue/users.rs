//! The qmail accounts behind the layout's roles, as numeric ids.

use super::layout::{Role, GROUP};
use std::fmt;

/// Whose ids a queue is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owners {
    /// The qmail accounts (`qmailq`, `qmails`, `qmailr`, group `qmail`);
    /// in qmta mode `qmailq` plays every role.
    Qmail { qmta: bool },
    /// The invoking user and group for every role: demos and unprivileged
    /// tests.
    Invoker,
}

/// Numeric ids for every role, resolved once per run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ids {
    pub qmailq: u32,
    pub qmails: u32,
    pub qmailr: u32,
    pub qmail_gid: u32,
}

impl Ids {
    pub fn uid(&self, role: Role) -> u32 {
        match role {
            Role::Queue => self.qmailq,
            Role::Send => self.qmails,
            Role::Remote => self.qmailr,
        }
    }

    pub fn gid(&self) -> u32 {
        self.qmail_gid
    }

    /// Every role played by one uid and gid.
    pub fn single(uid: u32, gid: u32) -> Ids {
        Ids {
            qmailq: uid,
            qmails: uid,
            qmailr: uid,
            qmail_gid: gid,
        }
    }
}

/// A qmail account or group that does not exist on this system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingAccount {
    pub name: &'static str,
    pub is_group: bool,
}

impl fmt::Display for MissingAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.is_group { "group" } else { "user" };
        write!(f, "{what} {} does not exist", self.name)
    }
}

impl std::error::Error for MissingAccount {}

/// Looks the accounts up in the system's user and group databases.
pub fn resolve(owners: Owners) -> Result<Ids, MissingAccount> {
    match owners {
        Owners::Invoker => Ok(Ids::single(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )),
        Owners::Qmail { qmta } => {
            let uid = |role: Role| {
                let name = role.in_mode(qmta).user_name();
                users::get_user_by_name(name)
                    .map(|u| u.uid())
                    .ok_or(MissingAccount {
                        name,
                        is_group: false,
                    })
            };
            let gid = users::get_group_by_name(GROUP)
                .map(|g| g.gid())
                .ok_or(MissingAccount {
                    name: GROUP,
                    is_group: true,
                })?;
            Ok(Ids {
                qmailq: uid(Role::Queue)?,
                qmails: uid(Role::Send)?,
                qmailr: uid(Role::Remote)?,
                qmail_gid: gid,
            })
        }
    }
}
