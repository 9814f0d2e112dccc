//! The exact minimum-peak order: dynamic programming over sets of executed nodes (the
//! algorithm of Liberis & Lane, "Neural networks on microcontrollers: saving memory at
//! inference via operator reordering", 2019), with memoisation, branch-and-bound against
//! the best order known, and decomposition at cut points.
//!
//! **Cut points.** A node comparable with every other node (each is its ancestor or its
//! descendant) runs at the same place in every order, and the set of tensors live across
//! it does not depend on the order. So the graph splits at such nodes into segments that
//! are searched one by one: a chain of cells is planned cell by cell.
//!
//! **Search.** `f(S)` is the smallest peak with which the segment can be finished once the
//! nodes in `S` have run. `f(S) = min over ready v of max(live(S) + out(v), f(S + v))`. The
//! search is given a limit (the best peak known); a state that cannot beat it returns a
//! lower bound instead of its value, and memo entries remember which they hold.
//!
//! **Reduction.** A ready node that frees at least what it allocates, and whose step costs
//! no more than a lower bound of `f(S)`, can be run first without loss: moving it to the
//! front of any completion lowers or keeps every later step. Such states get one child.

use std::collections::HashMap;
use std::time::Instant;

use super::memory::{MemoryModel, Simulation};

/// What the search found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The order (all nodes).
    pub order: Vec<usize>,
    /// Its peak live bytes.
    pub peak: usize,
    /// True when every segment was searched to the end within the budget, so no order has
    /// a lower peak.
    pub optimal: bool,
    /// Number of search states expanded.
    pub states: usize,
    /// Number of segments the cut points split the graph into.
    pub segments: usize,
}

/// Limits of the search.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Stop searching (keep the best order known) after this instant.
    pub deadline: Instant,
    /// Stop searching after this many memo entries (bounds memory).
    pub max_states: usize,
}

/// The minimum-peak order, or the best of `seeds` (valid orders of all nodes) per segment
/// where the budget runs out. `seeds` must not be empty.
pub fn search(m: &MemoryModel, seeds: &[Vec<usize>], budget: Budget) -> Outcome {
    let n = m.len();
    let topo = &seeds[0];
    let pieces = split_at_cut_points(m, topo);
    let mut sim = Simulation::new(m);
    let mut order = Vec::with_capacity(n);
    let mut peak = 0;
    let mut optimal = true;
    let mut states = 0;
    let mut segments = 0;
    let mut in_piece = vec![usize::MAX; n];
    for (p, piece) in pieces.iter().enumerate() {
        for &v in piece {
            in_piece[v] = p;
        }
    }
    for (p, piece) in pieces.iter().enumerate() {
        let chosen: Vec<usize> = if piece.len() == 1 {
            piece.clone()
        } else {
            segments += 1;
            let restricted: Vec<Vec<usize>> = seeds
                .iter()
                .map(|s| s.iter().copied().filter(|&v| in_piece[v] == p).collect())
                .collect();
            let (seg_order, seg_optimal, seg_states) =
                solve_segment(m, piece, &restricted, &sim, budget);
            optimal &= seg_optimal;
            states += seg_states;
            seg_order
        };
        for &v in &chosen {
            peak = peak.max(sim.run(m, v));
            order.push(v);
        }
    }
    Outcome {
        order,
        peak,
        optimal,
        states,
        segments,
    }
}

/// Splits a topological order into pieces: each cut point alone, and the maximal runs of
/// other nodes between them (the segments).
pub fn split_at_cut_points(m: &MemoryModel, topo: &[usize]) -> Vec<Vec<usize>> {
    let n = m.len();
    let words = n.div_ceil(64);
    let mut anc = vec![vec![0u64; words]; n];
    for &v in topo {
        let mut a = vec![0u64; words];
        for &p in &m.preds[v] {
            for (w, x) in a.iter_mut().zip(&anc[p]) {
                *w |= x;
            }
            a[p / 64] |= 1 << (p % 64);
        }
        anc[v] = a;
    }
    let anc_count: Vec<usize> = anc
        .iter()
        .map(|a| a.iter().map(|w| w.count_ones() as usize).sum())
        .collect();
    let mut desc_count = vec![0usize; n];
    for a in &anc {
        for (w, &word) in a.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                desc_count[w * 64 + bits.trailing_zeros() as usize] += 1;
                bits &= bits - 1;
            }
        }
    }
    let mut pieces: Vec<Vec<usize>> = Vec::new();
    let mut run: Vec<usize> = Vec::new();
    for &v in topo {
        if anc_count[v] + desc_count[v] + 1 == n {
            if !run.is_empty() {
                pieces.push(std::mem::take(&mut run));
            }
            pieces.push(vec![v]);
        } else {
            run.push(v);
        }
    }
    if !run.is_empty() {
        pieces.push(run);
    }
    pieces
}

#[derive(Clone, Copy)]
struct Entry {
    /// `f(S)` when `exact`, else a lower bound of it.
    value: usize,
    exact: bool,
    /// The local node to run next (meaningful when `exact`).
    choice: u32,
}

struct Segment<'a> {
    m: &'a MemoryModel,
    /// Local index → node.
    nodes: Vec<usize>,
    /// Per local node: its predecessors inside the segment, as a local bit set.
    preds: Vec<Vec<u64>>,
    /// Per local node: bytes it holds while it runs, in any order.
    own: Vec<usize>,
    memo: HashMap<Vec<u64>, Entry>,
    sim: Simulation,
    done: Vec<u64>,
    expanded: usize,
    budget: Budget,
    aborted: bool,
}

fn bit(set: &[u64], i: usize) -> bool {
    set[i / 64] >> (i % 64) & 1 == 1
}

fn solve_segment(
    m: &MemoryModel,
    nodes: &[usize],
    seeds: &[Vec<usize>],
    start: &Simulation,
    budget: Budget,
) -> (Vec<usize>, bool, usize) {
    let k = nodes.len();
    let words = k.div_ceil(64);
    let mut local = HashMap::with_capacity(k);
    for (i, &v) in nodes.iter().enumerate() {
        local.insert(v, i);
    }
    let preds = nodes
        .iter()
        .map(|&v| {
            let mut set = vec![0u64; words];
            for p in &m.preds[v] {
                if let Some(&i) = local.get(p) {
                    set[i / 64] |= 1 << (i % 64);
                }
            }
            set
        })
        .collect();
    // The best seed gives the bound to beat.
    let mut best: Option<(usize, &Vec<usize>)> = None;
    for seed in seeds {
        let mut sim = start.clone();
        let peak = seed.iter().map(|&v| sim.run(m, v)).max().unwrap_or(0);
        if best.is_none_or(|(b, _)| peak < b) {
            best = Some((peak, seed));
        }
    }
    let (seed_peak, seed_order) = best.expect("at least one seed");
    let mut seg = Segment {
        m,
        own: nodes.iter().map(|&v| m.own_bytes(v)).collect(),
        nodes: nodes.to_vec(),
        preds,
        memo: HashMap::new(),
        sim: start.clone(),
        done: vec![0u64; words],
        expanded: 0,
        budget,
        aborted: false,
    };
    let value = seg.solve(k, seed_peak);
    if seg.aborted {
        return (seed_order.clone(), false, seg.expanded);
    }
    if value >= seed_peak {
        // Nothing beats the seed: it is optimal.
        return (seed_order.clone(), true, seg.expanded);
    }
    // Follow the exact choices from the empty set.
    let mut order = Vec::with_capacity(k);
    seg.done.iter_mut().for_each(|w| *w = 0);
    for _ in 0..k {
        let e = seg.memo[&seg.done];
        debug_assert!(e.exact);
        let i = e.choice as usize;
        order.push(nodes[i]);
        seg.done[i / 64] |= 1 << (i % 64);
    }
    (order, true, seg.expanded)
}

impl Segment<'_> {
    fn solve(&mut self, remaining: usize, limit: usize) -> usize {
        if remaining == 0 {
            return 0;
        }
        if let Some(e) = self.memo.get(&self.done) {
            if e.exact || e.value >= limit {
                return e.value;
            }
        }
        self.expanded += 1;
        // Check the clock on the first expansion and every 1024 after.
        if self.expanded % 1024 == 1
            && (Instant::now() > self.budget.deadline || self.memo.len() > self.budget.max_states)
        {
            self.aborted = true;
        }
        if self.aborted {
            return usize::MAX;
        }
        let m = self.m;
        // Ready nodes with the live bytes during and after their step.
        let mut ready: Vec<(usize, usize, usize)> = Vec::new();
        let mut bound = 0;
        for i in 0..self.nodes.len() {
            if bit(&self.done, i) {
                continue;
            }
            bound = bound.max(self.own[i]);
            if self.preds[i]
                .iter()
                .zip(&self.done)
                .all(|(p, d)| p & !d == 0)
            {
                let v = self.nodes[i];
                let during = self.sim.cost(m, v);
                ready.push((self.sim.after(m, v), during, i));
            }
        }
        let cheapest = ready.iter().map(|r| r.1).min().expect("a ready node");
        bound = bound.max(cheapest);
        if bound >= limit {
            self.store(bound, false, 0);
            return bound;
        }
        // The reduction: a node that frees what it allocates, at no more than the bound.
        let live = self.sim.live;
        if let Some(&forced) = ready.iter().find(|r| r.0 <= live && r.1 <= bound) {
            ready = vec![forced];
        } else {
            ready.sort_unstable();
        }
        let mut best = usize::MAX;
        let mut choice = 0;
        for &(_, during, i) in &ready {
            let cap = limit.min(best);
            if during >= cap {
                best = best.min(during);
                continue;
            }
            let v = self.nodes[i];
            self.sim.run(m, v);
            self.done[i / 64] |= 1 << (i % 64);
            let rest = self.solve(remaining - 1, cap);
            self.done[i / 64] &= !(1 << (i % 64));
            self.sim.undo(m, v);
            if self.aborted {
                return usize::MAX;
            }
            let value = during.max(rest);
            if value < best {
                best = value;
                choice = i;
            }
        }
        self.store(best, best < limit, choice as u32);
        best
    }

    fn store(&mut self, value: usize, exact: bool, choice: u32) {
        self.memo.insert(
            self.done.clone(),
            Entry {
                value,
                exact,
                choice,
            },
        );
    }
}
