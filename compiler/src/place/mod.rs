//! Placement: a byte offset in the arena for every tensor that lives there.
//!
//! [`Problem`] states what is placed under one schedule (storage units, their pieces and
//! lifetimes); each strategy is a [`Placer`] (the shape of TFLite Micro's
//! `MicroMemoryPlanner`): [`greedy`] strategies first, then, when none reaches the bound,
//! the [`chrono`]logical backtracking search and the [`exact`] branch and bound. The plan
//! kept at the end gets a longer look at its order's peak by the [`ascending`]-offset
//! search ([`place_at_bound`]).

mod ascending;
mod chrono;
mod exact;
mod greedy;
mod problem;

pub use ascending::{Ascending, ASCENDING_NODES};
pub use chrono::Chronological;
pub use exact::{Exact, EXACT_MAX_TENSORS};
pub use greedy::{Fit, Greedy, Priority, STRATEGIES};
pub use problem::Problem;

use crate::ir::{Graph, TensorKind};
use crate::schedule::memory::MemoryModel;
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
///
/// Tensors that share memory (a concatenation input written into its slice of the output,
/// an output written over an input in place) belong to one storage *unit*; units are what
/// gets placed, and no two units live at a common step share a byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaPlan {
    /// Byte offset per tensor (`None` for weights and tensors of no bytes).
    pub offsets: Vec<Option<usize>>,
    /// Lifetime per tensor (`None` for weights): from its write to its last read.
    pub lifetimes: Vec<Option<Lifetime>>,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// Alignment of every unit's offset.
    pub alignment: usize,
    /// Bytes live during each step (each buffer rounded up to the alignment).
    pub step_live_bytes: Vec<usize>,
    /// Per node: the input position whose memory it overwrites in place, if any.
    pub in_place: Vec<Option<usize>>,
    /// Storage units: offset, bytes and lifetime.
    pub units: Vec<Unit>,
    /// Per tensor: its unit (`None` for weights and tensors of no bytes).
    pub unit_of: Vec<Option<usize>>,
}

/// A span of the arena that holds one or more tensors in turn or at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Byte offset.
    pub offset: usize,
    /// Bytes.
    pub bytes: usize,
    /// Steps it is held (the union of its pieces').
    pub life: Lifetime,
    /// Pieces: offset in the unit, bytes, and the steps each is held.
    pub pieces: Vec<(usize, usize, Lifetime)>,
}

impl ArenaPlan {
    /// True when input `pos` of concatenation node `v` already sits in its slice of the
    /// output (its producer wrote it there), so the concatenation need not copy it.
    pub fn is_zero_copy(&self, g: &Graph, v: usize, pos: usize) -> bool {
        let node = &g.nodes[v];
        let crate::ir::Op::Shape(crate::ir::ShapeOp::Concat(parts)) = &node.op else {
            return false;
        };
        let part = &parts[pos];
        let t = node.inputs[pos];
        part.outer == 1
            && g.tensors[t.0].in_arena()
            && matches!(
                (self.offsets[t.0], self.offsets[node.output.0]),
                (Some(a), Some(o)) if a == o + g.tensors[t.0].dtype.size() * part.offset
            )
    }

    /// The largest number of bytes live at one step: no placement can beat it.
    pub fn lower_bound(&self) -> usize {
        self.step_live_bytes.iter().copied().max().unwrap_or(0)
    }
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
        if let Some(t) = node.scratch {
            life[t.0] = Some(Lifetime { first: s, last: s });
        }
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

/// Offsets per unit and the arena they make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Offset per unit (`None` for units with no bytes or no lifetime).
    pub offsets: Vec<Option<usize>>,
    /// Arena size in bytes.
    pub arena: usize,
}

impl Placement {
    /// Offsets per unit of `p` and the arena they make: up to the highest unit's end.
    pub(crate) fn of(p: &Problem, offsets: Vec<Option<usize>>) -> Placement {
        let arena = (0..p.size.len())
            .filter_map(|u| offsets[u].map(|x| x + p.size[u]))
            .max()
            .unwrap_or(0);
        Placement { offsets, arena }
    }
}

/// A placement strategy.
pub trait Placer {
    /// Short name, for reports and tests.
    fn name(&self) -> &'static str;

    /// A placement of every unit of `p` in fewer than `cap` bytes (or within `cap` bytes, for
    /// the searches that aim at the bound), if the strategy finds one.
    fn place(&self, p: &Problem, cap: usize) -> Option<Placement>;
}

/// Places every storage unit under `schedule`: each greedy strategy of [`STRATEGIES`] is
/// tried and the smallest arena kept; when none reaches the lower bound, a backtracking
/// search in order of first use follows, and for small instances an exhaustive one.
pub fn place(g: &Graph, m: &MemoryModel, schedule: &Schedule) -> ArenaPlan {
    place_within(g, m, schedule, None)
}

/// As [`place`], the searching placers spending at most `budget` (keeping the best found).
pub fn place_within(
    g: &Graph,
    m: &MemoryModel,
    schedule: &Schedule,
    budget: Option<&crate::plan::work::Budget>,
) -> ArenaPlan {
    let mut p = Problem::new(g, m, schedule);
    p.budget = budget.cloned();
    let bound = p.step_live_bytes.iter().copied().max().unwrap_or(0);
    let mut best = Placement {
        offsets: vec![None; p.size.len()],
        arena: usize::MAX,
    };
    for (priority, fit) in STRATEGIES {
        if let Some(found) = (Greedy { priority, fit }).place(&p, best.arena) {
            best = found;
        }
        if best.arena <= bound {
            break;
        }
    }
    if best.arena > bound {
        if let Some(found) = Chronological.place(&p, bound) {
            best = found;
        }
    }
    if best.arena > bound {
        if let Some(found) = Exact.place(&p, best.arena) {
            best = found;
        }
    }
    let arena = if best.arena == usize::MAX {
        0
    } else {
        best.arena
    };
    p.plan(g, m, schedule, best.offsets, arena)
}

/// A placement of every storage unit under `schedule` at the lower bound (the order's peak),
/// if the [`Ascending`] search finds one within `nodes` nodes: a deeper look where
/// [`place`] left a gap.
pub fn place_at_bound(
    g: &Graph,
    m: &MemoryModel,
    schedule: &Schedule,
    nodes: usize,
) -> Option<ArenaPlan> {
    let p = Problem::new(g, m, schedule);
    let bound = p.step_live_bytes.iter().copied().max().unwrap_or(0);
    let found = Ascending { nodes }.place(&p, bound)?;
    Some(p.plan(g, m, schedule, found.offsets, found.arena))
}

/// Greedy placement with one strategy (for comparisons and tests).
pub fn place_with(
    g: &Graph,
    m: &MemoryModel,
    schedule: &Schedule,
    priority: Priority,
    fit: Fit,
) -> ArenaPlan {
    let p = Problem::new(g, m, schedule);
    let found = Greedy { priority, fit }
        .place(&p, usize::MAX)
        .expect("greedy always places");
    p.plan(g, m, schedule, found.offsets, found.arena)
}

/// True when no two storage units live at a common step share a byte, every unit is in
/// the arena at an aligned offset, and every tensor lies inside its unit.
pub fn is_valid(g: &Graph, plan: &ArenaPlan) -> bool {
    check(g, plan).is_ok()
}

/// As [`is_valid`], saying what is wrong.
pub fn check(g: &Graph, plan: &ArenaPlan) -> Result<(), String> {
    let units: Vec<(usize, &Unit)> = plan
        .units
        .iter()
        .enumerate()
        .filter(|(_, u)| u.bytes > 0)
        .collect();
    for (k, &(ia, a)) in units.iter().enumerate() {
        if a.offset + a.bytes > plan.arena_bytes || !a.offset.is_multiple_of(plan.alignment) {
            return Err(format!(
                "unit {ia} at {} of {} B outside the arena or unaligned",
                a.offset, a.bytes
            ));
        }
        for &(ib, b) in &units[k + 1..] {
            if !a.life.overlaps(&b.life) {
                continue;
            }
            for &(pr, ps, pl) in &a.pieces {
                for &(qr, qs, ql) in &b.pieces {
                    let (p, q) = (a.offset + pr, b.offset + qr);
                    if pl.overlaps(&ql) && p < q + qs && q < p + ps {
                        return Err(format!(
                            "unit {ia} piece [{p}, {}) {pl:?} overlaps unit {ib} piece [{q}, {}) {ql:?}",
                            p + ps,
                            q + qs
                        ));
                    }
                }
            }
        }
    }
    for (i, t) in g.tensors.iter().enumerate() {
        match (plan.offsets[i], plan.unit_of[i]) {
            (Some(o), Some(u)) => {
                let unit = &plan.units[u];
                if o < unit.offset || o + t.bytes() > unit.offset + unit.bytes {
                    return Err(format!("tensor `{}` at {o} outside its unit {u}", t.name));
                }
            }
            // Weights, empty tensors and tensors no node uses any more.
            (None, None) => {}
            _ => {
                return Err(format!(
                    "tensor `{}` has an offset or a unit, not both",
                    t.name
                ))
            }
        }
    }
    Ok(())
}
