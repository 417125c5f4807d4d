//! queue-fix: observe a queue, plan the repairs, apply them.
