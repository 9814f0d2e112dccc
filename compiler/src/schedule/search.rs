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
//! **Bound.** A state's lower bound is the largest, over the nodes still to run, of the bytes
//! certainly live during that node's step: its own output (unless it may run in place), and
//! every buffer already written — or written by one of its ancestors — that a reader at or
//! after that step still needs (or that is a graph output). Those sums are kept per node
//! and updated as nodes run, so the bound costs one pass over the remaining nodes.
//! Two further terms make it tight enough to prove optimality on irregular graphs with many
//! outputs (whose peak is set by outputs piling up, not by any one node's neighbourhood):
//! - *Pairs.* A node `w` still to run that is neither an ancestor nor a descendant of `v`
//!   runs before `v` — then its output is live during `v`'s step if that output outlives the
//!   step — or after it — then its inputs written before `v` are. The smaller of the two
//!   counts for `v`, each input shared out among its readers that may follow `v`, so no byte
//!   is counted twice. A pair stops counting when `w` runs (its output then counts above).
//! - *The end.* Whichever node runs the segment's last step, every buffer that outlives the
//!   segment (a graph output, or read after it) then holds all the bytes the segment writes
//!   into it; likewise for the last two steps, with the last node's inputs held during the
//!   step before it. The smallest of those over the nodes that may still run last (no
//!   successor in the segment) bounds `f(S)`.
//!
//! **Reductions.** A ready node that frees at least what it allocates, and whose step costs
//! no more than a lower bound of `f(S)`, can be run first without loss: moving it to the
//! front of any completion lowers or keeps every later step. Such states get one child.
//! A ready node whose output nobody reads (a graph output) and which frees nothing now is
//! never worse run one step later, past any node whose in-place choice it does not affect
//! (swapping the two steps raises neither). If each of its inputs is also read by a node
//! that is not such a leaf, it can be pushed past every leaf before the first other node of
//! any completion, which is ready: so it is not branched on while other nodes are ready.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::memory::{MemoryModel, Simulation};
use crate::plan::work;

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
#[derive(Clone, Debug)]
pub struct Limits {
    /// The work the search may spend (one unit per segment node at each state expanded);
    /// when it is spent the search stops and keeps the best order known.
    pub work: work::Budget,
    /// Stop searching after this many memo entries (bounds memory).
    pub max_states: usize,
    /// How ready nodes are tried (0: least live bytes after the step first; other values
    /// other tie-breaks, to find other orders of the same peak).
    pub variant: u32,
    /// With `Some(t)`, look for any order whose peak is below `t` (the first found in the
    /// `variant`'s order of trying) instead of the minimum.
    pub target: Option<usize>,
}

/// The minimum-peak order, or the best of `seeds` (valid orders of all nodes) per segment
/// where the budget runs out. `seeds` must not be empty.
pub fn search(m: &MemoryModel, seeds: &[Vec<usize>], budget: Limits) -> Outcome {
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
    let closures = closures(m, topo);
    for (p, piece) in pieces.iter().enumerate() {
        let chosen: Vec<usize> = if piece.len() == 1 {
            piece.clone()
        } else {
            segments += 1;
            let restricted: Vec<Vec<usize>> = seeds
                .iter()
                .map(|s| s.iter().copied().filter(|&v| in_piece[v] == p).collect())
                .collect();
            let (seg_order, seg_optimal, seg_states) = solve_segment(
                m,
                piece,
                &restricted,
                &sim,
                &order,
                (&closures.0, &closures.1),
                budget.clone(),
            );
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

/// The memo's hasher: the keys are bit sets the search makes itself (no adversary), so a
/// multiply-rotate per word does, at a fraction of SipHash's cost per state.
#[derive(Default)]
struct SetHasher(u64);

impl Hasher for SetHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        // The table indexes by the low bits, which a product takes from the low bits of
        // its operand only: fold the high bits down (MurmurHash3's finaliser).
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}

/// The memo: search states (sets of executed local nodes) to what is known of them. Sets
/// of up to 128 nodes are keyed by one `u128`, which costs no allocation per state.
#[derive(Default)]
struct Memo {
    small: HashMap<u128, Entry, BuildHasherDefault<SetHasher>>,
    large: HashMap<Vec<u64>, Entry, BuildHasherDefault<SetHasher>>,
}

impl Memo {
    fn small_key(set: &[u64]) -> Option<u128> {
        match *set {
            [] => Some(0),
            [a] => Some(u128::from(a)),
            [a, b] => Some(u128::from(a) | u128::from(b) << 64),
            _ => None,
        }
    }

    fn get(&self, set: &[u64]) -> Option<&Entry> {
        match Memo::small_key(set) {
            Some(key) => self.small.get(&key),
            None => self.large.get(set),
        }
    }

    fn insert(&mut self, set: &[u64], entry: Entry) {
        match Memo::small_key(set) {
            Some(key) => self.small.insert(key, entry),
            None => self.large.insert(set.to_vec(), entry),
        };
    }

    fn len(&self) -> usize {
        self.small.len() + self.large.len()
    }
}

/// Segments with at most this many nodes that may run last get the bound of their last two
/// steps (its table takes time in the square of their number times the segment's size);
/// others the last step's.
const MAX_PAIRED_ENDS: usize = 64;

/// Segments of at most this many nodes get the bound of pairs of incomparable nodes (its
/// table takes time and memory in the square of the segment's size).
const MAX_PAIRED_NODES: usize = 512;

/// A node that may run last in its segment, and the bytes certainly live then.
struct End {
    /// Bytes certainly live during the segment's last step when this node runs it.
    bytes: usize,
    /// The local node.
    node: u32,
    /// The local nodes that may run just before it, each with the bytes certainly live
    /// during that step, smallest first.
    before: Vec<(usize, u32)>,
}

struct Segment<'a> {
    m: &'a MemoryModel,
    /// Local index → node.
    nodes: Vec<usize>,
    /// Per local node: its predecessors inside the segment, as a local bit set.
    preds: Vec<Vec<u64>>,
    /// Per local node: bytes certainly live during its step whatever else has run (see
    /// the module's **Bound**).
    base: Vec<usize>,
    /// Per local node: bytes certainly live during its step because of nodes that have run
    /// and are not its ancestors (kept up to date as nodes run).
    extra: Vec<usize>,
    /// Per local node: bytes certainly live during its step because of the nodes still to
    /// run that may run before or after it (see the module's **Bound**).
    pair: Vec<usize>,
    /// Per local node `w`: the local nodes whose `pair` loses the given bytes when `w` runs.
    pair_feeds: Vec<Vec<(u32, usize)>>,
    /// Per local node `w`: the local nodes whose `extra` grows by `alloc[w]` when `w` runs.
    feeds: Vec<Vec<u32>>,
    /// Per local node: it may be deferred (no reader of its output, no in-place option,
    /// none of its inputs can be overwritten in place by another node): per input buffer,
    /// the other readers that may not be deferred, as local indices (`None` for a reader
    /// after the segment, always still to run). Empty when the node may not be deferred.
    deferrable: Vec<Vec<Vec<Option<usize>>>>,
    /// The local nodes that may run last (no successor in the segment), smallest bound of
    /// the last step first (see the module's **Bound**).
    ends: Vec<End>,
    memo: Memo,
    sim: Simulation,
    /// Spare ready lists, one per depth being expanded.
    ready_lists: Vec<Vec<(usize, usize, usize)>>,
    done: Vec<u64>,
    expanded: usize,
    budget: Limits,
    aborted: bool,
    /// Work units of one expansion: the segment's nodes.
    units: u64,
}

fn bit(set: &[u64], i: usize) -> bool {
    set[i / 64] >> (i % 64) & 1 == 1
}

/// Per node, its ancestors and its descendants, as bit sets over all nodes.
fn closures(m: &MemoryModel, topo: &[usize]) -> (Vec<Vec<u64>>, Vec<Vec<u64>>) {
    let n = m.len();
    let words = n.div_ceil(64);
    let mut anc = vec![vec![0u64; words]; n];
    for &v in topo {
        for &p in &m.preds[v] {
            let (a, b) = if p < v {
                let (lo, hi) = anc.split_at_mut(v);
                (&lo[p], &mut hi[0])
            } else {
                let (lo, hi) = anc.split_at_mut(p);
                (&hi[0], &mut lo[v])
            };
            for (w, x) in b.iter_mut().zip(a) {
                *w |= x;
            }
            b[p / 64] |= 1 << (p % 64);
        }
    }
    let mut desc = vec![vec![0u64; words]; n];
    for (v, a) in anc.iter().enumerate() {
        for (u, d) in desc.iter_mut().enumerate() {
            if bit(a, u) {
                d[v / 64] |= 1 << (v % 64);
            }
        }
    }
    (anc, desc)
}

fn solve_segment(
    m: &MemoryModel,
    nodes: &[usize],
    seeds: &[Vec<usize>],
    start: &Simulation,
    before: &[usize],
    (anc, desc): (&[Vec<u64>], &[Vec<u64>]),
    budget: Limits,
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
    // Readers and writers of every buffer.
    let nb = m.size.len();
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); nb];
    let mut writers: Vec<Vec<usize>> = vec![Vec::new(); nb];
    for v in 0..m.len() {
        for &b in &m.reads[v] {
            readers[b].push(v);
        }
        if let Some(b) = m.writes[v] {
            writers[b].push(v);
        }
    }
    // Bytes of each buffer written before the segment (graph inputs whole).
    let mut written = vec![0usize; nb];
    for &b in &m.initial {
        written[b] = m.size[b];
    }
    for &w in before {
        if let Some(b) = m.writes[w] {
            written[b] += m.alloc[w];
        }
    }
    // Buffer `b` is alive during node `v`'s step when it is a graph output or a reader
    // runs at or after that step (`v` itself or a descendant).
    let alive =
        |b: usize, v: usize| m.pinned[b] || readers[b].iter().any(|&r| r == v || bit(&desc[v], r));
    // Nodes that may be deferred, over the whole graph (see `Segment::deferrable`).
    let in_place_inputs: Vec<bool> = {
        let mut t = vec![false; nb];
        for v in 0..m.len() {
            for &b in &m.in_place[v] {
                t[b] = true;
            }
        }
        t
    };
    let leaf_like = |v: usize| {
        m.succs[v].is_empty()
            && m.in_place[v].is_empty()
            && m.reads[v].iter().all(|&b| !in_place_inputs[b])
    };
    let done_before: std::collections::HashSet<usize> = before.iter().copied().collect();
    // Per buffer, its writers in the segment.
    let seg_writers: Vec<Vec<usize>> = writers
        .iter()
        .map(|ws| {
            ws.iter()
                .copied()
                .filter(|w| local.contains_key(w))
                .collect()
        })
        .collect();
    // Bytes of buffer `b` certainly written before `v` runs: before the segment, or by
    // one of `v`'s ancestors.
    let written_before = |b: usize, v: usize| {
        written[b]
            + seg_writers[b]
                .iter()
                .filter(|&&w| bit(&anc[v], w))
                .map(|&w| m.alloc[w])
                .sum::<usize>()
    };
    // Bytes `v`'s own step certainly holds: its scratch, and its output unless it may
    // overwrite an input.
    let step_bytes = |v: usize| {
        m.temp_bytes(v)
            + if m.in_place[v].is_empty() {
                m.alloc[v]
            } else {
                0
            }
    };
    let mut base = vec![0usize; k];
    let mut feeds: Vec<Vec<u32>> = vec![Vec::new(); k];
    for (i, &v) in nodes.iter().enumerate() {
        base[i] = step_bytes(v)
            + (0..nb)
                .filter(|&b| alive(b, v))
                .map(|b| written_before(b, v))
                .sum::<usize>();
        for (j, &w) in nodes.iter().enumerate() {
            if j != i && !bit(&anc[v], w) && m.writes[w].is_some_and(|b| alive(b, v)) {
                feeds[j].push(i as u32);
            }
        }
    }
    let deferrable = nodes
        .iter()
        .map(|&v| {
            if !leaf_like(v) || m.reads[v].is_empty() {
                return Vec::new();
            }
            m.reads[v]
                .iter()
                .map(|&b| {
                    readers[b]
                        .iter()
                        .filter(|&&r| r != v && !leaf_like(r) && !done_before.contains(&r))
                        .map(|r| local.get(r).copied())
                        .collect()
                })
                .collect()
        })
        .collect();
    // The segment's last two steps (see the module's **Bound**). A buffer that outlives the
    // segment (a graph output, or read after it) holds all its segment writers' bytes at
    // the end, whichever node runs last.
    let outlives: Vec<bool> = (0..nb)
        .map(|b| {
            m.pinned[b]
                || readers[b]
                    .iter()
                    .any(|r| !local.contains_key(r) && !done_before.contains(r))
        })
        .collect();
    // Bytes certainly live while `v` runs when only the nodes in `after` run after it.
    let during_at_end = |v: usize, after: &[usize]| {
        let mut sum = step_bytes(v);
        for b in 0..nb {
            let held = outlives[b]
                || m.reads[v].contains(&b)
                || after.iter().any(|&a| m.reads[a].contains(&b));
            if held {
                sum += written[b];
                for &w in &seg_writers[b] {
                    if w != v && !after.contains(&w) {
                        sum += m.alloc[w];
                    }
                }
            }
        }
        sum
    };
    let is_sink = |v: usize, but: Option<usize>| {
        m.succs[v]
            .iter()
            .all(|s| !local.contains_key(s) || Some(*s) == but)
    };
    let sinks: Vec<usize> = (0..k).filter(|&i| is_sink(nodes[i], None)).collect();
    let paired = sinks.len() <= MAX_PAIRED_ENDS;
    let mut ends: Vec<End> = sinks
        .into_iter()
        .map(|i| {
            let v = nodes[i];
            let mut before: Vec<(usize, u32)> = if paired {
                (0..k)
                    .filter(|&j| j != i && is_sink(nodes[j], Some(v)))
                    .map(|j| (during_at_end(nodes[j], &[v]), j as u32))
                    .collect()
            } else {
                Vec::new()
            };
            before.sort_unstable();
            End {
                bytes: during_at_end(v, &[]),
                node: i as u32,
                before,
            }
        })
        .collect();
    ends.sort_unstable_by_key(|e| (e.bytes, e.node));
    // Pairs of incomparable nodes (see the module's **Bound**): while `v` runs, a node `w`
    // that may run before or after it holds either its own output (when that outlives `v`'s
    // step) or its inputs written before `v` (shared among their readers that may follow).
    let mut pair = vec![0usize; k];
    let mut pair_feeds: Vec<Vec<(u32, usize)>> = vec![Vec::new(); k];
    if k <= MAX_PAIRED_NODES {
        for (i, &v) in nodes.iter().enumerate() {
            for (j, &w) in nodes.iter().enumerate() {
                if w == v || bit(&anc[v], w) || bit(&desc[v], w) {
                    continue;
                }
                let own = match m.writes[w] {
                    Some(b) if alive(b, v) => m.alloc[w],
                    _ => 0,
                };
                if own == 0 {
                    continue;
                }
                let inputs: usize = m.reads[w]
                    .iter()
                    .filter(|&&b| !alive(b, v))
                    .map(|&b| {
                        let followers = readers[b]
                            .iter()
                            .filter(|&&r| r != v && !bit(&anc[v], r) && !bit(&desc[v], r))
                            .count()
                            .max(1);
                        written_before(b, v) / followers
                    })
                    .sum();
                let c = own.min(inputs);
                if c > 0 {
                    pair[i] += c;
                    pair_feeds[j].push((i as u32, c));
                }
            }
        }
    }
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
    let target = budget.target;
    let mut seg = Segment {
        m,
        nodes: nodes.to_vec(),
        preds,
        base,
        extra: vec![0; k],
        pair,
        pair_feeds,
        feeds,
        deferrable,
        ends,
        memo: Memo::default(),
        sim: start.clone(),
        ready_lists: Vec::new(),
        done: vec![0u64; words],
        expanded: 0,
        budget,
        aborted: false,
        units: k as u64,
    };
    let limit = target.unwrap_or(seed_peak);
    let value = match target {
        Some(_) => seg.solve(k, limit),
        None => seg.deepen(k, limit),
    };
    if seg.aborted {
        return (seed_order.clone(), false, seg.expanded);
    }
    if value >= limit {
        // Nothing beats the seed (or the target): the seed is optimal (or as good as any).
        return (seed_order.clone(), target.is_none(), seg.expanded);
    }
    // Follow the exact choices from the empty set.
    let mut order = Vec::with_capacity(k);
    seg.done.iter_mut().for_each(|w| *w = 0);
    for _ in 0..k {
        let e = *seg
            .memo
            .get(&seg.done)
            .expect("an exact entry on the chosen path");
        debug_assert!(e.exact);
        let i = e.choice as usize;
        order.push(nodes[i]);
        seg.done[i / 64] |= 1 << (i % 64);
    }
    (order, true, seg.expanded)
}

impl Segment<'_> {
    /// The minimum peak below `limit` (or a lower bound at least `limit` when none is), by
    /// iterative deepening on the peak: look for an order no higher than the best lower
    /// bound known, and raise the bound to what the failed search proved until an order is
    /// found or the bound reaches `limit`. A search with a tight limit prunes every state
    /// whose bound reaches it, so proving the optimum takes the states below it only, where
    /// a search from the seed's peak down also walks those between the optimum and the
    /// peaks it finds on the way. Exact memo entries carry over between rounds, and so do
    /// lower bounds at or above the next round's limit.
    fn deepen(&mut self, remaining: usize, limit: usize) -> usize {
        let mut below = 1.min(limit);
        loop {
            let value = self.solve(remaining, below);
            if self.aborted || value < below || below >= limit {
                return value;
            }
            // No order below `below`: `value` is a lower bound of the optimum.
            below = value.saturating_add(1).min(limit);
        }
    }

    fn solve(&mut self, remaining: usize, limit: usize) -> usize {
        // The ready list of each depth is kept between calls: expanding a state allocates
        // nothing but its memo entry.
        let mut ready = self.ready_lists.pop().unwrap_or_default();
        ready.clear();
        let value = self.expand(remaining, limit, &mut ready);
        self.ready_lists.push(ready);
        value
    }

    fn expand(
        &mut self,
        remaining: usize,
        limit: usize,
        ready: &mut Vec<(usize, usize, usize)>,
    ) -> usize {
        if remaining == 0 {
            return 0;
        }
        if let Some(e) = self.memo.get(&self.done) {
            if e.exact || e.value >= limit {
                return e.value;
            }
        }
        self.expanded += 1;
        // Work is counted at every expansion (the bound below walks the segment's nodes);
        // a time limit, if one is set, is looked at on the first expansion and every 256.
        self.budget.work.spend(self.units);
        if self.budget.work.work_is_over()
            || self.memo.len() > self.budget.max_states
            || (self.expanded % 256 == 1 && self.budget.work.time_is_up())
        {
            self.aborted = true;
        }
        if self.aborted {
            return usize::MAX;
        }
        let m = self.m;
        // Ready nodes with the live bytes during and after their step.
        let mut bound = 0;
        for i in 0..self.nodes.len() {
            if bit(&self.done, i) {
                continue;
            }
            bound = bound.max(self.base[i] + self.extra[i] + self.pair[i]);
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
        bound = bound.max(self.end_bound(remaining));
        if bound >= limit {
            self.store(bound, false, 0);
            return bound;
        }
        // The reductions: a node that frees what it allocates, at no more than the bound;
        // else leave out the deferrable nodes that free nothing (unless nothing else is ready).
        let live = self.sim.live;
        if let Some(&forced) = ready.iter().find(|r| r.0 <= live && r.1 <= bound) {
            ready.clear();
            ready.push(forced);
        } else {
            let keep = |r: &(usize, usize, usize)| {
                !(r.0 >= live + self.m.alloc[self.nodes[r.2]] && self.may_defer(r.2))
            };
            // Not at the very first step: it frees the unread graph inputs, so which node
            // runs it matters beyond the exchange argument.
            if !self.sim.holds_unread_inputs() && ready.iter().any(keep) {
                ready.retain(keep);
            }
            ready.sort_unstable();
            match self.budget.variant {
                0 => {}
                1 => ready.sort_by_key(|r| (r.1, r.0, r.2)),
                2 => ready.sort_by_key(|r| (r.0, std::cmp::Reverse(r.2))),
                v => ready.sort_by_key(|r| {
                    let h = (r.2 as u64 ^ u64::from(v)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    (r.0, h >> 32)
                }),
            }
        }
        let mut best = usize::MAX;
        let mut choice = 0;
        for &(_, during, i) in ready.iter() {
            let cap = limit.min(best);
            if during >= cap {
                best = best.min(during);
                continue;
            }
            self.enter(i);
            let rest = self.solve(remaining - 1, cap);
            self.leave(i);
            if self.aborted {
                return usize::MAX;
            }
            let value = during.max(rest);
            if value < best {
                best = value;
                choice = i;
                if best <= bound {
                    // The state's lower bound is met: no other child does better.
                    break;
                }
            }
        }
        self.store(best, best < limit, choice as u32);
        best
    }

    /// The smallest, over the orders of the remaining nodes, of the bytes certainly live
    /// during their last two steps.
    fn end_bound(&self, remaining: usize) -> usize {
        let mut best = usize::MAX;
        for end in &self.ends {
            if end.bytes >= best {
                break;
            }
            if bit(&self.done, end.node as usize) {
                continue;
            }
            let mut value = end.bytes;
            if remaining > 1 {
                if let Some(&(before, _)) = end
                    .before
                    .iter()
                    .find(|&&(_, j)| !bit(&self.done, j as usize))
                {
                    value = value.max(before);
                }
            }
            best = best.min(value);
        }
        if best == usize::MAX {
            0
        } else {
            best
        }
    }

    /// True when local node `i`, which frees nothing now, can be left for later: it is
    /// deferrable and each of its inputs still has a reader that is not (so nodes deferred
    /// together never make each other free anything; see the module's **Reductions**).
    fn may_defer(&self, i: usize) -> bool {
        let inputs = &self.deferrable[i];
        !inputs.is_empty()
            && inputs
                .iter()
                .all(|others| others.iter().any(|r| r.is_none_or(|j| !bit(&self.done, j))))
    }

    /// Runs local node `i`.
    fn enter(&mut self, i: usize) {
        let v = self.nodes[i];
        self.sim.run(self.m, v);
        self.done[i / 64] |= 1 << (i % 64);
        let a = self.m.alloc[v];
        for &j in &self.feeds[i] {
            self.extra[j as usize] += a;
        }
        for &(j, c) in &self.pair_feeds[i] {
            self.pair[j as usize] -= c;
        }
    }

    /// Undoes [`Segment::enter`] of local node `i`.
    fn leave(&mut self, i: usize) {
        let v = self.nodes[i];
        self.done[i / 64] &= !(1 << (i % 64));
        self.sim.undo(self.m, v);
        let a = self.m.alloc[v];
        for &j in &self.feeds[i] {
            self.extra[j as usize] -= a;
        }
        for &(j, c) in &self.pair_feeds[i] {
            self.pair[j as usize] += c;
        }
    }

    fn store(&mut self, value: usize, exact: bool, choice: u32) {
        self.memo.insert(
            &self.done,
            Entry {
                value,
                exact,
                choice,
            },
        );
    }
}
