fn main() {
    // Built in issue 2.
    std::process::exit(qmail_multi::exit::QueueExit::InternalBug.code());
}
