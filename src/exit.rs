//! qmail-queue's exit-code table, shared by qmail-multi and the test
//! depositor. 0 is queued, 11..=40 permanent, everything else temporary.

/// Why an injection did not queue, as the caller will see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum QueueExit {
    AddressTooLong = 11,
    PermanentlyRefused = 31,
    OutOfMemory = 51,
    Timeout = 52,
    WriteFailed = 53,
    CannotReadInput = 54,
    CannotReadConfig = 55,
    PipeFailed = 60,
    QmailHome = 61,
    QueueDir = 62,
    TempFileFailed = 68,
    TemporarilyRefused = 71,
    InternalBug = 81,
    Custom = 88,
    EnvelopeFormat = 91,
    CannotExec = 120,
    ForkFailed = 121,
    WaitFailed = 122,
    FilterCrashed = 123,
}

impl QueueExit {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Whether the sender gets a bounce rather than a retry.
    pub fn is_permanent(self) -> bool {
        (11..=40).contains(&self.code())
    }

    /// The text qmail-queue's callers print for each status.
    pub fn meaning(self) -> &'static str {
        match self {
            QueueExit::AddressTooLong => "address too long",
            QueueExit::PermanentlyRefused => "mail server permanently rejected message",
            QueueExit::OutOfMemory => "out of memory",
            QueueExit::Timeout => "timeout",
            QueueExit::WriteFailed => "write error or disk full",
            QueueExit::CannotReadInput => "unable to read the message or envelope",
            QueueExit::CannotReadConfig => "unable to read a configuration value",
            QueueExit::PipeFailed => "unable to create a pipe or duplicate a descriptor",
            QueueExit::QmailHome => "trouble in the qmail home directory",
            QueueExit::QueueDir => "trouble making the queue directory",
            QueueExit::TempFileFailed => "unable to create a temporary file",
            QueueExit::TemporarilyRefused => "mail server temporarily rejected message",
            QueueExit::InternalBug => "internal bug",
            QueueExit::Custom => "custom error (reason on descriptor 2)",
            QueueExit::EnvelopeFormat => "envelope format error",
            QueueExit::CannotExec => "unable to run the queue program",
            QueueExit::ForkFailed => "unable to fork",
            QueueExit::WaitFailed => "unable to wait for a child",
            QueueExit::FilterCrashed => "the filter was killed by a signal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bounce_codes_are_permanent() {
        assert!(QueueExit::PermanentlyRefused.is_permanent());
        assert!(QueueExit::AddressTooLong.is_permanent());
        assert!(!QueueExit::TemporarilyRefused.is_permanent());
        assert!(!QueueExit::Custom.is_permanent());
        assert!(!QueueExit::CannotReadConfig.is_permanent());
    }
}
