//! Message names: the inode number of the `mess` file, as decimal text, and
//! the split subdirectory it implies. Inode numbers are `u64` throughout:
//! XFS inode64 and large ext4 hand out numbers at and above 2^32.

use std::path::PathBuf;

/// IndiMail's default and build-time maximum split.
pub const DEFAULT_SPLIT: u32 = 151;
pub const MAX_SPLIT: u32 = 151;

/// A message's inode number, parsed from a file name. Only canonical
/// decimal is accepted (no sign, no leading zero, no overflow), so a name
/// that parses is exactly the name qmail-queue would have written.
pub fn parse_inode(name: &[u8]) -> Option<u64> {
    if name.is_empty() || name.len() > 20 || (name[0] == b'0' && name.len() > 1) {
        return None;
    }
    name.iter().try_fold(0u64, |acc, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// A split subdirectory's number, parsed from its name (same rules).
pub fn parse_subdir(name: &[u8]) -> Option<u32> {
    parse_inode(name).and_then(|n| u32::try_from(n).ok())
}

/// The split subdirectory that holds every file of message `inode`.
pub fn split_index(inode: u64, split: u32) -> u32 {
    assert!(split >= 1, "split must be at least 1");
    // The remainder is below `split`, which fits in u32.
    (inode % u64::from(split)) as u32
}

/// Where a message's file lives inside the queue, relative to the queue
/// root: `dir/<inode % split>/<inode>`, or `dir/<inode>` for a directory
/// that is not split (`bounce`).
pub fn message_path(dir: &str, inode: u64, split: u32, is_split: bool) -> PathBuf {
    let mut p = PathBuf::from(dir);
    if is_split {
        p.push(split_index(inode, split).to_string());
    }
    p.push(inode.to_string());
    p
}

/// A split value as the operator gave it (`-s` or `CONFSPLIT`): 1..=MAX_SPLIT.
pub fn parse_split(text: &str) -> Result<u32, String> {
    match parse_subdir(text.trim().as_bytes()) {
        Some(n) if (1..=MAX_SPLIT).contains(&n) => Ok(n),
        _ => Err(format!(
            "split {text:?} is not a whole number from 1 to {MAX_SPLIT}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_decimal_only() {
        assert_eq!(parse_inode(b"0"), Some(0));
        assert_eq!(parse_inode(b"12345"), Some(12345));
        assert_eq!(parse_inode(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"01",
            b"+1",
            b"-1",
            b"1a",
            b" 1",
            b"18446744073709551616",
            b"1.tmp",
        ] {
            assert_eq!(parse_inode(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn large_inodes_split_without_sign_or_truncation() {
        // 2^31 and 2^32 + 5: a signed 32-bit scan gets both wrong.
        assert_eq!(
            split_index(2_147_483_648, 151),
            (2_147_483_648u64 % 151) as u32
        );
        assert_eq!(
            split_index(4_294_967_301, 151),
            4_294_967_301u64.rem_euclid(151) as u32
        );
        assert_eq!(
            message_path("mess", 4_294_967_301, 23, true),
            PathBuf::from(format!("mess/{}/4294967301", 4_294_967_301u64 % 23))
        );
        assert_eq!(
            message_path("bounce", 7, 23, false),
            PathBuf::from("bounce/7")
        );
    }

    #[test]
    fn split_bounds() {
        assert_eq!(parse_split("23"), Ok(23));
        assert!(parse_split("0").is_err());
        assert!(parse_split("152").is_err());
        assert!(parse_split("x").is_err());
    }
}
