//! qmail-multi: choose a queue, optionally filter, exec the queue program.
