//! The Prometheus text exposition format, for node_exporter's textfile
//! collector: one family per quantity, every sample labelled with its
//! queue.

use super::model::{health_word, Counts, QueueStat, Snapshot, AGE_BOUNDS, HEALTH_WORDS};
use crate::queue::scheduler::QueueLoad;
use std::fmt::Write;

/// A label value: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One gauge family over the queues for which `value` has a figure.
fn gauge(
    out: &mut String,
    s: &Snapshot,
    name: &str,
    help: &str,
    value: impl Fn(&QueueStat) -> Option<u64>,
) {
    family(out, name, "gauge", help);
    for q in &s.queues {
        if let Some(v) = value(q) {
            let _ = writeln!(out, "{name}{{queue=\"{}\"}} {v}", label(&q.label));
        }
    }
}

/// The per-queue counts, one gauge family each: name, help, figure.
type CountGauge = (&'static str, &'static str, fn(&Counts) -> u64);
const COUNT_GAUGES: [CountGauge; 8] = [
    (
        "qmail_queue_messages",
        "Messages in the queue (files in mess/).",
        |c| c.messages,
    ),
    (
        "qmail_queue_unpreprocessed_messages",
        "Messages qmail-send has not preprocessed yet (in todo/ or intd/).",
        |c| c.preprocess,
    ),
    (
        "qmail_queue_misplaced_todo_messages",
        "Messages waiting in the todo/intd shape BIGTODO does not choose: qmail-send does not see them.",
        |c| c.misplaced,
    ),
    (
        "qmail_queue_local_pending_messages",
        "Messages with local deliveries pending (files in local/).",
        |c| c.local,
    ),
    (
        "qmail_queue_remote_pending_messages",
        "Messages with remote deliveries pending (files in remote/).",
        |c| c.remote,
    ),
    (
        "qmail_queue_bounce_pending_messages",
        "Messages with a bounce pending (files in bounce/).",
        |c| c.bounces,
    ),
    (
        "qmail_queue_mess_bytes",
        "Total size of the files in mess/.",
        |c| c.bytes,
    ),
    (
        "qmail_queue_oldest_message_age_seconds",
        "Seconds since the oldest message was injected (its mess file's time); 0 when empty.",
        |c| c.oldest.unwrap_or(0),
    ),
];

/// qscheduler's figures per queue, local and remote: name, help, values.
type SchedGauge = (&'static str, &'static str, fn(&QueueLoad) -> (i32, i32));
const SCHED_GAUGES: [SchedGauge; 2] = [
    (
        "qmail_queue_scheduler_concurrency_used",
        "Deliveries in progress as qscheduler's segment counts them (DYNAMIC_QUEUE).",
        |l| (l.local_used, l.remote_used),
    ),
    (
        "qmail_queue_scheduler_concurrency_max",
        "Concurrency limit as qscheduler's segment gives it (DYNAMIC_QUEUE).",
        |l| (l.local_max, l.remote_max),
    ),
];

pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let o = &mut out;
    for (name, help, value) in COUNT_GAUGES {
        gauge(o, s, name, help, |q| q.counts.as_ref().map(value));
    }
    age_histogram(o, s);
    gauge(
        o,
        s,
        "qmail_queue_filesystem_free_bytes",
        "Bytes available to unprivileged writers on the queue's filesystem.",
        |q| q.space.map(|sp| sp.free_bytes),
    );
    gauge(
        o,
        s,
        "qmail_queue_filesystem_free_inodes",
        "Inodes available on the queue's filesystem (absent where it counts none).",
        |q| q.space.and_then(|sp| sp.free_inodes),
    );
    health_states(o, s);
    gauge(
        o,
        s,
        "qmail_queue_live",
        "1 when qmail-send holds the queue's lock/sendmutex (absent when it cannot be told).",
        |q| q.live.map(u64::from),
    );
    gauge(
        o,
        s,
        "qmail_queue_readable",
        "1 when every directory of the queue could be read.",
        |q| Some(u64::from(q.counts.is_some() && q.error.is_none())),
    );
    scheduler_gauges(o, s);
    gauge(
        o,
        s,
        "qmail_queue_scheduler_disabled",
        "1 while qscheduler's segment marks the queue disabled (DYNAMIC_QUEUE).",
        |q| q.sched.map(|l| u64::from(l.disabled != 0)),
    );
    orphans(o, s);
    out
}

/// Each queue's message ages as a histogram over qshape's buckets.
fn age_histogram(o: &mut String, s: &Snapshot) {
    let name = "qmail_queue_message_age_seconds";
    family(
        o,
        name,
        "histogram",
        "Seconds since each message was injected (its mess file's time), qshape's doubling buckets.",
    );
    for q in &s.queues {
        let Some(c) = &q.counts else { continue };
        let l = label(&q.label);
        let mut cumulative = 0;
        for (i, bound) in AGE_BOUNDS.iter().enumerate() {
            cumulative += c.ages[i];
            let _ = writeln!(
                o,
                "{name}_bucket{{queue=\"{l}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            o,
            "{name}_bucket{{queue=\"{l}\",le=\"+Inf\"}} {}",
            c.messages
        );
        let _ = writeln!(o, "{name}_sum{{queue=\"{l}\"}} {}", c.age_sum);
        let _ = writeln!(o, "{name}_count{{queue=\"{l}\"}} {}", c.messages);
    }
}

/// Each queue's health, one series per state.
fn health_states(o: &mut String, s: &Snapshot) {
    let name = "qmail_queue_health";
    family(
        o,
        name,
        "gauge",
        "The queue's health as qmail-multi judges it: 1 for the current state.",
    );
    for q in &s.queues {
        let now = health_word(q.health);
        for w in HEALTH_WORDS {
            let _ = writeln!(
                o,
                "{name}{{queue=\"{}\",state=\"{w}\"}} {}",
                label(&q.label),
                u8::from(*w == now)
            );
        }
    }
}

/// qscheduler's segments (DYNAMIC_QUEUE): what `qmail-qread -i` shows.
fn scheduler_gauges(o: &mut String, s: &Snapshot) {
    for (name, help, value) in SCHED_GAUGES {
        family(o, name, "gauge", help);
        for q in &s.queues {
            let Some(l) = &q.sched else { continue };
            let (local, remote) = value(l);
            let q = label(&q.label);
            let _ = writeln!(o, "{name}{{queue=\"{q}\",delivery=\"local\"}} {local}");
            let _ = writeln!(o, "{name}{{queue=\"{q}\",delivery=\"remote\"}} {remote}");
        }
    }
}

/// The messages stranded outside the configured range.
fn orphans(o: &mut String, s: &Snapshot) {
    let name = "qmail_queue_orphan_messages";
    family(
        o,
        name,
        "gauge",
        "Messages in a queue directory outside the configured range (stranded).",
    );
    for orphan in &s.orphans {
        let _ = writeln!(
            o,
            "{name}{{queue=\"{}\"}} {}",
            label(&orphan.label),
            orphan.messages
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
