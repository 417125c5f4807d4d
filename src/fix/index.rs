//! Which `mess` files exist, looked up by name for the message check:
//! one `fstatat` where the name says, a list of the few elsewhere.

use super::bucket::MessIndex;
use crate::fsx::dir::{open_dir_at, stat_at, Found};
use crate::queue::found::split_subdirs;
use crate::queue::layout::{is_todo_or_intd, Layout, MESS};
use crate::queue::name::{parse_inode, split_index};
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// Looks `mess` files up by name through open subdirectory descriptors:
/// one `fstatat` in the subdirectory the name implies; the few `mess`
/// files that sit elsewhere (misplaced, or above a lowered split) are
/// found through a list of them, made by one pass over the names of `mess`
/// the first time a lookup misses (never in a queue without strays).
pub struct RealIndex {
    split: u32,
    /// Sorted by subdirectory number.
    mess: Vec<(u32, OwnedFd)>,
    /// The flat message directories (`bounce`; `todo`, `intd` without
    /// `BIGTODO`).
    flat: Vec<(&'static str, OwnedFd)>,
    /// Numeric names found outside their subdirectory, and where: a
    /// Bloom filter of `(name, index into mess)`, of a fixed size whatever
    /// the number of such names (a queue of misplaced messages may hold
    /// them all). A hit is confirmed by `fstatat`, so a false one costs a
    /// lookup, never a wrong answer.
    elsewhere: OnceLock<Bloom>,
}

/// A fixed-size Bloom filter of `(name, subdirectory index)` pairs.
struct Bloom {
    bits: Vec<u64>,
    /// Subdirectories whose listing failed: always looked in.
    unlisted: Vec<bool>,
    /// Nothing inserted and every listing read: no lookup needed (a queue
    /// whose strays have no message anywhere).
    empty: bool,
}

impl Bloom {
    /// 2^23 bits (1 MiB): with 1,000,000 names in it about one
    /// subdirectory in 30 is looked in for nothing, far fewer in any real
    /// queue.
    const BITS: u64 = 1 << 23;
    const HASHES: u64 = 3;

    fn new(subdirs: usize) -> Bloom {
        Bloom {
            bits: vec![0; (Self::BITS / 64) as usize],
            unlisted: vec![false; subdirs],
            empty: true,
        }
    }

    /// Bit positions by double hashing of one 64-bit mix of the pair.
    fn positions(name: u64, i: usize) -> impl Iterator<Item = u64> {
        let mix = |mut x: u64| {
            // splitmix64's finaliser: every input bit moves every output bit.
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        let h = mix(name ^ mix(i as u64 + 1));
        let (a, b) = (h, (h >> 32) | 1);
        (0..Self::HASHES).map(move |k| a.wrapping_add(k.wrapping_mul(b)) % Self::BITS)
    }

    fn insert(&mut self, name: u64, i: usize) {
        self.empty = false;
        for p in Self::positions(name, i) {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    fn may_hold(&self, name: u64, i: usize) -> bool {
        self.unlisted[i]
            || Self::positions(name, i).all(|p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

impl RealIndex {
    pub fn open(root: &OwnedFd, layout: &Layout) -> io::Result<RealIndex> {
        let mut mess = Vec::new();
        if let Some(fd) = open_dir_at(root, MESS)? {
            for sub in split_subdirs(&fd)?.0 {
                if let Some(sfd) = open_dir_at(&fd, &sub.to_string())? {
                    mess.push((sub, sfd));
                }
            }
        }
        let mut flat = Vec::new();
        for dir in layout.flat_message_dirs() {
            if let Some(fd) = open_dir_at(root, dir)? {
                flat.push((dir, fd));
            }
        }
        Ok(RealIndex {
            split: layout.split,
            mess,
            flat,
            elsewhere: OnceLock::new(),
        })
    }

    fn elsewhere(&self) -> &Bloom {
        self.elsewhere.get_or_init(|| {
            let mut bloom = Bloom::new(self.mess.len());
            for (i, (sub, fd)) in self.mess.iter().enumerate() {
                // A subdirectory whose listing fails is looked in for every
                // name instead.
                let listed = crate::fsx::dir::for_each_name(fd, |name| {
                    if let Some(n) = crate::queue::name::parse_inode(name.as_bytes()) {
                        if split_index(n, self.split) != *sub {
                            bloom.insert(n, i);
                        }
                    }
                    Ok(())
                });
                if listed.is_err() {
                    bloom.unlisted[i] = true;
                    bloom.empty = false;
                }
            }
            bloom
        })
    }
}

impl RealIndex {
    /// Calls `each` with `mess/S/N` for every regular `mess` file not named
    /// by its inode in its subdirectory: the blocked moves found again when
    /// there were too many to remember. A listing that fails is skipped
    /// (the next run finds what it held).
    pub(super) fn each_misnamed(&self, each: &mut dyn FnMut(&Path)) {
        for (sub, fd) in &self.mess {
            let _ = crate::fsx::dir::for_each_name(fd, |name| {
                if let Ok(Some(st)) = stat_at(fd, name) {
                    let healthy = parse_inode(name.as_bytes()) == Some(st.ino)
                        && split_index(st.ino, self.split) == *sub;
                    if st.kind == Found::File && !healthy {
                        each(&Path::new(MESS).join(sub.to_string()).join(name));
                    }
                }
                Ok(())
            });
        }
    }
}

impl MessIndex for RealIndex {
    fn has_mess(&self, name: u64) -> bool {
        let text = name.to_string();
        let expected = split_index(name, self.split);
        // An error looking is taken as "there": a file is called a stray
        // only when its message is certainly gone.
        let found = |fd: &OwnedFd| match stat_at(fd, text.as_str()) {
            Ok(Some(st)) => st.kind == Found::File,
            Ok(None) => false,
            Err(_) => true,
        };
        if let Ok(i) = self.mess.binary_search_by_key(&expected, |(s, _)| *s) {
            if found(&self.mess[i].1) {
                return true;
            }
        }
        let bloom = self.elsewhere();
        !bloom.empty
            && self
                .mess
                .iter()
                .enumerate()
                .any(|(i, (sub, fd))| *sub != expected && bloom.may_hold(name, i) && found(fd))
    }

    fn has_flat(&self, dir: &str, name: &OsStr) -> bool {
        // A numbered subdirectory of a flat todo is the conversion's, not
        // a message's file.
        self.flat.iter().any(|(d, fd)| {
            *d == dir
                && match stat_at(fd, name) {
                    Ok(Some(st)) => st.kind != Found::Dir || !is_todo_or_intd(dir),
                    Ok(None) => false,
                    Err(_) => true,
                }
        })
    }
}
