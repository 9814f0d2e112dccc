//! Placement in ascending order of offset, after MiniMalloc (Moffitt, ASPLOS 2023): a
//! search for a placement within a cap that only builds *canonical* placements, with
//! inferences that cut most dead ends at the node that makes them.
//!
//! Any placement can be pushed down until each unit rests on another or on 0, and then
//! listed by offset. The search builds placements in that order: each node places one unit
//! at the lowest offset it fits at, no lower than the last unit placed, so the state is a
//! *level* and, per step, a *floor* under which nothing still to come can go. Four rules
//! prune:
//! - **canonical order**: units at the same offset are placed in a fixed order (one of each
//!   set of equal placements is built);
//! - **no needless gap**: a unit is not placed at or above where another unit, still to be
//!   placed, would end at its own lowest offset (that one could go below it, and the
//!   placement where it does is built elsewhere in the tree);
//! - **room per step**: at every step, the bytes still to be placed must fit between that
//!   step's floor and the cap;
//! - **alone**: when a unit that meets none still to place fails at a node, the node fails
//!   (nothing else placed there changes what the others can do).
//!
//! The fixed order is one of ten preorders (see [`PREORDERS`]); the search runs each in
//! turn with a node limit that doubles on every round, so an order that suits the problem
//! finishes early.
//!
//! Units with several pieces (a concatenation's slices, written at different steps) take
//! part with their pieces: a piece may sit in a hole between another unit's pieces, and a
//! unit of several pieces may start below a one-piece unit that meets only its later
//! pieces. So only units of one piece raise the floors, and the placed pieces of the others
//! count as bytes taken above the floor.

use super::problem::Problem;
use super::{Placement, Placer};

/// Nodes the search visits at most by default, over every round: most placements that
/// fit are found within a thousand nodes (on random 110-op DAGs), so a placer that tries
/// many orders spends little on each first (see [`Ascending::nodes`]).
pub const ASCENDING_NODES: usize = 5_000;

/// Keys of the fixed orders the search takes in turn, largest key first: the most bytes
/// live at one of the unit's steps (`Total`), the steps it spans (`Span`), its bytes × steps
/// (`Area`), its bytes (`Size`), how early it starts (`Early`), how late it ends (`Late`).
/// Which order finds a placement fast varies from problem to problem, and one that does
/// mostly does so in a few hundred nodes: ten orders found placements on random DAGs that
/// three (MiniMalloc's) did not.
const PREORDERS: [[Key; 3]; 10] = [
    [Key::Total, Key::Span, Key::Area],
    [Key::Span, Key::Area, Key::Total],
    [Key::Total, Key::Area, Key::Span],
    [Key::Area, Key::Span, Key::Total],
    [Key::Size, Key::Total, Key::Span],
    [Key::Span, Key::Total, Key::Size],
    [Key::Early, Key::Size, Key::Span],
    [Key::Size, Key::Span, Key::Total],
    [Key::Late, Key::Size, Key::Span],
    [Key::Area, Key::Total, Key::Span],
];

#[derive(Clone, Copy, Debug)]
enum Key {
    Total,
    Span,
    Area,
    Size,
    Early,
    Late,
}

/// How one round of the search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Found,
    /// The tree below is exhausted: no canonical placement fits.
    Infeasible,
    /// The round's node limit or the work budget ran out.
    Stopped,
}

struct Search<'a> {
    p: &'a Problem,
    cap: usize,
    /// Units to place (global ids), in the round's preorder; the search works on indices
    /// into this list.
    units: Vec<usize>,
    /// Per unit: its pieces, `(offset in unit, bytes, first step, last step)`.
    pieces: Vec<Vec<(usize, usize, usize, usize)>>,
    /// Per unit: its first and last step.
    span: Vec<(usize, usize)>,
    /// Per unit: true when it is one piece covering the whole unit.
    single: Vec<bool>,
    /// Per unit: the units it meets at some step (each once).
    meets: Vec<Vec<usize>>,
    /// Per unit: where the units it meets forbid it, `(j, a, b)`: not in `[o_j + a, o_j +
    /// b)`; for a one-piece unit only the units of several pieces (it goes above the others,
    /// see `top`), for a unit of several pieces every one.
    multi_meets: Vec<Vec<(usize, i64, i64)>>,
    /// Per unit: its offset, once placed.
    offset: Vec<Option<usize>>,
    /// Per unit: the highest top of the placed one-piece units it meets (it goes above
    /// them all).
    top: Vec<usize>,
    /// Per step: the top of the highest placed one-piece unit live then.
    floor: Vec<usize>,
    /// Per step: bytes of pieces live then that are not placed yet.
    remaining: Vec<usize>,
    /// Placed units of several pieces.
    placed_multi: Vec<usize>,
    /// Per step: bytes of the placed units of several pieces live then.
    multi_live: Vec<usize>,
    /// Every unit, by first step (for splitting into independent parts).
    by_first: Vec<usize>,
    /// Per unit: the node that last marked it open (for splitting into parts).
    mark: Vec<usize>,
    /// What was changed, to undo: `Top(unit, old)` and `Floor(step, old)`.
    trail: Vec<Undo>,
    nodes: usize,
    limit: usize,
    out_of_work: bool,
    /// The offsets of the last placement completed (of a part, or of everything).
    solution: Vec<Option<usize>>,
}

#[derive(Clone, Copy, Debug)]
enum Undo {
    Top(usize, usize),
    Floor(usize, usize),
}

impl Search<'_> {
    fn align(&self, x: usize) -> usize {
        x.div_ceil(self.p.alignment) * self.p.alignment
    }

    /// The lowest aligned offset at or above `level` where unit `k` fits among the placed
    /// units (for a one-piece unit, above every placed one-piece unit it meets).
    fn lowest_from(&self, k: usize, level: usize) -> usize {
        let mut o = if self.single[k] {
            self.align(level.max(self.top[k]))
        } else {
            self.align(level)
        };
        loop {
            let mut moved = false;
            for &(j, a, b) in &self.multi_meets[k] {
                if let Some(oj) = self.offset[j] {
                    let (lo, hi) = (oj as i64 + a, oj as i64 + b);
                    if lo <= o as i64 && (o as i64) < hi {
                        o = self.align(hi as usize);
                        moved = true;
                    }
                }
            }
            if !moved {
                return o;
            }
        }
    }

    /// Places every unit of `part` (none of them placed yet, or some placed on the way
    /// here) at or above `level`, units at `level` after unit `last` in the preorder.
    fn go(&mut self, part: &[usize], level: usize, last: usize) -> Outcome {
        self.nodes += 1;
        if self.p.out_of_work(self.nodes) {
            self.out_of_work = true;
        }
        if self.out_of_work || self.nodes > self.limit {
            return Outcome::Stopped;
        }
        let open: Vec<usize> = part
            .iter()
            .copied()
            .filter(|&k| self.offset[k].is_none())
            .collect();
        if open.is_empty() {
            for (k, &u) in self.units.iter().enumerate() {
                if let Some(o) = self.offset[k] {
                    self.solution[u] = Some(o);
                }
            }
            return Outcome::Found;
        }
        // Units still to place that meet none of the others' steps form independent parts:
        // each is placed on its own (a dead end in one is not searched again for every
        // placement of another).
        for &k in &open {
            self.mark[k] = self.nodes;
        }
        let parts = self.components();
        if parts.len() > 1 {
            for sub in parts {
                let outcome = self.go(&sub, 0, 0);
                if outcome != Outcome::Found {
                    return outcome;
                }
            }
            return Outcome::Found;
        }
        // Every unit still to place at its lowest offset from the level.
        let mut candidates: Vec<(usize, usize)> = Vec::with_capacity(open.len());
        for &k in &open {
            let o = self.lowest_from(k, level);
            if o + self.p.size[self.units[k]] > self.cap {
                return Outcome::Infeasible;
            }
            candidates.push((o, k));
        }
        candidates.sort_unstable();
        if !self.room_per_step(level, &candidates) {
            return Outcome::Infeasible;
        }
        let lowest_top = candidates
            .iter()
            .map(|&(o, k)| o + self.p.size[self.units[k]])
            .min()
            .expect("candidates");
        for &(o, k) in &candidates {
            if o >= lowest_top {
                break;
            }
            if o == level && k < last {
                continue;
            }
            // A unit that meets no unit still to place changes nothing for them: if the
            // rest cannot be placed with it here, they cannot be with any other unit here.
            let alone = self.meets[k]
                .iter()
                .all(|&j| j == k || self.offset[j].is_some());
            let mark = self.put(k, o);
            let outcome = self.go(part, o, k);
            self.take(k, mark);
            if outcome != Outcome::Infeasible {
                return outcome;
            }
            if alone {
                break;
            }
        }
        Outcome::Infeasible
    }

    /// True when, at every step of the units still to place, their bytes fit between the
    /// step's floor and the cap, `candidates` being each of them at its lowest offset, by
    /// offset.
    fn room_per_step(&self, level: usize, candidates: &[(usize, usize)]) -> bool {
        let first = candidates
            .iter()
            .map(|c| self.span[c.1].0)
            .min()
            .unwrap_or(0);
        let last = candidates
            .iter()
            .map(|c| self.span[c.1].1)
            .max()
            .unwrap_or(0);
        // No unit still to place goes below its lowest offset: where every unit live at a
        // step starts higher, so does the room. `candidates` are sorted by offset, so the
        // first one to cover a step sets its lowest; `next` skips the steps already set.
        let steps = last + 1 - first;
        let mut lowest = vec![usize::MAX; steps];
        let mut next: Vec<usize> = (0..=steps).collect();
        fn find(next: &mut [usize], mut x: usize) -> usize {
            while next[x] != x {
                next[x] = next[next[x]];
                x = next[x];
            }
            x
        }
        for &(o, k) in candidates {
            let (f, l) = (self.span[k].0 - first, self.span[k].1 - first);
            let mut x = find(&mut next, f);
            while x <= l {
                lowest[x] = o;
                next[x] = x + 1;
                x = find(&mut next, x + 1);
            }
        }
        for s in first..=last {
            if self.remaining[s] == 0 {
                continue;
            }
            let mut floor = self.floor[s].max(level);
            if lowest[s - first] != usize::MAX {
                floor = floor.max(lowest[s - first]);
            }
            if floor + self.remaining[s] + self.multi_live[s] <= self.cap {
                continue;
            }
            let mut taken = 0;
            for &k in &self.placed_multi {
                let o = self.offset[k].expect("placed");
                for &(r, b, f, l) in &self.pieces[k] {
                    if f <= s && s <= l {
                        taken += (o + r + b).min(self.cap).saturating_sub((o + r).max(floor));
                    }
                }
            }
            if floor + self.remaining[s] + taken > self.cap {
                return false;
            }
        }
        true
    }

    /// Places unit `k` at `o`; returns the trail mark to undo it.
    fn put(&mut self, k: usize, o: usize) -> usize {
        let mark = self.trail.len();
        self.offset[k] = Some(o);
        for &(_, b, first, last) in &self.pieces[k] {
            for s in first..=last {
                self.remaining[s] -= b;
            }
        }
        if self.single[k] {
            let top = o + self.p.size[self.units[k]];
            let (first, last) = self.span[k];
            for s in first..=last {
                if self.floor[s] < top {
                    self.trail.push(Undo::Floor(s, self.floor[s]));
                    self.floor[s] = top;
                }
            }
            for i in 0..self.meets[k].len() {
                let j = self.meets[k][i];
                if self.top[j] < top {
                    self.trail.push(Undo::Top(j, self.top[j]));
                    self.top[j] = top;
                }
            }
        } else {
            for &(_, b, first, last) in &self.pieces[k] {
                for s in first..=last {
                    self.multi_live[s] += b;
                }
            }
            self.placed_multi.push(k);
        }
        mark
    }

    /// The units marked open at this node, split into groups whose spans chain together
    /// by overlapping; the groups meet no step in common.
    fn components(&self) -> Vec<Vec<usize>> {
        let mut parts: Vec<Vec<usize>> = Vec::new();
        let mut reach = 0;
        for &k in &self.by_first {
            if self.mark[k] != self.nodes {
                continue;
            }
            if parts.is_empty() || self.span[k].0 > reach {
                parts.push(Vec::new());
                reach = 0;
            }
            reach = reach.max(self.span[k].1);
            parts.last_mut().expect("a part").push(k);
        }
        if parts.len() > 1 {
            for p in &mut parts {
                p.sort_unstable();
            }
        }
        parts
    }

    fn take(&mut self, k: usize, mark: usize) {
        self.offset[k] = None;
        for &(_, b, first, last) in &self.pieces[k] {
            for s in first..=last {
                self.remaining[s] += b;
            }
        }
        while self.trail.len() > mark {
            match self.trail.pop().expect("above the mark") {
                Undo::Top(j, t) => self.top[j] = t,
                Undo::Floor(s, f) => self.floor[s] = f,
            }
        }
        if !self.single[k] {
            for &(_, b, first, last) in &self.pieces[k] {
                for s in first..=last {
                    self.multi_live[s] -= b;
                }
            }
            self.placed_multi.pop();
        }
    }
}

/// Units in the preorder `keys`, largest key first.
fn preorder(p: &Problem, keys: &[Key; 3]) -> Vec<usize> {
    let steps = p.step_live_bytes.len();
    let mut live = vec![0usize; steps];
    for &i in &p.items {
        for &(_, b, l) in &p.pieces[i] {
            for x in &mut live[l.first..=l.last] {
                *x += b;
            }
        }
    }
    let key = |i: usize, k: Key| -> usize {
        let l = p.lifetime(i);
        match k {
            Key::Total => live[l.first..=l.last].iter().copied().max().unwrap_or(0),
            Key::Span => l.last - l.first + 1,
            Key::Area => p.size[i] * (l.last - l.first + 1),
            Key::Size => p.size[i],
            Key::Early => steps - l.first,
            Key::Late => l.last,
        }
    };
    let mut units = p.items.clone();
    units.sort_by_key(|&i| {
        (
            std::cmp::Reverse(key(i, keys[0])),
            std::cmp::Reverse(key(i, keys[1])),
            std::cmp::Reverse(key(i, keys[2])),
            i,
        )
    });
    units
}

/// Looks for a placement of every unit of `p` within `cap` bytes.
fn fit_ascending(p: &Problem, cap: usize, max_nodes: usize) -> Option<Vec<Option<usize>>> {
    let steps = p.step_live_bytes.len();
    let mut remaining = vec![0usize; steps];
    for &i in &p.items {
        for &(_, b, l) in &p.pieces[i] {
            for x in &mut remaining[l.first..=l.last] {
                *x += b;
            }
        }
    }
    if remaining.iter().any(|&r| r > cap) {
        return None;
    }
    let mut limit = p.items.len().max(16);
    let mut spent = 0;
    loop {
        for keys in &PREORDERS {
            let units = preorder(p, keys);
            let mut local = vec![usize::MAX; p.size.len()];
            for (k, &u) in units.iter().enumerate() {
                local[u] = k;
            }
            let single: Vec<bool> = units
                .iter()
                .map(|&i| p.pieces[i].len() == 1 && p.pieces[i][0].1 == p.size[i])
                .collect();
            let mut meets = vec![Vec::new(); units.len()];
            let mut multi_meets = vec![Vec::new(); units.len()];
            for (k, &u) in units.iter().enumerate() {
                for &(j, a, b) in p.meeting(u) {
                    let j = local[j];
                    meets[k].push(j);
                    if !single[j] || !single[k] {
                        multi_meets[k].push((j, a, b));
                    }
                }
                meets[k].sort_unstable();
                meets[k].dedup();
            }
            let span: Vec<(usize, usize)> = units
                .iter()
                .map(|&i| (p.lifetime(i).first, p.lifetime(i).last))
                .collect();
            let mut by_first: Vec<usize> = (0..units.len()).collect();
            by_first.sort_by_key(|&k| (span[k].0, k));
            let mut s = Search {
                p,
                cap,
                multi_live: vec![0; steps],
                mark: vec![usize::MAX; units.len()],
                by_first,
                pieces: units
                    .iter()
                    .map(|&i| {
                        p.pieces[i]
                            .iter()
                            .map(|&(r, b, l)| (r, b, l.first, l.last))
                            .collect()
                    })
                    .collect(),
                span,
                single,
                meets,
                multi_meets,
                offset: vec![None; units.len()],
                top: vec![0; units.len()],
                floor: vec![0; steps],
                remaining: remaining.clone(),
                placed_multi: Vec::new(),
                trail: Vec::new(),
                nodes: 0,
                limit: limit.min(max_nodes - spent),
                out_of_work: false,
                solution: vec![None; p.size.len()],
                units,
            };
            let all: Vec<usize> = (0..s.units.len()).collect();
            let outcome = s.go(&all, 0, 0);
            spent += s.nodes.min(s.limit);
            match outcome {
                Outcome::Found => return Some(s.solution),
                // Every canonical placement tried: none fits, whatever the order.
                Outcome::Infeasible => return None,
                Outcome::Stopped if s.out_of_work || spent >= max_nodes => return None,
                Outcome::Stopped => {}
            }
        }
        limit *= 2;
    }
}

/// [`fit_ascending`] as a [`Placer`]: looks for a placement within `cap` bytes, visiting
/// at most `nodes` nodes.
#[derive(Clone, Copy, Debug)]
pub struct Ascending {
    /// Nodes the search may visit.
    pub nodes: usize,
}

impl Default for Ascending {
    fn default() -> Ascending {
        Ascending {
            nodes: ASCENDING_NODES,
        }
    }
}

impl Placer for Ascending {
    fn name(&self) -> &'static str {
        "ascending"
    }

    fn place(&self, p: &Problem, cap: usize) -> Option<Placement> {
        Some(Placement::of(p, fit_ascending(p, cap, self.nodes)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::problem::toy;
    use super::*;

    /// DenseNet's growing concatenations: they fit in the bound only by alternating
    /// between the bottom and the top of the arena.
    #[test]
    fn growing_chain_fits_at_the_bound() {
        let p = toy::problem(&[(16, 0, 1), (32, 1, 2), (48, 2, 3), (64, 3, 4)], 16);
        let bound = p.step_live_bytes.iter().copied().max().unwrap();
        let found = Ascending::default()
            .place(&p, bound)
            .expect("fits the bound");
        assert_eq!(found.arena, bound);
        assert!(toy::sound(&p, &found.offsets));
        assert!(Ascending::default().place(&p, bound - 16).is_none());
    }

    #[test]
    fn what_it_finds_is_sound_and_within_the_cap() {
        for seed in 0..200 {
            let p = toy::random(seed, 12);
            let bound = p.step_live_bytes.iter().copied().max().unwrap();
            for cap in [bound, bound + 16, bound + 64] {
                if let Some(found) = Ascending::default().place(&p, cap) {
                    assert!(found.arena <= cap, "{seed}");
                    assert!(toy::sound(&p, &found.offsets), "{seed}");
                }
            }
        }
    }

    /// Units of several pieces (a concatenation's slices, written at different steps):
    /// what the search finds is sound, piece by piece.
    #[test]
    fn units_of_several_pieces_are_placed_soundly() {
        let mut found = 0;
        for seed in 0..300u64 {
            let p = toy::random_pieces(seed, 10);
            let bound = p.step_live_bytes.iter().copied().max().unwrap();
            for cap in [bound, bound + 32] {
                if let Some(f) = Ascending::default().place(&p, cap) {
                    assert!(f.arena <= cap, "{seed}");
                    assert!(toy::sound_pieces(&p, &f.offsets), "{seed}");
                    found += 1;
                }
            }
        }
        assert!(found > 300, "{found}");
    }
}
