//! Why an injection stops: the exit status qmail-multi's caller sees and
//! the one line that says what went wrong.

use crate::exit::QueueExit;

/// Why an injection stops, with the status its caller sees.
#[derive(Debug)]
pub struct Fatal {
    pub exit: QueueExit,
    pub what: String,
}

impl Fatal {
    pub fn new(exit: QueueExit, what: impl Into<String>) -> Fatal {
        Fatal {
            exit,
            what: what.into(),
        }
    }
}
