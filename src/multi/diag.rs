//! Diagnostics: through `tracing`, set up only when something is about to
//! be logged, so a successful injection opens no logger connection.
//!
//! Destination: descriptor 2 when the operator sets `QMAIL_MULTI_DEBUG`
//! (non-empty; debug level, including the chosen queue), else the systemd
//! journal when its socket exists, else nowhere. Descriptor 1 is the
//! envelope input and is never written.

use std::path::Path;
use std::sync::Once;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// The variable that sends diagnostics to stderr.
pub const DEBUG_VARIABLE: &str = "QMAIL_MULTI_DEBUG";
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

static INIT: Once = Once::new();

/// Whether the operator asked for diagnostics on stderr.
pub fn on_stderr() -> bool {
    std::env::var_os(DEBUG_VARIABLE).is_some_and(|v| !v.is_empty())
}

/// Installs the subscriber on first use; later calls cost one atomic load.
pub fn init() {
    INIT.call_once(|| {
        if on_stderr() {
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .without_time()
                .with_target(false)
                .with_ansi(false);
            let _ = tracing::subscriber::set_global_default(
                tracing_subscriber::registry()
                    .with(LevelFilter::DEBUG)
                    .with(layer),
            );
        } else if Path::new(JOURNAL_SOCKET).exists() {
            if let Ok(layer) = tracing_journald::layer() {
                let layer = layer.with_syslog_identifier("qmail-multi".into());
                let _ = tracing::subscriber::set_global_default(
                    tracing_subscriber::registry()
                        .with(LevelFilter::INFO)
                        .with(layer),
                );
            }
        }
    });
}

/// Logs through `tracing` after making sure a subscriber is in place.
#[macro_export]
macro_rules! diag {
    ($level:ident, $($arg:tt)*) => {{
        $crate::multi::diag::init();
        ::tracing::$level!($($arg)*);
    }};
}
