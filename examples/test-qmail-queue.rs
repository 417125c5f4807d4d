//! A faithful qmail-queue for tests, benchmarks and the demo (never
//! packaged): message on descriptor 0, envelope on descriptor 1, the queue
//! in `QUEUEDIR`, split in `CONFSPLIT` (default 151), `todo`/`intd` flat
//! when `BIGTODO=0` (as IndiMail 3.x's qmail-queue). Exits with
//! qmail-queue's codes. `SYNC=0` skips the fsyncs.

use qmail_multi::exit::QueueExit;
use qmail_multi::queue::deposit::{deposit, read_envelope_from_fd1, DepositOptions};
use qmail_multi::queue::layout::{parse_big_todo, Layout};
use qmail_multi::queue::name::{parse_split, DEFAULT_SPLIT};
use std::path::PathBuf;
use std::process::exit;

fn main() {
    let queue = match std::env::var_os("QUEUEDIR") {
        Some(q) if !q.is_empty() => PathBuf::from(q),
        _ => die(QueueExit::QueueDir, "QUEUEDIR is not set"),
    };
    let split = match std::env::var("CONFSPLIT") {
        Ok(s) if !s.is_empty() => {
            parse_split(&s).unwrap_or_else(|e| die(QueueExit::CannotReadConfig, &e))
        }
        _ => DEFAULT_SPLIT,
    };
    if !queue.join("mess").is_dir() {
        die(
            QueueExit::QueueDir,
            &format!("{} is not a queue", queue.display()),
        );
    }
    let sync = std::env::var("SYNC").map_or(true, |v| v != "0");
    let big_todo = match std::env::var("BIGTODO") {
        Ok(s) => parse_big_todo(&s).unwrap_or_else(|e| die(QueueExit::CannotReadConfig, &e)),
        Err(_) => true,
    };
    let opts = DepositOptions {
        layout: Layout {
            big_todo,
            ..Layout::new(split)
        },
        sync,
        received_line: true,
    };
    // qmail-queue reads the whole message before it reads the envelope.
    let mut stdin = std::io::stdin().lock();
    let mut message = Vec::new();
    if let Err(e) = std::io::Read::read_to_end(&mut stdin, &mut message) {
        die(
            QueueExit::CannotReadInput,
            &format!("reading the message: {e}"),
        );
    }
    let envelope = read_envelope_from_fd1().unwrap_or_else(|e| die(e.exit, &e.what));
    match deposit(&queue, &mut message.as_slice(), &envelope, opts) {
        Ok(_) => exit(0),
        Err(e) => die(e.exit, &e.what),
    }
}

fn die(exit_code: QueueExit, what: &str) -> ! {
    eprintln!("test-qmail-queue: {what}");
    exit(exit_code.code())
}
