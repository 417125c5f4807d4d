//! `--check`: one status line with perfdata after `|`, and the
//! monitoring-plugins exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN),
//! so queue-stat drops into Nagios or Icinga like `check_mailq`.

use super::model::{health_is_fault, Counts, QueueStat, Snapshot};
use super::table::{age, bytes};
use crate::queue::health::Health;
use std::fmt::Write;

/// A status, ordered as monitoring-plugins' `max_state_alt`: OK < UNKNOWN
/// < WARNING < CRITICAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Unknown,
    Warning,
    Critical,
}

impl Status {
    pub fn code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// The thresholds; a queue is judged against each one given. Upper
/// thresholds alert above the value, lower ones (free space) below it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub warn_age: Option<u64>,
    pub crit_age: Option<u64>,
    pub warn_depth: Option<u64>,
    pub crit_depth: Option<u64>,
    pub warn_free: Option<u64>,
    pub crit_free: Option<u64>,
    pub warn_inodes: Option<u64>,
    pub crit_inodes: Option<u64>,
    /// A queue whose qmail-send is not running is critical.
    pub need_live: bool,
}

/// Seconds, optionally with a unit: `90`, `90s`, `15m`, `2h`, `1d`.
pub fn parse_age(text: &str) -> Result<u64, String> {
    let (digits, unit) = split_unit(text);
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a number of seconds (suffix s, m, h or d allowed)"
            ))
        }
    };
    number(digits)
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{text:?} is not a number of seconds (suffix s, m, h or d allowed)"))
}

/// Bytes, optionally with a binary unit: `512`, `100K`, `2G`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let (digits, unit) = split_unit(text);
    let shift = match unit {
        "" | "B" => 0,
        "K" | "k" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "{text:?} is not a number of bytes (suffix K, M, G or T allowed)"
            ))
        }
    };
    number(digits)
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("{text:?} is not a number of bytes (suffix K, M, G or T allowed)"))
}

/// A plain count.
pub fn parse_count(text: &str) -> Result<u64, String> {
    number(text).ok_or_else(|| format!("{text:?} is not a whole number"))
}

fn split_unit(text: &str) -> (&str, &str) {
    let at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(at)
}

fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The verdict and the line to print.
pub fn check(s: &Snapshot, t: &Thresholds) -> (Status, String) {
    let mut worst = Status::Ok;
    let mut reasons: Vec<(Status, String)> = Vec::new();
    let mut say = |st: Status, why: String| {
        worst = worst.max(st);
        reasons.push((st, why));
    };
    let mut usable = 0;
    for q in &s.queues {
        if q.health == Health::Usable {
            usable += 1;
        }
        judge_queue(q, s, t, &mut say);
    }
    if usable == 0 && !s.queues.is_empty() {
        say(
            Status::Critical,
            "no queue is usable: injections fail".into(),
        );
    }
    for o in &s.orphans {
        say(
            Status::Warning,
            format!("orphan {} holds {} messages", o.label, o.messages),
        );
    }
    if let Some(e) = &s.orphan_error {
        say(Status::Unknown, format!("orphans cannot be searched: {e}"));
    }
    let total = s.total();
    let line = verdict_line(s, worst, usable, reasons, &total);
    let mut line = no_pipe(&line);
    line.push_str(" |");
    perfdata(&mut line, s, t, &total);
    (worst, line)
}

/// Above the critical or the warning threshold.
fn upper(v: u64, warn: Option<u64>, crit: Option<u64>) -> Status {
    if crit.is_some_and(|c| v > c) {
        Status::Critical
    } else if warn.is_some_and(|w| v > w) {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// Below the critical or the warning threshold.
fn lower(v: u64, warn: Option<u64>, crit: Option<u64>) -> Status {
    if crit.is_some_and(|c| v < c) {
        Status::Critical
    } else if warn.is_some_and(|w| v < w) {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// Everything wrong with one queue, said in order.
fn judge_queue(q: &QueueStat, s: &Snapshot, t: &Thresholds, say: &mut impl FnMut(Status, String)) {
    let name = &q.label;
    if q.health != Health::Usable && health_is_fault(q.health) {
        let st = if matches!(q.health, Health::Unreachable(_)) {
            Status::Unknown
        } else {
            Status::Warning
        };
        say(st, format!("{name} {}", q.health));
    }
    if let Some(e) = &q.error {
        say(Status::Unknown, format!("{name} cannot be read: {e}"));
    }
    if let Some(c) = &q.counts {
        let a = c.oldest.unwrap_or(0);
        let st = upper(a, t.warn_age, t.crit_age);
        if st != Status::Ok {
            say(st, format!("{name} oldest message {}", age(a)));
        }
        let st = upper(c.messages, t.warn_depth, t.crit_depth);
        if st != Status::Ok {
            say(st, format!("{name} holds {} messages", c.messages));
        }
        if c.misplaced > 0 {
            say(
                Status::Warning,
                super::model::misplaced_note(name, c.misplaced, s.big_todo, s.classic),
            );
        }
    }
    if let Some(sp) = &q.space {
        let st = lower(sp.free_bytes, t.warn_free, t.crit_free);
        if st != Status::Ok {
            say(st, format!("{name} has {} free", bytes(sp.free_bytes)));
        }
        if let Some(fi) = sp.free_inodes {
            let st = lower(fi, t.warn_inodes, t.crit_inodes);
            if st != Status::Ok {
                say(st, format!("{name} has {fi} free inodes"));
            }
        }
    }
    if t.need_live && exists(q) && q.live != Some(true) {
        let why = match q.live {
            None => "cannot tell whether qmail-send runs",
            _ => "qmail-send is not running",
        };
        say(Status::Critical, format!("{name}: {why}"));
    }
}

/// The text before the perfdata: the reasons, worst first, or the
/// summary of a queue set that is OK.
fn verdict_line(
    s: &Snapshot,
    worst: Status,
    usable: usize,
    mut reasons: Vec<(Status, String)>,
    total: &Counts,
) -> String {
    let mut line = format!("QMAIL-QUEUE {} - ", worst.word());
    if reasons.is_empty() {
        // Disabled is the administrator's choice, not a fault, but the
        // OK line still names it so nobody forgets a queue left disabled.
        let disabled: Vec<&str> = s
            .queues
            .iter()
            .filter(|q| q.health == Health::Disabled)
            .map(|q| q.label.as_str())
            .collect();
        let _ = write!(
            line,
            "{} queue{} usable{}, {} message{}, oldest {}",
            usable,
            if usable == 1 { "" } else { "s" },
            if disabled.is_empty() {
                String::new()
            } else {
                format!(" (disabled: {})", disabled.join(" "))
            },
            total.messages,
            if total.messages == 1 { "" } else { "s" },
            age(total.oldest.unwrap_or(0))
        );
    } else {
        // Worst first, each reason once.
        reasons.sort_by_key(|r| std::cmp::Reverse(r.0));
        let text: Vec<String> = reasons.into_iter().map(|(_, r)| r).collect();
        line.push_str(&text.join("; "));
    }
    line
}

/// The perfdata after `|`: totals, then each queue's.
fn perfdata(line: &mut String, s: &Snapshot, t: &Thresholds, total: &Counts) {
    let range = |w: Option<u64>, c: Option<u64>, lower: bool| {
        let f = |v: Option<u64>| {
            v.map_or(String::new(), |v| {
                if lower {
                    format!("{v}:")
                } else {
                    v.to_string()
                }
            })
        };
        format!("{};{}", f(w), f(c))
    };
    let _ = write!(
        line,
        " messages={};{};0; oldest={}s;{};0;",
        total.messages,
        range(t.warn_depth, t.crit_depth, false),
        total.oldest.unwrap_or(0),
        range(t.warn_age, t.crit_age, false)
    );
    for q in &s.queues {
        let l = perf_label(&q.label);
        if let Some(c) = &q.counts {
            let _ = write!(
                line,
                " '{l}_messages'={};{};0; '{l}_oldest'={}s;{};0;",
                c.messages,
                range(t.warn_depth, t.crit_depth, false),
                c.oldest.unwrap_or(0),
                range(t.warn_age, t.crit_age, false)
            );
        }
        if let Some(sp) = &q.space {
            let _ = write!(
                line,
                " '{l}_free'={}B;{};0;",
                sp.free_bytes,
                range(t.warn_free, t.crit_free, true)
            );
        }
    }
}

fn exists(q: &QueueStat) -> bool {
    !matches!(q.health, Health::Missing | Health::NotADirectory)
}

/// Status text with every `|` written as `\x7c` (as [`crate::fsx::escape`]
/// writes odd bytes): a `|` there would start the perfdata, so a queue
/// path or a configured value holding one could forge figures.
pub fn no_pipe(text: &str) -> String {
    text.replace('|', "\\x7c")
}

/// Perfdata labels may not hold `'`, `=` or `|`; anything else odd is
/// replaced too.
fn perf_label(l: &str) -> String {
    l.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '\'' && c != '=' && c != '|' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_age("90"), Ok(90));
        assert_eq!(parse_age("90s"), Ok(90));
        assert_eq!(parse_age("15m"), Ok(900));
        assert_eq!(parse_age("2h"), Ok(7200));
        assert_eq!(parse_age("1d"), Ok(86_400));
        for bad in ["", "m", "-1", "1x", "1.5h", "1 h", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_bytes("100K"), Ok(102_400));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert!(parse_bytes("2X").is_err());
        assert!(parse_bytes("99999999999T").is_err());
        assert_eq!(parse_count("7"), Ok(7));
        assert!(parse_count("7k").is_err());
    }

    #[test]
    fn worst_wins_in_plugin_order() {
        assert!(Status::Critical > Status::Warning);
        assert!(Status::Warning > Status::Unknown);
        assert!(Status::Unknown > Status::Ok);
        assert_eq!(
            [
                Status::Ok,
                Status::Warning,
                Status::Critical,
                Status::Unknown
            ]
            .map(Status::code),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn perf_labels_are_safe() {
        assert_eq!(perf_label("queue1"), "queue1");
        assert_eq!(perf_label("/q/it's=x y|z"), "/q/it_s_x_y_z");
        assert_eq!(no_pipe("/q|x=1"), "/q\\x7cx=1");
    }
}
