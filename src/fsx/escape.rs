//! One place that turns names from the file system into text that is safe
//! to print or log.
//!
//! Queue directories are writable by the qmail accounts, so a file name can
//! hold a newline (forging a line of `queue-fix -N` output that scripts
//! read), a terminal escape sequence, or bytes that are not UTF-8. Every
//! name printed by the programs of this package goes through [`name`] or
//! [`path`]: printable ASCII other than the backslash stays as it is,
//! everything else becomes `\xNN`, so the output is one line per report,
//! ASCII only, and a reader can recover the exact bytes.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `bytes` with every byte outside printable ASCII, and the backslash,
/// written as `\xNN`.
pub fn bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// A file name, escaped.
pub fn name(n: &OsStr) -> String {
    bytes(n.as_bytes())
}

/// A path, escaped.
pub fn path(p: &Path) -> String {
    bytes(p.as_os_str().as_bytes())
}

/// `Display` for a path, escaped: `format!("{}", Escaped(p))`.
pub struct Escaped<'a>(pub &'a Path);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&path(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_newlines_escapes_and_non_utf8_become_hex() {
        let raw = b"x\nchown 0:0 Q (was 0:0)\x1b[2J\xff\\ok";
        let e = bytes(raw);
        assert_eq!(e, "x\\x0achown 0:0 Q (was 0:0)\\x1b[2J\\xff\\x5cok");
        assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_eq!(
            path(Path::new("/var/qmail/queue1/info/5/123")),
            "/var/qmail/queue1/info/5/123"
        );
        // UTF-8 outside ASCII (a bidi override, say) is escaped too.
        assert_eq!(name(OsStr::new("a\u{202e}b")), "a\\xe2\\x80\\xaeb");
    }
}
