//! Permanent guard: a seeded fuzz of ~200 qmail-multi runs with a bad
//! configuration mixed into otherwise plausible ones. Every run must end
//! with 55, queue nothing, and keep descriptors 1 (the envelope input, a
//! socket here so a stray write shows) and 2 silent.

mod multi_support;

use multi_support::*;
use qmail_multi::multi::select::SplitMix;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

const RUNS: u64 = 200;
const SEED: u64 = 0x7175_6575_6d75_6c74;

/// A value that is not a canonical decimal (or is out of range) for `var`.
fn bad_value(var: &str, rng: &mut SplitMix) -> OsString {
    let pick = |rng: &mut SplitMix, n: u64| rng.next_u64() % n;
    let junk: Vec<u8> = (0..1 + pick(rng, 12))
        .map(|_| {
            let alphabet = b"0123456789 -+x\t\n.eE\xff\xfe\x80/";
            alphabet[pick(rng, alphabet.len() as u64) as usize]
        })
        .collect();
    let digits_then_junk = format!(
        "{}{}",
        pick(rng, 1000),
        ["x", " ", "\n", "k", ".5"][pick(rng, 5) as usize]
    );
    let mut choices: Vec<OsString> = vec![
        digits_then_junk.into(),
        format!("-{}", 1 + pick(rng, 99)).into(),
        format!("+{}", pick(rng, 99)).into(),
        "99999999999999999999999".into(),
        OsString::from_vec(vec![b'1', 0xff]),
    ];
    // Only decimal junk is certain to be refused: "1" alone could be valid.
    if junk.iter().any(|b| !b.is_ascii_digit()) {
        choices.push(OsString::from_vec(junk));
    }
    match var {
        "QUEUE_COUNT" => {
            choices.push("0".into());
            choices.push(format!("{}", 100_001 + pick(rng, 1_000_000)).into());
        }
        "QMAIL_MULTI_PASSES" => choices.push(format!("{}", 4 + pick(rng, 1000)).into()),
        _ => {}
    }
    choices.swap_remove(pick(rng, choices.len() as u64) as usize)
}

#[test]
fn bad_configurations_are_55_with_nothing_written_and_silent_descriptors() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    let queues = make_queues(&base, 1, 3);
    let mut rng = SplitMix::seeded(SEED);
    let vars = [
        "QUEUE_COUNT",
        "QUEUE_START",
        "MIN_FREE",
        "QMAIL_MULTI_PASSES",
    ];
    for run in 0..RUNS {
        let mut inj = Injection::new(&[]).var("QUEUE_BASE", &base).depositing();
        // Plausible company for the bad value, chosen at random.
        for (k, v) in [
            ("FILTERARGS", "cat"),
            ("DYNAMIC_QUEUE", "1"),
            ("MAKE_SEEKABLE", "1"),
            ("TMPDIR", "/tmp"),
            ("QUEUE_COUNT", "3"),
        ] {
            if rng.next_u64() % 2 == 0 {
                inj = inj.var(k, v);
            }
        }
        if rng.next_u64() % 3 == 0 {
            inj.args = vec![depositor().into()];
        }
        let bad_var = vars[(rng.next_u64() % vars.len() as u64) as usize];
        let bad = bad_value(bad_var, &mut rng);
        // The last setting of a variable wins.
        inj.env.retain(|(k, _)| k != bad_var);
        inj.env.push((bad_var.into(), bad.clone()));
        inj.fd1_socket = true;
        let r = inj.run();
        let what = format!("run {run}: {bad_var}={bad:?}");
        assert_eq!(r.code(), Some(55), "{what}: {:?}", r.status);
        assert!(r.stderr.is_empty(), "{what}: stderr {:?}", r.stderr_text());
        assert!(r.fd1_written.is_empty(), "{what}: wrote to fd 1");
        for q in &queues {
            assert_eq!(files_written(q), 0, "{what}: wrote into {}", q.display());
        }
    }
}
