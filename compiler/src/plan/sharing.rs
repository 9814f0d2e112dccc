//! The choice of which tensors share memory: every in-place write and zero-copy
//! concatenation the graph allows is an option ([`ir::Sharing`]); forcing them all can cost
//! more than it saves (a slice must sit next to its siblings), so the candidates are
//! evaluated and the best is improved by flipping one concatenation at a time.

use super::{evaluate, Budget, Evaluated};
use crate::ir::{self, SharingChoice};

/// True when the graph allows any sharing at all.
pub fn shares_anything(sharing: &ir::Sharing) -> bool {
    !sharing.concat_slots.is_empty() || sharing.in_place.iter().any(|p| !p.is_empty())
}

/// The concatenation moves of the local search: all slots of one concatenation at once,
/// then, where a concatenation has several, each slot alone.
pub fn moves(sharing: &ir::Sharing) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (k, slot) in sharing.concat_slots.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if sharing.concat_slots[g[0]].node == slot.node => g.push(k),
            _ => groups.push(vec![k]),
        }
    }
    let singles: Vec<Vec<usize>> = groups
        .iter()
        .filter(|g| g.len() > 1)
        .flat_map(|g| g.iter().map(|&k| vec![k]))
        .collect();
    groups.into_iter().chain(singles).collect()
}

/// Starting from the plain plan `plain`: every sharing forced on, in place only, zero-copy
/// only, then local moves until nothing improves or the budget is spent. Returns the best
/// plan and the forced-sharing arena. `stage` hands out each stage's work by weight (4, 1
/// and 1 for the candidates, 2 for the local search).
pub fn search(
    graph: &ir::Graph,
    sharing: &ir::Sharing,
    alignment: usize,
    plain: Evaluated,
    clock: &Budget,
    stage: &mut dyn FnMut(&Budget, u64) -> Budget,
) -> (Evaluated, usize) {
    let n_slots = sharing.concat_slots.len();
    let candidates = [
        SharingChoice::all(sharing),
        SharingChoice {
            in_place: true,
            slots: vec![false; n_slots],
        },
        SharingChoice {
            in_place: false,
            slots: vec![true; n_slots],
        },
    ];
    let mut best = plain;
    let mut forced = best.plan.arena_bytes;
    // Sharing never adds live bytes: the plain plan's order seeds every search.
    let mut known = vec![best.schedule.clone()];
    for (k, choice) in candidates.into_iter().enumerate() {
        let weight = if k == 0 { 4 } else { 1 };
        let c = evaluate(
            graph,
            sharing,
            choice,
            alignment,
            &stage(clock, weight),
            &known,
        );
        known.push(c.schedule.clone());
        if k == 0 {
            forced = c.plan.arena_bytes;
        }
        // On a tie the later (more sharing) choice, unless only the earlier order is
        // proven minimal.
        let proven = c.scheduled.optimal || !best.scheduled.optimal;
        if c.plan.arena_bytes < best.plan.arena_bytes
            || (c.plan.arena_bytes == best.plan.arena_bytes && proven)
        {
            best = c;
        }
    }
    // The local search takes its share; what it leaves goes to the stages after it.
    let local = stage(clock, 2);
    let moves = moves(sharing);
    let mut improved = true;
    while improved && !local.is_over() {
        improved = false;
        for mv in &moves {
            if local.is_over() {
                break;
            }
            let mut choice = best.choice.clone();
            // The plain plan's choice lists no slots.
            choice.slots.resize(n_slots, false);
            let on = !mv.iter().all(|&k| choice.slots[k]);
            for &k in mv {
                choice.slots[k] = on;
            }
            let c = evaluate(
                graph,
                sharing,
                choice,
                alignment,
                &local,
                &[best.schedule.clone()],
            );
            if c.plan.arena_bytes < best.plan.arena_bytes {
                best = c;
                improved = true;
            }
        }
    }
    (best, forced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{ConcatSlot, NodeId, TensorId};

    #[test]
    fn moves_flip_whole_concatenations_then_single_slots() {
        let slot = |node: usize, input: usize| ConcatSlot {
            node: NodeId(node),
            input,
            part: TensorId(input),
            output: TensorId(9),
            byte_offset: 0,
        };
        let s = ir::Sharing {
            in_place: Vec::new(),
            concat_slots: vec![slot(3, 0), slot(3, 1), slot(5, 0)],
        };
        assert!(shares_anything(&s));
        assert_eq!(moves(&s), vec![vec![0, 1], vec![2], vec![0], vec![1]]);
        assert!(!shares_anything(&ir::Sharing::default()));
    }
}
