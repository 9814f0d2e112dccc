//! Placement: a byte offset in the arena for every tensor that lives there.

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

/// Places every arena tensor with a greedy best fit: largest tensors first, each at the
/// lowest aligned offset where it overlaps no already placed tensor that is live at the
/// same time.
pub fn place(g: &Graph, schedule: &Schedule, alignment: usize) -> ArenaPlan {
    let alignment = alignment.max(1);
    let life = lifetimes(g, schedule);
    let size = |i: usize| align_up(g.tensors[i].bytes(), alignment);
    let mut order: Vec<usize> = (0..g.tensors.len())
        .filter(|&i| life[i].is_some() && size(i) > 0)
        .collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(size(i)), life[i].map(|l| l.first), i));
    let mut offsets: Vec<Option<usize>> = vec![None; g.tensors.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0;
    for &i in &order {
        let li = life[i].unwrap_or(Lifetime { first: 0, last: 0 });
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| life[j].is_some_and(|lj| lj.overlaps(&li)))
            .filter_map(|&j| offsets[j].map(|o| (o, o + size(j))))
            .collect();
        busy.sort_unstable();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0;
        for &(start, end) in &busy {
            if start >= cursor + size(i) {
                let gap = start - cursor;
                if best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, cursor));
                }
            }
            cursor = cursor.max(end);
        }
        let offset = best.map_or(cursor, |(_, o)| o);
        offsets[i] = Some(offset);
        arena = arena.max(offset + size(i));
        placed.push(i);
    }
    let steps = schedule.len();
    let mut step_live_bytes = vec![0; steps.max(1)];
    for (i, l) in life.iter().enumerate() {
        if let Some(l) = l {
            let last = l.last.min(steps.max(1) - 1);
            for live in &mut step_live_bytes[l.first..=last] {
                *live += size(i);
            }
        }
    }
    ArenaPlan {
        offsets,
        lifetimes: life,
        arena_bytes: arena,
        alignment,
        step_live_bytes,
    }
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
