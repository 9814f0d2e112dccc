//! Greedy placement, TFLite Micro's kind: units in some priority order, each at the best or
//! the first gap where it fits among the units already placed.

use std::cmp::Reverse;

use super::problem::Problem;
use super::{Placement, Placer};

/// The order in which a greedy placer takes the tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Largest first ("greedy by size").
    Size,
    /// Largest size × lifetime first.
    Area,
    /// Longest lifetime first.
    Duration,
    /// Step by step, fullest step first, largest tensor first within it ("greedy by breadth").
    Breadth,
    /// In order of first use.
    FirstUse,
}

/// Where a greedy placer puts a tensor among the free gaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// The smallest gap it fits in (else on top).
    Best,
    /// The lowest offset it fits at.
    First,
}

/// Every greedy strategy [`super::place`] tries.
pub const STRATEGIES: [(Priority, Fit); 10] = [
    (Priority::Size, Fit::Best),
    (Priority::Size, Fit::First),
    (Priority::Area, Fit::Best),
    (Priority::Area, Fit::First),
    (Priority::Duration, Fit::Best),
    (Priority::Duration, Fit::First),
    (Priority::Breadth, Fit::Best),
    (Priority::Breadth, Fit::First),
    (Priority::FirstUse, Fit::Best),
    (Priority::FirstUse, Fit::First),
];

/// The units in the order `priority` takes them.
pub(crate) fn order(inst: &Problem, priority: Priority) -> Vec<usize> {
    let mut order = inst.items.clone();
    let dur = |i: usize| {
        let l = inst.lifetime(i);
        l.last - l.first + 1
    };
    match priority {
        Priority::Size => {
            order.sort_by_key(|&i| (Reverse(inst.size[i]), inst.lifetime(i).first, i))
        }
        Priority::Area => order.sort_by_key(|&i| (Reverse(inst.size[i] * dur(i)), i)),
        Priority::Duration => order.sort_by_key(|&i| (Reverse(dur(i)), Reverse(inst.size[i]), i)),
        Priority::FirstUse => {
            order.sort_by_key(|&i| (inst.lifetime(i).first, Reverse(inst.size[i]), i))
        }
        Priority::Breadth => {
            let mut steps: Vec<usize> = (0..inst.step_live_bytes.len()).collect();
            steps.sort_by_key(|&s| (Reverse(inst.step_live_bytes[s]), s));
            let mut seen = vec![false; inst.size.len()];
            order.clear();
            for s in steps {
                let mut here: Vec<usize> = inst
                    .items
                    .iter()
                    .copied()
                    .filter(|&i| {
                        !seen[i] && inst.lifetime(i).first <= s && s <= inst.lifetime(i).last
                    })
                    .collect();
                here.sort_by_key(|&i| (Reverse(inst.size[i]), i));
                for i in here {
                    seen[i] = true;
                    order.push(i);
                }
            }
        }
    }
    order
}

/// Greedy placement in `order`; returns offsets and the arena size.
fn greedy(inst: &Problem, order: &[usize], fit: Fit) -> (Vec<Option<usize>>, usize) {
    let mut offsets: Vec<Option<usize>> = vec![None; inst.size.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(order.len());
    let mut arena = 0;
    for &i in order {
        let gaps = inst.gaps(&inst.forbidden(i, &offsets));
        let bounded = gaps.iter().filter(|g| g.1 != usize::MAX);
        let offset = match fit {
            // The gap with the least room to spare.
            Fit::Best => bounded.min_by_key(|g| (g.1 - g.0, g.0)).map(|g| g.0),
            Fit::First => bounded.map(|g| g.0).next(),
        }
        .unwrap_or(gaps.last().expect("an unbounded gap").0);
        offsets[i] = Some(offset);
        arena = arena.max(offset + inst.size[i]);
        placed.push(i);
    }
    (offsets, arena)
}

/// One greedy strategy as a [`Placer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Greedy {
    /// The order units are taken in.
    pub priority: Priority,
    /// Where each goes.
    pub fit: Fit,
}

impl Placer for Greedy {
    fn name(&self) -> &'static str {
        "greedy"
    }

    /// Always places; `None` only when the result is not below `cap`.
    fn place(&self, p: &Problem, cap: usize) -> Option<Placement> {
        let (offsets, arena) = greedy(p, &order(p, self.priority), self.fit);
        (arena < cap).then_some(Placement { offsets, arena })
    }
}

#[cfg(test)]
mod tests {
    use super::super::problem::toy;
    use super::*;

    #[test]
    fn greedy_by_size_reaches_the_bound_where_units_nest() {
        // A and B meet at step 1, B and C at step 3: the bound is 16 + 32 = 48.
        let p = toy::problem(&[(16, 0, 1), (16, 1, 3), (32, 3, 4)], 16);
        let g = Greedy {
            priority: Priority::Size,
            fit: Fit::Best,
        };
        let found = g.place(&p, usize::MAX).expect("always places");
        assert_eq!(found.arena, 48);
        assert!(toy::sound(&p, &found.offsets));
        assert!(g.place(&p, 48).is_none(), "only below the cap");
    }

    #[test]
    fn every_strategy_is_sound() {
        for seed in 0..50 {
            let p = toy::random(seed, 12);
            let bound = p.step_live_bytes.iter().copied().max().unwrap_or(0);
            for (priority, fit) in STRATEGIES {
                let found = Greedy { priority, fit }.place(&p, usize::MAX).unwrap();
                assert!(
                    toy::sound(&p, &found.offsets),
                    "{seed} {priority:?} {fit:?}"
                );
                assert!(found.arena >= bound);
            }
        }
    }
}
