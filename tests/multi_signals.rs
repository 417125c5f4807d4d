//! qmail-multi ends with a status its caller understands, not by a signal:
//! the 24-hour alarm (SIGALRM) is exit 52 and stops a hanging filter.

mod multi_support;

use multi_support::*;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[test]
fn the_alarm_is_exit_52_and_kills_the_hung_filter() {
    let t = tempfile::tempdir().unwrap();
    make_queues(t.path(), 1, 1);
    let marker = t.path().join("filter-started");
    let pidfile = t.path().join("filter-pid");
    // The filter hangs (exec keeps the shell's pid); its stderr goes away
    // so the test does not wait on it.
    let filter = format!(
        "exec 2>/dev/null; echo $$ > {}; touch {}; exec sleep 600",
        pidfile.display(),
        marker.display()
    );
    let mut inj = Injection::new(&[])
        .var("QUEUE_BASE", t.path())
        .var("QUEUE_COUNT", "1")
        .var("QUEUEPROG", depositor())
        .var("QMAILHOME", "/")
        .var("FILTERARGS", &filter);
    // Real SIGALRM, as alarm(2) would deliver after 24 hours.
    inj.signal_on_marker = Some((marker, Signal::SIGALRM));
    let r = inj.run();
    r.assert_exit(52);
    assert!(r.stderr.is_empty(), "{}", r.stderr_text());
    let filter_pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = |pid: i32| {
        // Reaped by init, or a zombie: either way no longer running.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(filter_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(filter_pid), "the filter {filter_pid} still runs");
}
