//! Placement: a byte offset in the arena for every tensor that lives there.

use std::cmp::Reverse;

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

/// Units to place, with their sizes and lifetimes, under one schedule.
///
/// A unit is one or more *pieces* at fixed offsets from the unit's start, each with its own
/// lifetime: the slices of a zero-copy concatenation are written at different steps, and
/// other tensors may use a slice's bytes until it is written.
struct Instance {
    /// Union of the pieces' lifetimes, per unit.
    life: Vec<Option<Lifetime>>,
    /// Bytes, per unit.
    size: Vec<usize>,
    /// Pieces per unit: offset in the unit, bytes, lifetime.
    pieces: Vec<Vec<(usize, usize, Lifetime)>>,
    /// Units with a lifetime and bytes.
    items: Vec<usize>,
    step_live_bytes: Vec<usize>,
    /// Per buffer of the memory model: its unit.
    unit_of_buffer: Vec<usize>,
    /// Per node: the buffer it overwrote in place.
    in_place: Vec<Option<usize>>,
    alignment: usize,
}

impl Instance {
    fn new(g: &Graph, m: &MemoryModel, schedule: &Schedule) -> Instance {
        let order = schedule.indices();
        let replay = m.replay(&order);
        // Units: buffers joined by in-place writes (the output takes over the input's bytes).
        let nb = m.size.len();
        let mut parent: Vec<usize> = (0..nb).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        for (v, t) in replay.in_place.iter().enumerate() {
            if let (Some(t), Some(o)) = (t, m.writes[v]) {
                let (a, b) = (find(&mut parent, *t), find(&mut parent, o));
                parent[b] = a;
            }
        }
        let mut unit_of_buffer = vec![usize::MAX; nb];
        let mut unit_of_root = vec![usize::MAX; nb];
        let mut size: Vec<usize> = Vec::new();
        for (b, unit) in unit_of_buffer.iter_mut().enumerate() {
            let r = find(&mut parent, b);
            if unit_of_root[r] == usize::MAX {
                unit_of_root[r] = size.len();
                size.push(0);
            }
            let u = unit_of_root[r];
            *unit = u;
            size[u] = size[u].max(m.size[b]);
        }
        // Pieces: each tensor's own bytes, from its write to its buffer's death.
        let producers = g.producers();
        let mut pieces: Vec<Vec<(usize, usize, Lifetime)>> = vec![Vec::new(); size.len()];
        for (t, own) in m.own.iter().enumerate() {
            let Some((b, _)) = m.home[t] else { continue };
            let first = match producers[t] {
                Some(p) => replay.step[p.0],
                None => 0,
            };
            if first == usize::MAX {
                continue;
            }
            let life = Lifetime {
                first,
                last: replay.died[b].max(first),
            };
            for &(s, e) in own {
                pieces[unit_of_buffer[b]].push((s, e - s, life));
            }
        }
        let life: Vec<Option<Lifetime>> = pieces
            .iter()
            .map(|ps| {
                ps.iter().map(|p| p.2).reduce(|a, b| Lifetime {
                    first: a.first.min(b.first),
                    last: a.last.max(b.last),
                })
            })
            .collect();
        let items: Vec<usize> = (0..size.len())
            .filter(|&u| life[u].is_some() && size[u] > 0)
            .collect();
        Instance {
            life,
            size,
            pieces,
            items,
            step_live_bytes: if replay.during.is_empty() {
                vec![0]
            } else {
                replay.during
            },
            unit_of_buffer,
            in_place: replay.in_place,
            alignment: m.alignment,
        }
    }

    /// Offsets at which unit `i` would share a byte with a placed unit at a common step:
    /// half-open intervals `[a, b)`.
    fn forbidden(&self, i: usize, placed: &[usize], offsets: &[Option<usize>]) -> Vec<(i64, i64)> {
        let li = self.lifetime(i);
        let mut f = Vec::new();
        for &j in placed {
            if !self.lifetime(j).overlaps(&li) {
                continue;
            }
            let oj = offsets[j].expect("placed") as i64;
            for &(pr, ps, pl) in &self.pieces[i] {
                for &(qr, qs, ql) in &self.pieces[j] {
                    if pl.overlaps(&ql) {
                        let q = oj + qr as i64;
                        f.push((q - pr as i64 - ps as i64 + 1, q + qs as i64 - pr as i64));
                    }
                }
            }
        }
        f.sort_unstable();
        f
    }

    /// The feasible aligned offsets, as `(first, last)` ranges in increasing order, the last
    /// one unbounded (`usize::MAX`), given the forbidden intervals sorted by start.
    fn gaps(&self, forbidden: &[(i64, i64)]) -> Vec<(usize, usize)> {
        let a = self.alignment as i64;
        let up = |x: i64| x.max(0).saturating_add(a - 1) / a * a;
        let mut out = Vec::new();
        let mut cursor = 0i64;
        for &(s, e) in forbidden {
            if s > cursor {
                // Feasible: cursor ..= s - 1, aligned down.
                let last = (s - 1) / a * a;
                if last >= cursor {
                    out.push((cursor as usize, last as usize));
                }
            }
            cursor = cursor.max(up(e));
        }
        if cursor < i64::MAX / 2 {
            out.push((cursor as usize, usize::MAX));
        }
        out
    }

    /// The plan of unit offsets `offsets` (per unit) and arena size `arena`.
    fn plan(
        &self,
        g: &Graph,
        m: &MemoryModel,
        schedule: &Schedule,
        offsets: Vec<Option<usize>>,
        arena: usize,
    ) -> ArenaPlan {
        let unit_of: Vec<Option<usize>> = m
            .home
            .iter()
            .map(|h| h.map(|(b, _)| self.unit_of_buffer[b]))
            .collect();
        let tensor_offsets = m
            .home
            .iter()
            .map(|h| h.and_then(|(b, within)| offsets[self.unit_of_buffer[b]].map(|o| o + within)))
            .collect();
        let in_place = g
            .nodes
            .iter()
            .enumerate()
            .map(|(v, n)| {
                let b = self.in_place[v]?;
                n.inputs
                    .iter()
                    .position(|t| m.home[t.0].is_some_and(|h| h.0 == b))
            })
            .collect();
        let units = (0..self.size.len())
            .map(|u| Unit {
                offset: offsets[u].unwrap_or(0),
                bytes: if offsets[u].is_some() {
                    self.size[u]
                } else {
                    0
                },
                life: self.life[u].unwrap_or(Lifetime { first: 0, last: 0 }),
                pieces: self.pieces[u].clone(),
            })
            .collect();
        ArenaPlan {
            offsets: tensor_offsets,
            lifetimes: lifetimes(g, schedule),
            arena_bytes: arena,
            alignment: m.alignment,
            step_live_bytes: self.step_live_bytes.clone(),
            in_place,
            units,
            unit_of,
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
        for &i in order {
            let gaps = self.gaps(&self.forbidden(i, &placed, &offsets));
            let bounded = gaps.iter().filter(|g| g.1 != usize::MAX);
            let offset = match fit {
                // The gap with the least room to spare.
                Fit::Best => bounded.min_by_key(|g| (g.1 - g.0, g.0)).map(|g| g.0),
                Fit::First => bounded.map(|g| g.0).next(),
            }
            .unwrap_or(gaps.last().expect("an unbounded gap").0);
            offsets[i] = Some(offset);
            arena = arena.max(offset + self.size[i]);
            placed.push(i);
        }
        (offsets, arena)
    }
}

/// Places every storage unit under `schedule`: each greedy strategy of [`STRATEGIES`] is
/// tried and the smallest arena kept; when none reaches the lower bound, a backtracking
/// search in order of first use follows, and for small instances an exhaustive one.
pub fn place(g: &Graph, m: &MemoryModel, schedule: &Schedule) -> ArenaPlan {
    let inst = Instance::new(g, m, schedule);
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
    let (mut offsets, mut arena) = best.unwrap_or((vec![None; inst.size.len()], 0));
    if arena > bound {
        if let Some(o) = fit_chronologically(&inst, bound) {
            arena = (0..inst.size.len())
                .filter_map(|u| o[u].map(|x| x + inst.size[u]))
                .max()
                .unwrap_or(0);
            offsets = o;
        }
    }
    if arena > bound && inst.items.len() <= EXACT_MAX_TENSORS {
        if let Some((o, a)) = exact(&inst, bound, arena) {
            offsets = o;
            arena = a;
        }
    }
    inst.plan(g, m, schedule, offsets, arena)
}

/// Greedy placement with one strategy (for comparisons and tests).
pub fn place_with(
    g: &Graph,
    m: &MemoryModel,
    schedule: &Schedule,
    priority: Priority,
    fit: Fit,
) -> ArenaPlan {
    let inst = Instance::new(g, m, schedule);
    let (offsets, arena) = inst.greedy(&inst.priority_order(priority), fit);
    inst.plan(g, m, schedule, offsets, arena)
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
            let need = self.inst.size[i];
            if need > self.cap {
                return false;
            }
            let mut forbidden = self.inst.forbidden(i, &self.order[..k], &self.offsets);
            forbidden.push(((self.cap - need) as i64 + 1, i64::MAX));
            forbidden.sort_unstable();
            let last_i = self.inst.lifetime(i).last;
            // Candidates: both ends of every gap, tightest gap first; at equal slack the end
            // whose neighbour dies closest to this unit.
            let neighbour_last = |o: usize| -> usize {
                let here = self.order[..k].iter().filter(|&&j| {
                    self.inst.lifetime(j).overlaps(&self.inst.lifetime(i))
                        && self.offsets[j]
                            .is_some_and(|oj| oj + self.inst.size[j] == o || oj == o + need)
                });
                here.map(|&j| self.inst.lifetime(j).last.abs_diff(last_i))
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
            let need = self.inst.size[i];
            // Every feasible offset that sits at 0 or against a placed unit: the lowest
            // offset of each gap.
            let forbidden = self.inst.forbidden(i, &self.order[..k], &self.offsets);
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
