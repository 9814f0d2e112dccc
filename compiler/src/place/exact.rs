//! Exhaustive placement for small problems: branch and bound over offsets.

use super::greedy::{order, Priority};
use super::problem::Problem;
use super::{Placement, Placer};

/// Instances up to this many tensors get the exhaustive placement search.
pub const EXACT_MAX_TENSORS: usize = 64;
/// Nodes the exhaustive placement search may visit.
const EXACT_MAX_NODES: usize = 50_000;

/// Branch and bound over offsets: tensors largest first, each at offset 0 or on top of a
/// placed tensor it meets in time, pruned at the best arena known. Returns a placement
/// smaller than `known`, if it finds one within its node budget.
fn exact(inst: &Problem, bound: usize, known: usize) -> Option<(Vec<Option<usize>>, usize)> {
    struct Search<'a> {
        inst: &'a Problem,
        order: Vec<usize>,
        offsets: Vec<Option<usize>>,
        best: usize,
        best_offsets: Option<Vec<Option<usize>>>,
        bound: usize,
        nodes: usize,
    }
    impl Search<'_> {
        fn go(&mut self, k: usize, top: usize) {
            if self.nodes >= EXACT_MAX_NODES || self.best <= self.bound {
                return;
            }
            self.nodes += 1;
            if self.inst.out_of_work(self.nodes) {
                self.nodes = EXACT_MAX_NODES;
            }
            if k == self.order.len() {
                if top < self.best {
                    self.best = top;
                    self.best_offsets = Some(self.offsets.clone());
                }
                return;
            }
            let i = self.order[k];
            let need = self.inst.size[i];
            // Every feasible offset that sits at 0 or against a placed unit: the lowest
            // offset of each gap.
            let forbidden = self.inst.forbidden(i, &self.offsets);
            for (o, _) in self.inst.gaps(&forbidden) {
                let new_top = top.max(o + need);
                if new_top >= self.best {
                    break;
                }
                self.offsets[i] = Some(o);
                self.go(k + 1, new_top);
                self.offsets[i] = None;
            }
        }
    }
    // First look for a placement at the bound itself, which prunes hardest, taking the
    // tensors largest first and then in order of first use; then for anything better
    // than the greedy one.
    let attempts = [
        (Priority::Size, bound + 1),
        (Priority::FirstUse, bound + 1),
        (Priority::Breadth, bound + 1),
        (Priority::Area, bound + 1),
        (Priority::Duration, bound + 1),
        (Priority::Size, known),
    ];
    for (priority, cap) in attempts {
        let mut s = Search {
            inst,
            order: order(inst, priority),
            offsets: vec![None; inst.size.len()],
            best: cap,
            best_offsets: None,
            bound,
            nodes: 0,
        };
        s.go(0, 0);
        if let Some(o) = s.best_offsets {
            return Some((o, s.best));
        }
    }
    None
}

/// [`exact`] as a [`Placer`]: a placement below `cap` bytes, for problems of up to
/// [`EXACT_MAX_TENSORS`] units.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exact;

impl Placer for Exact {
    fn name(&self) -> &'static str {
        "exact"
    }

    fn place(&self, p: &Problem, cap: usize) -> Option<Placement> {
        if p.items.len() > EXACT_MAX_TENSORS {
            return None;
        }
        let bound = p.step_live_bytes.iter().copied().max().unwrap_or(0);
        let (offsets, arena) = exact(p, bound, cap)?;
        (arena < cap).then_some(Placement { offsets, arena })
    }
}

#[cfg(test)]
mod tests {
    use super::super::greedy::Greedy;
    use super::super::problem::toy;
    use super::*;

    /// Never worse than the best greedy strategy, sound, and at the bound when the bound is
    /// reachable by stacking.
    #[test]
    fn improves_on_greedy_and_stays_sound() {
        for seed in 0..40 {
            let p = toy::random(seed, 10);
            let greedy = super::super::STRATEGIES
                .iter()
                .filter_map(|&(priority, fit)| Greedy { priority, fit }.place(&p, usize::MAX))
                .map(|f| f.arena)
                .min()
                .unwrap();
            if let Some(found) = Exact.place(&p, greedy) {
                assert!(found.arena < greedy, "{seed}");
                assert!(toy::sound(&p, &found.offsets), "{seed}");
            }
        }
        let p = toy::problem(&[(32, 0, 2), (16, 1, 1), (16, 2, 3), (32, 3, 3)], 16);
        let found = Exact.place(&p, usize::MAX).expect("places");
        assert_eq!(found.arena, 48, "the bound");
        assert!(toy::sound(&p, &found.offsets));
    }
}
