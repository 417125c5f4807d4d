//! Process-wide safety: qmail-multi must end with an exit status its
//! caller understands, never by a signal or an unwinding panic.

use crate::exit::QueueExit;
use nix::sys::signal::{sigaction, signal, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicI32, Ordering};

/// 24 hours: below qmail-send's 36-hour limit for stale files.
pub const ALARM_SECONDS: u32 = 24 * 60 * 60;

/// The running filter's pid (0: none), so the alarm can stop it too.
static FILTER_PID: AtomicI32 = AtomicI32::new(0);

/// Records the filter being waited for (0 when it has been reaped).
pub fn filter_running(pid: i32) {
    FILTER_PID.store(pid, Ordering::SeqCst);
}

extern "C" fn on_alarm(_: nix::libc::c_int) {
    let filter = FILTER_PID.load(Ordering::SeqCst);
    // SAFETY: kill and _exit are async-signal-safe.
    unsafe {
        if filter > 0 {
            nix::libc::kill(filter, nix::libc::SIGKILL);
        }
        nix::libc::_exit(QueueExit::Timeout.code())
    }
}

/// Descriptors 0, 1 and 2 must be open, so no file we open takes one of
/// their numbers: a closed one is opened on /dev/null (what std's runtime
/// does, which qmail-multi's `no_main` start skips).
fn open_standard_descriptors() {
    use nix::libc;
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll on a valid array of three pollfd; open with a static
    // C string. Nothing else runs yet.
    unsafe {
        if libc::poll(fds.as_mut_ptr(), 3, 0) == -1 {
            return;
        }
        for p in fds {
            if p.revents & libc::POLLNVAL != 0
                && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) != p.fd
            {
                libc::_exit(QueueExit::CannotReadInput.code());
            }
        }
    }
}

/// Ignores SIGPIPE, arms the 24-hour alarm (exit 52) and turns a panic
/// into exit 81 with a diagnostic instead of a message on stderr.
pub fn install() {
    open_standard_descriptors();
    // SAFETY: ignoring a signal and installing an async-signal-safe
    // handler are sound at any time.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
        let _ = sigaction(
            Signal::SIGALRM,
            &SigAction::new(
                SigHandler::Handler(on_alarm),
                SaFlags::empty(),
                SigSet::empty(),
            ),
        );
    }
    nix::unistd::alarm::set(ALARM_SECONDS);
    std::panic::set_hook(Box::new(|info| {
        crate::diag!(error, "internal bug: {info}");
        std::process::exit(QueueExit::InternalBug.code());
    }));
}
