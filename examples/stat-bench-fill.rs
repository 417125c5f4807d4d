//! Fills a queue fast for `bench/queue-stat.sh` and `bench/queue-fix.sh`
//! (never packaged).
//!
//! `stat-bench-fill QUEUE COUNT SPLIT [misnamed]` adds COUNT messages to an
//! existing queue as qmail-queue and qmail-send leave them: the `mess` file
//! named by its inode in subdirectory `inode % SPLIT`, with `info` and
//! `remote` beside it; the message times are spread over the last 5 hours
//! so every age bucket is used. With `misnamed`, every file of a message
//! is named by its inode + 1000000007 instead (in that name's
//! subdirectory), as an interrupted or buggy tool might leave them: a queue
//! for queue-fix to repair. One process writing directly through the
//! layout is orders of magnitude faster than one depositor run per message.

use nix::sys::stat::futimens;
use nix::sys::time::TimeSpec;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let misnamed = match args.get(4).map(String::as_str) {
        None => false,
        Some("misnamed") if args.len() == 5 => true,
        _ => {
            eprintln!("usage: stat-bench-fill QUEUE COUNT SPLIT [misnamed]");
            std::process::exit(100);
        }
    };
    if args.len() < 4 {
        eprintln!("usage: stat-bench-fill QUEUE COUNT SPLIT [misnamed]");
        std::process::exit(100);
    }
    let queue = PathBuf::from(&args[1]);
    let count: u64 = args[2].parse().expect("COUNT");
    let split: u64 = args[3].parse().expect("SPLIT");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let pid = std::process::id();
    let create = |p: &Path, mode: u32| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    for i in 0..count {
        let tmp = queue.join("pid").join(format!("{pid}.{i}"));
        let mut mess = create(&tmp, 0o644);
        let ino = mess.metadata().unwrap().ino();
        let named = if misnamed { ino + 1_000_000_007 } else { ino };
        let sub = (named % split).to_string();
        let name = named.to_string();
        let at = |dir: &str| queue.join(dir).join(&sub).join(&name);
        fs::hard_link(&tmp, at("mess")).unwrap();
        fs::remove_file(&tmp).unwrap();
        write!(mess, "Subject: bench {i}\n\nbody of message {i}\n").unwrap();
        let born = TimeSpec::new(now - (i % 18_000) as i64, 0);
        futimens(&mess, &born, &born).unwrap();
        let mut info = create(&at("info"), 0o600);
        info.write_all(b"Fbench@example.org\0").unwrap();
        futimens(&info, &born, &born).unwrap();
        create(&at("remote"), 0o600)
            .write_all(b"Trcpt@example.net\0")
            .unwrap();
    }
}
