//! Placement: a byte offset in the arena for every tensor that lives there.

use std::cmp::Reverse;

use crate::ir::{Graph, TensorKind};
use crate::schedule::Schedule;

/// When a tensor occupies the arena: from the step that writes it to the last step that
/// reads it, both inclusive. Graph inputs start at step 0, graph outputs end at the last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// First step.
    pub first: usize,
    /// Last step.
    pub last: usize,
}

impl Lifetime {
    /// True when both are live at some common step.
    pub fn overlaps(&self, o: &Lifetime) -> bool {
        self.first <= o.last && o.first <= self.last
    }
}

/// Where every arena tensor lives, and how big the arena is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaPlan {
    /// Byte offset per tensor (`None` for weights and tensors of no bytes).
    pub offsets: Vec<Option<usize>>,
    /// Lifetime per tensor (`None` for weights).
    pub lifetimes: Vec<Option<Lifetime>>,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// Alignment of every offset.
    pub alignment: usize,
    /// Bytes of live tensors at each step (each rounded up to the alignment).
    pub step_live_bytes: Vec<usize>,
}

impl ArenaPlan {
    /// The largest number of bytes live at one step: no placement can beat it.
    pub fn lower_bound(&self) -> usize {
        self.step_live_bytes.iter().copied().max().unwrap_or(0)
    }
}

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// Lifetimes of the arena tensors under `schedule`.
pub fn lifetimes(g: &Graph, schedule: &Schedule) -> Vec<Option<Lifetime>> {
    let steps = schedule.len();
    let mut step_of = vec![0; g.nodes.len()];
    for (s, n) in schedule.order.iter().enumerate() {
        step_of[n.0] = s;
    }
    let mut life: Vec<Option<Lifetime>> = vec![None; g.tensors.len()];
    for (i, t) in g.tensors.iter().enumerate() {
        if matches!(t.kind, TensorKind::Input(_)) {
            life[i] = Some(Lifetime { first: 0, last: 0 });
        }
    }
    for (n, node) in g.nodes.iter().enumerate() {
        let s = step_of[n];
        let o = node.output.0;
        life[o] = Some(match life[o] {
            Some(l) => Lifetime {
                first: l.first.min(s),
                last: l.last.max(s),
            },
            None => Lifetime { first: s, last: s },
        });
        for t in &node.inputs {
            if g.tensors[t.0].in_arena() {
                let l = life[t.0].get_or_insert(Lifetime { first: s, last: s });
                l.last = l.last.max(s);
                l.first = l.first.min(s);
            }
        }
    }
    for (i, t) in g.tensors.iter().enumerate() {
        if matches!(t.kind, TensorKind::Output(_)) {
            if let Some(l) = &mut life[i] {
                l.last = steps.saturating_sub(1).max(l.last);
            }
        }
    }
    life
}

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

/// Every greedy strategy [`place`] tries.
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

/// Tensors to place and their sizes and lifetimes, under one schedule.
struct Instance {
    life: Vec<Option<Lifetime>>,
    size: Vec<usize>,
    /// Tensors with a lifetime and bytes.
    items: Vec<usize>,
    step_live_bytes: Vec<usize>,
}

impl Instance {
    fn new(g: &Graph, schedule: &Schedule, alignment: usize) -> Instance {
        let life = lifetimes(g, schedule);
        let size: Vec<usize> = g
            .tensors
            .iter()
            .map(|t| align_up(t.bytes(), alignment))
            .collect();
        let items: Vec<usize> = (0..g.tensors.len())
            .filter(|&i| life[i].is_some() && size[i] > 0)
            .collect();
        let steps = schedule.len().max(1);
        let mut step_live_bytes = vec![0; steps];
        for &i in &items {
            let l = life[i].expect("a lifetime");
            for live in &mut step_live_bytes[l.first..=l.last.min(steps - 1)] {
                *live += size[i];
            }
        }
        Instance {
            life,
            size,
            items,
            step_live_bytes,
        }
    }

    fn lifetime(&self, i: usize) -> Lifetime {
        self.life[i].expect("placed tensors have a lifetime")
    }

    fn priority_order(&self, priority: Priority) -> Vec<usize> {
        let mut order = self.items.clone();
        let dur = |i: usize| {
            let l = self.lifetime(i);
            l.last - l.first + 1
        };
        match priority {
            Priority::Size => {
                order.sort_by_key(|&i| (Reverse(self.size[i]), self.lifetime(i).first, i))
            }
            Priority::Area => order.sort_by_key(|&i| (Reverse(self.size[i] * dur(i)), i)),
            Priority::Duration => {
                order.sort_by_key(|&i| (Reverse(dur(i)), Reverse(self.size[i]), i))
            }
            Priority::FirstUse => {
                order.sort_by_key(|&i| (self.lifetime(i).first, Reverse(self.size[i]), i))
            }
            Priority::Breadth => {
                let mut steps: Vec<usize> = (0..self.step_live_bytes.len()).collect();
                steps.sort_by_key(|&s| (Reverse(self.step_live_bytes[s]), s));
                let mut seen = vec![false; self.size.len()];
                order.clear();
                for s in steps {
                    let mut here: Vec<usize> = self
                        .items
                        .iter()
                        .copied()
                        .filter(|&i| {
                            !seen[i] && self.lifetime(i).first <= s && s <= self.lifetime(i).last
                        })
                        .collect();
                    here.sort_by_key(|&i| (Reverse(self.size[i]), i));
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
    fn greedy(&self, order: &[usize], fit: Fit) -> (Vec<Option<usize>>, usize) {
        let mut offsets: Vec<Option<usize>> = vec![None; self.size.len()];
        let mut placed: Vec<usize> = Vec::with_capacity(order.len());
        let mut arena = 0;
        let mut busy: Vec<(usize, usize)> = Vec::new();
        for &i in order {
            let li = self.lifetime(i);
            let need = self.size[i];
            busy.clear();
            busy.extend(
                placed
                    .iter()
                    .filter(|&&j| self.lifetime(j).overlaps(&li))
                    .filter_map(|&j| offsets[j].map(|o| (o, o + self.size[j]))),
            );
            busy.sort_unstable();
            let mut best: Option<(usize, usize)> = None; // (gap size, offset)
            let mut cursor = 0;
            for &(start, end) in &busy {
                if start >= cursor + need {
                    let gap = start - cursor;
                    let better = match fit {
                        Fit::Best => best.is_none_or(|(g, _)| gap < g),
                        Fit::First => best.is_none(),
                    };
                    if better {
                        best = Some((gap, cursor));
                    }
                }
                cursor = cursor.max(end);
            }
            let offset = best.map_or(cursor, |(_, o)| o);
            offsets[i] = Some(offset);
            arena = arena.max(offset + need);
            placed.push(i);
        }
        (offsets, arena)
    }
}

/// Places every arena tensor under `schedule`: each greedy strategy of [`STRATEGIES`] is
/// tried and the smallest arena kept; when none reaches the lower bound and the instance
/// is small, an exhaustive search over offsets follows.
pub fn place(g: &Graph, schedule: &Schedule, alignment: usize) -> ArenaPlan {
    let alignment = alignment.max(1);
    let inst = Instance::new(g, schedule, alignment);
    let bound = inst.step_live_bytes.iter().copied().max().unwrap_or(0);
    let mut best: Option<(Vec<Option<usize>>, usize)> = None;
    for (priority, fit) in STRATEGIES {
        let (offsets, arena) = inst.greedy(&inst.priority_order(priority), fit);
        if best.as_ref().is_none_or(|b| arena < b.1) {
            best = Some((offsets, arena));
        }
        if arena <= bound {
            break;
        }
    }
    let (mut offsets, mut arena) = best.unwrap_or((vec![None; g.tensors.len()], 0));
    if arena > bound {
        if let Some(o) = fit_chronologically(&inst, bound) {
            offsets = o;
            arena = bound;
        }
    }
    if arena > bound && inst.items.len() <= EXACT_MAX_TENSORS {
        if let Some((o, a)) = exact(&inst, bound, arena) {
            offsets = o;
            arena = a;
        }
    }
    ArenaPlan {
        offsets,
        lifetimes: inst.life,
        arena_bytes: arena,
        alignment,
        step_live_bytes: inst.step_live_bytes,
    }
}

/// The best of the greedy strategies alone, without the searches [`place`] adds.
pub fn place_greedy(g: &Graph, schedule: &Schedule, alignment: usize) -> ArenaPlan {
    STRATEGIES
        .iter()
        .map(|&(p, f)| place_with(g, schedule, alignment, p, f))
        .min_by_key(|p| p.arena_bytes)
        .expect("strategies")
}

/// Greedy placement with one strategy (for comparisons and tests).
pub fn place_with(
    g: &Graph,
    schedule: &Schedule,
    alignment: usize,
    priority: Priority,
    fit: Fit,
) -> ArenaPlan {
    let alignment = alignment.max(1);
    let inst = Instance::new(g, schedule, alignment);
    let (offsets, arena_bytes) = inst.greedy(&inst.priority_order(priority), fit);
    ArenaPlan {
        offsets,
        lifetimes: inst.life,
        arena_bytes,
        alignment,
        step_live_bytes: inst.step_live_bytes,
    }
}

/// Nodes the chronological search may visit.
const CHRONO_MAX_NODES: usize = 20_000;

/// Looks for a placement inside `cap` bytes, taking tensors in order of first use, with
/// backtracking. A tensor meets in time exactly the placed tensors still live when it
/// starts, so each choice is among the free gaps at that moment; it may go at either end
/// of a gap. Both ends matter: a chain of growing tensors that each overlap the next (a
/// DenseNet block's concatenations) fits only by alternating between bottom and top.
fn fit_chronologically(inst: &Instance, cap: usize) -> Option<Vec<Option<usize>>> {
    struct Search<'a> {
        inst: &'a Instance,
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
            if self.nodes > CHRONO_MAX_NODES {
                return false;
            }
            let i = self.order[k];
            let li = self.inst.lifetime(i);
            let need = self.inst.size[i];
            let mut busy: Vec<(usize, usize, usize)> = self.order[..k]
                .iter()
                .filter(|&&j| self.inst.lifetime(j).overlaps(&li))
                .map(|&j| {
                    let o = self.offsets[j].expect("placed");
                    (o, o + self.inst.size[j], self.inst.lifetime(j).last)
                })
                .collect();
            busy.sort_unstable();
            // Free gaps inside the cap, with the death step of the neighbour on each side.
            let mut candidates: Vec<(usize, usize, usize)> = Vec::new(); // (slack, end gap, offset)
            let mut cursor = 0;
            let mut below_last = usize::MAX;
            let gaps = busy
                .iter()
                .map(|&(s, e, last)| (s, Some((e, last))))
                .chain(std::iter::once((self.cap, None)));
            for (start, next) in gaps {
                if start >= cursor + need {
                    let slack = start - cursor - need;
                    let above_last = next.map_or(usize::MAX, |n| n.1);
                    // Prefer the end whose neighbour dies closest to this tensor.
                    let dist = |l: usize| {
                        if l == usize::MAX {
                            usize::MAX / 2
                        } else {
                            l.abs_diff(li.last)
                        }
                    };
                    candidates.push((slack, dist(below_last), cursor));
                    if slack > 0 {
                        candidates.push((slack, dist(above_last), start - need));
                    }
                }
                if let Some((end, last)) = next {
                    if end > cursor {
                        cursor = end;
                        below_last = last;
                    }
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
        order: inst.priority_order(Priority::FirstUse),
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

/// Instances up to this many tensors get the exhaustive placement search.
pub const EXACT_MAX_TENSORS: usize = 64;
/// Nodes the exhaustive placement search may visit.
const EXACT_MAX_NODES: usize = 50_000;

/// Branch and bound over offsets: tensors largest first, each at offset 0 or on top of a
/// placed tensor it meets in time, pruned at the best arena known. Returns a placement
/// smaller than `known`, if it finds one within its node budget.
fn exact(inst: &Instance, bound: usize, known: usize) -> Option<(Vec<Option<usize>>, usize)> {
    struct Search<'a> {
        inst: &'a Instance,
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
            if k == self.order.len() {
                if top < self.best {
                    self.best = top;
                    self.best_offsets = Some(self.offsets.clone());
                }
                return;
            }
            let i = self.order[k];
            let li = self.inst.lifetime(i);
            let need = self.inst.size[i];
            let busy: Vec<(usize, usize)> = self.order[..k]
                .iter()
                .filter(|&&j| self.inst.lifetime(j).overlaps(&li))
                .map(|&j| {
                    let o = self.offsets[j].expect("placed");
                    (o, o + self.inst.size[j])
                })
                .collect();
            let mut candidates: Vec<usize> = std::iter::once(0)
                .chain(busy.iter().map(|b| b.1))
                .filter(|&o| busy.iter().all(|&(s, e)| o + need <= s || e <= o))
                .collect();
            candidates.sort_unstable();
            candidates.dedup();
            for o in candidates {
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
        (Priority::Size, known),
    ];
    for (priority, cap) in attempts {
        let mut s = Search {
            inst,
            order: inst.priority_order(priority),
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

/// True when no two tensors that are live at a common step share a byte.
pub fn is_valid(g: &Graph, plan: &ArenaPlan) -> bool {
    let n = g.tensors.len();
    let span = |i: usize| plan.offsets[i].map(|o| (o, o + g.tensors[i].bytes()));
    for i in 0..n {
        for j in i + 1..n {
            if let (Some(a), Some(b), Some(la), Some(lb)) =
                (span(i), span(j), plan.lifetimes[i], plan.lifetimes[j])
            {
                if la.overlaps(&lb) && a.0 < b.1 && b.0 < a.1 {
                    return false;
                }
            }
            if span(i).is_some_and(|(_, e)| e > plan.arena_bytes) {
                return false;
            }
        }
    }
    true
}
