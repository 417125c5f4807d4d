//! The human view: two aligned tables (depth with a bar per queue; health,
//! space and ages), then one line per problem. Fits 80 columns for ten
//! `queueN` rows.

use super::model::{health_word, Counts, QueueStat, Snapshot, AGE_BUCKETS};
use crate::queue::health::Health;
use std::fmt::Write;

/// The widest line written for `queueN` labels: one short of 80, so no
/// terminal wraps it.
pub const WIDTH: usize = 79;

/// A count in at most 6 characters: exact below a million.
pub fn count(n: u64) -> String {
    match n {
        0..=999_999 => n.to_string(),
        1_000_000..=9_999_999 => format!("{:.2}M", n as f64 / 1e6),
        10_000_000..=999_999_999 => format!("{}M", n / 1_000_000),
        1_000_000_000..=9_999_999_999 => format!("{:.2}G", n as f64 / 1e9),
        _ => format!("{}G", n / 1_000_000_000),
    }
}

/// Bytes in at most 5 characters, binary units.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1023.95 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v < 9.95 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

/// An age in at most 6 characters (7 beyond 99 days).
pub fn age(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Age bucket headings, matching [`super::model::AGE_BOUNDS`].
const AGE_HEADINGS: [&str; AGE_BUCKETS] = ["<5m", "<10m", "<20m", "<40m", "<80m", "<160m", "older"];

fn send_word(q: &QueueStat) -> &'static str {
    match (q.health, q.live) {
        (Health::Missing | Health::NotADirectory, _) => "-",
        (_, Some(true)) => "live",
        (_, Some(false)) => "down",
        (_, None) => "?",
    }
}

fn state_word(q: &QueueStat) -> &'static str {
    if q.error.is_some() && q.health == Health::Usable {
        "unreadable"
    } else {
        health_word(q.health)
    }
}

pub fn render(s: &Snapshot) -> String {
    let labels: Vec<&str> = s.queues.iter().map(|q| q.label.as_str()).collect();
    let lw = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let total = s.total();
    let mut out = String::new();
    let _ = writeln!(out, "{}", s.title);

    depth_table(&mut out, s, &labels, lw, &total);
    health_table(&mut out, s, &labels, lw, &total);
    scheduler_table(&mut out, s, &labels, lw);
    notes(&mut out, s, &labels);
    out
}

/// Depth: counts, size, oldest, and a bar scaled to the fullest queue.
fn depth_table(out: &mut String, s: &Snapshot, labels: &[&str], lw: usize, total: &Counts) {
    let head = format!(
        "{:<lw$} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}",
        "queue", "mess", "todo", "local", "remote", "bounce", "bytes", "oldest"
    );
    let bar_width = WIDTH.saturating_sub(head.chars().count() + 2).max(8);
    let fullest = s
        .queues
        .iter()
        .filter_map(|q| q.counts.map(|c| c.messages))
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "{head}");
    let row = |label: &str, c: &Counts| {
        format!(
            "{:<lw$} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}",
            label,
            count(c.messages),
            count(c.preprocess),
            count(c.local),
            count(c.remote),
            count(c.bounces),
            bytes(c.bytes),
            c.oldest.map_or_else(|| "-".to_string(), age),
        )
    };
    for (q, label) in s.queues.iter().zip(labels) {
        match &q.counts {
            Some(c) => {
                let n = bar_len(c.messages, fullest, bar_width);
                let _ = writeln!(out, "{}  {}", row(label, c), "#".repeat(n));
            }
            None => {
                let _ = writeln!(
                    out,
                    "{:<lw$} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}  ({})",
                    label,
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    state_word(q)
                );
            }
        }
    }
    let _ = writeln!(out, "{}", row("total", total).trim_end());
    out.push('\n');
}

/// Health, space, and the ages of the messages (qshape's buckets).
fn health_table(out: &mut String, s: &Snapshot, labels: &[&str], lw: usize, total: &Counts) {
    let _ = write!(
        out,
        "{:<lw$} {:<10} {:<4} {:>6} {:>6}",
        "queue", "health", "send", "free", "inodes"
    );
    for h in AGE_HEADINGS {
        let _ = write!(out, " {h:>5}");
    }
    out.push('\n');
    let ages = |out: &mut String, c: Option<&Counts>| {
        for i in 0..AGE_BUCKETS {
            let _ = write!(
                out,
                " {:>5}",
                c.map_or_else(|| "-".into(), |c| count(c.ages[i]))
            );
        }
        out.push('\n');
    };
    for (q, label) in s.queues.iter().zip(labels) {
        let (free, inodes) = match q.space {
            Some(sp) => (
                bytes(sp.free_bytes),
                sp.free_inodes.map_or_else(|| "-".into(), count),
            ),
            None => ("-".into(), "-".into()),
        };
        let _ = write!(
            out,
            "{:<lw$} {:<10} {:<4} {:>6} {:>6}",
            label,
            state_word(q),
            send_word(q),
            free,
            inodes
        );
        ages(out, q.counts.as_ref());
    }
    let _ = write!(
        out,
        "{:<lw$} {:<10} {:<4} {:>6} {:>6}",
        "total", "", "", "", ""
    );
    ages(out, Some(total));
}

/// qscheduler's view (DYNAMIC_QUEUE), as `qmail-qread -i` shows it
/// upstream: concurrency used/maximum, local and remote, and its flag.
fn scheduler_table(out: &mut String, s: &Snapshot, labels: &[&str], lw: usize) {
    if s.queues.iter().any(|q| q.sched.is_some()) {
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<lw$} {:>11} {:>11} qscheduler",
            "queue", "local", "remote"
        );
        for (q, label) in s.queues.iter().zip(labels) {
            let Some(l) = &q.sched else { continue };
            let _ = writeln!(
                out,
                "{:<lw$} {:>11} {:>11} {}",
                label,
                format!("{}/{}", l.local_used, l.local_max),
                format!("{}/{}", l.remote_used, l.remote_max),
                if l.disabled != 0 {
                    "disabled"
                } else {
                    "enabled"
                }
            );
        }
    }
}

/// One line per thing an administrator should look at.
fn notes(out: &mut String, s: &Snapshot, labels: &[&str]) {
    let mut notes = Vec::new();
    for (q, label) in s.queues.iter().zip(labels) {
        if q.health != Health::Usable {
            notes.push(format!(
                "{label}: {} {}",
                crate::fsx::escape::path(&q.path),
                q.health
            ));
        }
        if let Some(e) = &q.error {
            notes.push(format!("{label}: cannot read: {e}"));
        }
        if let Some(c) = q.counts.filter(|c| c.misplaced > 0) {
            notes.push(super::model::misplaced_note(
                label,
                c.misplaced,
                s.big_todo,
                s.classic,
            ));
        }
    }
    if let Some(why) = &s.sched_note {
        notes.push(format!("qscheduler: not shown: {why}"));
    }
    for o in &s.orphans {
        notes.push(format!(
            "orphan: {} holds {} message{} (queue-fix --base --retire moves them)",
            o.label,
            o.messages,
            if o.messages == 1 { "" } else { "s" }
        ));
    }
    if let Some(e) = &s.orphan_error {
        notes.push(format!("orphans: cannot search: {e}"));
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
}

/// At least one mark for a queue that holds anything.
fn bar_len(n: u64, fullest: u64, width: usize) -> usize {
    if n == 0 || fullest == 0 {
        return 0;
    }
    let len = (u128::from(n) * width as u128).div_ceil(u128::from(fullest));
    (len as usize).clamp(1, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_figures() {
        assert_eq!(count(999_999), "999999");
        assert_eq!(count(1_234_567), "1.23M");
        assert_eq!(count(123_456_789), "123M");
        assert_eq!(count(1_234_567_890), "1.23G");
        assert_eq!(bytes(0), "0B");
        assert_eq!(bytes(1023), "1023B");
        assert_eq!(bytes(1536), "1.5K");
        assert_eq!(bytes(1024 * 1023), "1023K");
        assert_eq!(bytes(1024 * 1024 - 1), "1.0M");
        assert_eq!(bytes(u64::MAX), "16E");
        assert_eq!(age(59), "59s");
        assert_eq!(age(3599), "59m59s");
        assert_eq!(age(3600 * 23 + 60 * 59), "23h59m");
        assert_eq!(age(86_400 * 3 + 3600 * 4), "3d04h");
    }

    #[test]
    fn bars_scale_to_the_fullest() {
        assert_eq!(bar_len(0, 10, 20), 0);
        assert_eq!(bar_len(10, 10, 20), 20);
        assert_eq!(bar_len(1, 1_000_000, 20), 1);
        assert_eq!(bar_len(5, 10, 20), 10);
    }
}
