//! IndiMail 3.x's special queues: directories under `QUEUE_BASE` besides
//! `queue<N>` that are queues like the others, each with its own shape.
//!
//! Source: the spec (`queue-fix.md`, "Today's IndiMail (3.x) calls
//! queue-fix") after IndiMail 3.x's svctool, which creates `nqueue`,
//! `slowq` (its install check runs `queue-fix -N -r` on it) and `qmta`
//! (qmta-send's queue, `queue-fix -m`); IndiMail's own queue listing
//! knows the same three (`indimail-mta-x/qmail-showctl.c` revision 1.14,
//! commit eabaaf3e46f4b857b914b2a4a7a1bed3a2957024, `show_queues()`:
//! `extra_queue[] = {"slowq", "nqueue", "qmta"}`, each a queue when its
//! `lock/sendmutex` exists). `queue-fix --base`, queue-stat
//! and the provisioning read this table, so a special queue is never taken
//! for an orphan or a stray directory.

use super::layout::Layout;

/// One special queue: its directory name under `QUEUE_BASE` and how its
/// layout differs from the base's.
#[derive(Clone, Copy, Debug)]
pub struct Special {
    /// The directory name under `QUEUE_BASE`.
    pub name: &'static str,
    /// What it is for, for messages and reports.
    pub purpose: &'static str,
    /// The queue-fix option that gives it its shape (`""` for none).
    pub option: &'static str,
    shape: fn(Layout) -> Layout,
}

impl Special {
    /// This queue's layout, from the one the options give every queue of
    /// the base (split, `BIGTODO`, trash, tcpto size).
    pub fn layout(&self, base: Layout) -> Layout {
        (self.shape)(base)
    }
}

fn plain(base: Layout) -> Layout {
    base
}

fn with_ratelimit(base: Layout) -> Layout {
    Layout {
        ratelimit: true,
        ..base
    }
}

fn in_qmta_mode(base: Layout) -> Layout {
    Layout { qmta: true, ..base }
}

/// The table.
pub const SPECIAL: &[Special] = &[
    Special {
        name: "nqueue",
        purpose: "mail held for a spam filter",
        option: "",
        shape: plain,
    },
    Special {
        name: "slowq",
        purpose: "rate-limited delivery",
        option: "-r",
        shape: with_ratelimit,
    },
    Special {
        name: "qmta",
        purpose: "qmta-send's queue",
        option: "-m",
        shape: in_qmta_mode,
    },
];

/// The special queue of this directory name, if it is one.
pub fn find(name: &str) -> Option<&'static Special> {
    SPECIAL.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_special_queue_differs_only_where_it_must() {
        let base = Layout {
            big_todo: false,
            ..Layout::new(23)
        };
        assert_eq!(find("nqueue").unwrap().layout(base), base);
        let slowq = find("slowq").unwrap().layout(base);
        assert_eq!(
            slowq,
            Layout {
                ratelimit: true,
                ..base
            }
        );
        let qmta = find("qmta").unwrap().layout(base);
        assert_eq!(qmta, Layout { qmta: true, ..base });
        assert!(find("queue1").is_none());
        assert!(find("").is_none());
    }
}
