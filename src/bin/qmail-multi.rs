//! qmail-multi: a drop-in qmail-queue that picks one of several queues,
//! optionally filters the message, and execs the real queue program with
//! `QUEUEDIR` set. Message on descriptor 0, envelope on descriptor 1;
//! configuration in the environment (see the README).

fn main() {
    qmail_multi::multi::guard::install();
    let args = std::env::args_os().skip(1).collect();
    std::process::exit(qmail_multi::multi::inject(args));
}
