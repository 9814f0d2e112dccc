//! Placement in order of first use with backtracking: the units live when a unit starts are
//! exactly those it meets, so each choice is among the free gaps at that moment.

use super::greedy::{order, Priority};
use super::problem::Problem;
use super::{Placement, Placer};

/// Nodes the chronological search may visit.
const CHRONO_MAX_NODES: usize = 20_000;

/// Looks for a placement inside `cap` bytes, taking tensors in order of first use, with
/// backtracking. A tensor meets in time exactly the placed tensors still live when it
/// starts, so each choice is among the free gaps at that moment; it may go at either end
/// of a gap. Both ends matter: a chain of growing tensors that each overlap the next (a
/// DenseNet block's concatenations) fits only by alternating between bottom and top.
fn fit_chronologically(inst: &Problem, cap: usize) -> Option<Vec<Option<usize>>> {
    struct Search<'a> {
        inst: &'a Problem,
        order: Vec<usize>,
        offsets: Vec<Option<usize>>,
        cap: usize,
        nodes: usize,
    }
    impl Search<'_> {
        fn go(&mut self, k: usize) -> bool {
            if k == self.order.len() {
                return true;
            }
            self.nodes += 1;
            if self.inst.out_of_work(self.nodes) {
                self.nodes = CHRONO_MAX_NODES + 1;
            }
            if self.nodes > CHRONO_MAX_NODES {
                return false;
            }
            let i = self.order[k];
            let need = self.inst.size[i];
            if need > self.cap {
                return false;
            }
            let mut forbidden = self.inst.forbidden(i, &self.offsets);
            // Above the cap, kept sorted (`forbidden` is): inserted, not sorted again.
            let cap = ((self.cap - need) as i64 + 1, i64::MAX);
            forbidden.insert(forbidden.partition_point(|f| f.0 <= cap.0), cap);
            let last_i = self.inst.lifetime(i).last;
            // Candidates: both ends of every gap, tightest gap first; at equal slack the end
            // whose neighbour dies closest to this unit.
            let neighbour_last = |o: usize| -> usize {
                let here = self.inst.meeting(i).iter().map(|m| m.0).filter(|&j| {
                    self.offsets[j].is_some_and(|oj| oj + self.inst.size[j] == o || oj == o + need)
                });
                here.map(|j| self.inst.lifetime(j).last.abs_diff(last_i))
                    .min()
                    .unwrap_or(usize::MAX / 2)
            };
            let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
            for (lo, hi) in self.inst.gaps(&forbidden) {
                if hi == usize::MAX {
                    continue;
                }
                let slack = hi - lo;
                candidates.push((slack, neighbour_last(lo), lo));
                if hi > lo {
                    candidates.push((slack, neighbour_last(hi), hi));
                }
            }
            candidates.sort_unstable();
            for (_, _, o) in candidates {
                self.offsets[i] = Some(o);
                if self.go(k + 1) {
                    return true;
                }
                if self.nodes > CHRONO_MAX_NODES {
                    break;
                }
            }
            self.offsets[i] = None;
            false
        }
    }
    let mut s = Search {
        inst,
        order: order(inst, Priority::FirstUse),
        offsets: vec![None; inst.size.len()],
        cap,
        nodes: 0,
    };
    if s.go(0) {
        Some(s.offsets)
    } else {
        None
    }
}

/// [`fit_chronologically`] as a [`Placer`]: looks for a placement within `cap` bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Chronological;

impl Placer for Chronological {
    fn name(&self) -> &'static str {
        "chronological"
    }

    fn place(&self, p: &Problem, cap: usize) -> Option<Placement> {
        Some(Placement::of(p, fit_chronologically(p, cap)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::problem::toy;
    use super::*;

    /// DenseNet's growing concatenations: each unit meets the next only, and they fit in the
    /// bound only by alternating between the bottom and the top of the arena.
    #[test]
    fn growing_chain_fits_by_alternating_ends() {
        let p = toy::problem(&[(16, 0, 1), (32, 1, 2), (48, 2, 3), (64, 3, 4)], 16);
        let bound = p.step_live_bytes.iter().copied().max().unwrap();
        let found = Chronological.place(&p, bound).expect("fits the bound");
        assert_eq!(found.arena, bound);
        assert!(toy::sound(&p, &found.offsets));
        assert!(Chronological.place(&p, bound - 16).is_none());
    }

    #[test]
    fn what_it_finds_is_sound_and_within_the_cap() {
        for seed in 0..50 {
            let p = toy::random(seed, 12);
            let cap = p.step_live_bytes.iter().copied().max().unwrap() + 32;
            if let Some(found) = Chronological.place(&p, cap) {
                assert!(found.arena <= cap, "{seed}");
                assert!(toy::sound(&p, &found.offsets), "{seed}");
            }
        }
    }
}
