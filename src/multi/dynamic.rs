//! `DYNAMIC_QUEUE`: the least-loaded queue from qscheduler's figures
//! ([`crate::queue::scheduler`] reads them), the health probe having the
//! last word.

use super::select::{Choice, Health, NoQueue, Probe, Random, Skipped};
use crate::queue::scheduler::QueueLoad;

/// Indexes of the eligible queues, least loaded first, ties in random order.
pub fn order(loads: &[QueueLoad], rng: &mut impl Random) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..loads.len()).filter(|&i| loads[i].eligible()).collect();
    // Shuffle, then a stable sort: equal loads keep their random order.
    for i in (1..idx.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        idx.swap(i, j);
    }
    idx.sort_by(|&a, &b| loads[a].cmp_load(&loads[b]));
    idx
}

/// The least-loaded usable queue: segment `i` (from 1) is queue
/// `start + i - 1`; the health probe still has the last word, so a
/// least-loaded queue that is full on disk gives way to the next.
pub fn choose(
    start: u64,
    loads: &[QueueLoad],
    probe: &mut impl Probe,
    rng: &mut impl Random,
) -> Result<Choice, NoQueue> {
    let mut skipped = Vec::new();
    for i in order(loads, rng) {
        let Some(queue) = start.checked_add(i as u64) else {
            continue;
        };
        match probe.health(queue) {
            Health::Usable => return Ok(Choice { queue, skipped }),
            health => skipped.push(Skipped { queue, health }),
        }
    }
    // Only now, for the diagnostic: the queues qscheduler ruled out.
    for (i, l) in loads.iter().enumerate() {
        if !l.eligible() {
            if let Some(queue) = start.checked_add(i as u64) {
                skipped.push(Skipped {
                    queue,
                    health: Health::Disabled,
                });
            }
        }
    }
    skipped.sort_by_key(|s| s.queue);
    Err(NoQueue { skipped })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multi::select::SplitMix;
    use crate::queue::scheduler::parse_load;

    fn bytes(ints: &[i32]) -> Vec<u8> {
        ints.iter().flat_map(|i| i.to_ne_bytes()).collect()
    }

    fn load(lu: i32, ru: i32, lm: i32, rm: i32, off: i32) -> QueueLoad {
        parse_load("queueX", &bytes(&[lu, ru, lm, rm, off])).unwrap()
    }

    #[test]
    fn least_loaded_first_disabled_and_zero_maximums_never() {
        let loads = [
            load(5, 0, 10, 10, 0), // 0.5
            load(1, 9, 10, 10, 0), // 0.9 (remote decides)
            load(0, 0, 10, 10, 1), // disabled
            load(0, 0, 0, 10, 0),  // no local concurrency
            load(1, 1, 10, 20, 0), // 0.1
            load(2, 2, 10, 10, 0), // 0.2
        ];
        let mut rng = SplitMix::seeded(1);
        assert_eq!(order(&loads, &mut rng), [4, 5, 0, 1]);
    }

    #[test]
    fn ties_are_broken_at_random() {
        let loads = [
            load(1, 1, 4, 4, 0),
            load(2, 2, 8, 8, 0),
            load(0, 0, 4, 4, 0),
        ];
        let mut firsts = [0; 3];
        let mut rng = SplitMix::seeded(9);
        for _ in 0..1000 {
            let o = order(&loads, &mut rng);
            assert_eq!(o[0], 2);
            firsts[o[1]] += 1;
        }
        assert!(firsts[0] > 400 && firsts[1] > 400, "{firsts:?}");
    }
}
