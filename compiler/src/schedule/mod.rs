//! Schedule: the order in which the nodes run, chosen to minimise the arena.
//!
//! [`memory`] states the memory model, [`heuristics`] gives the reference orders and
//! greedy ones, [`search`] finds the exact minimum-peak order. [`plan`] runs them all
//! within a work budget (`crate::plan::work`).

pub mod flatten;
pub mod heuristics;
pub mod memory;
pub mod search;

use crate::ir::{Graph, NodeId};
use crate::plan::work;
use memory::MemoryModel;

/// A topological order of the graph's nodes; step `s` runs `order[s]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Node per step.
    pub order: Vec<NodeId>,
}

impl Schedule {
    /// The order the nodes are stored in the graph.
    pub fn graph_order(g: &Graph) -> Schedule {
        Schedule {
            order: (0..g.nodes.len()).map(NodeId).collect(),
        }
    }

    /// The ONNX file's order: nodes run as their ONNX nodes appear in the file.
    pub fn file_order(g: &Graph) -> Schedule {
        let m = MemoryModel::new(g, 1);
        Schedule::from_indices(heuristics::by_key(&m, |v| (g.nodes[v].rank.file, v)))
    }

    /// tract's order: nodes run as tract's `eval_order_opt_ram` runs their tract nodes.
    pub fn tract_order(g: &Graph) -> Schedule {
        let m = MemoryModel::new(g, 1);
        Schedule::from_indices(heuristics::by_key(&m, |v| (g.nodes[v].rank.tract, v)))
    }

    /// A schedule from node indices.
    pub fn from_indices(order: Vec<usize>) -> Schedule {
        Schedule {
            order: order.into_iter().map(NodeId).collect(),
        }
    }

    /// Node indices per step.
    pub fn indices(&self) -> Vec<usize> {
        self.order.iter().map(|n| n.0).collect()
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// True when every node appears once, after the producers of its inputs.
    pub fn is_valid(&self, g: &Graph) -> bool {
        let producers = g.producers();
        let mut step = vec![usize::MAX; g.nodes.len()];
        for (s, n) in self.order.iter().enumerate() {
            if n.0 >= g.nodes.len() || step[n.0] != usize::MAX {
                return false;
            }
            step[n.0] = s;
        }
        if step.contains(&usize::MAX) {
            return false;
        }
        g.nodes.iter().enumerate().all(|(i, n)| {
            n.inputs
                .iter()
                .all(|t| producers[t.0].is_none_or(|p| step[p.0] < step[i]))
        })
    }
}

/// How far the scheduler may search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchLimits {
    /// Work units the exact search may spend (see `crate::plan::work`); the best order found
    /// is used after them.
    pub work: u64,
    /// Memo entries after which the search stops, whatever the work left (bounds memory).
    pub max_states: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            work: work::DEFAULT_WORK,
            max_states: MAX_STATES,
        }
    }
}

/// Memo entries of one search, at most (about 100 MB).
pub const MAX_STATES: usize = 4_000_000;

/// The orders found without search, which seed the search with a bound and stand in for it
/// when its budget runs out. `File` and `Tract` are also the baselines plans are compared
/// with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeedOrder {
    /// The ONNX file's order ([`Schedule::file_order`]).
    File,
    /// tract's `eval_order_opt_ram` ([`Schedule::tract_order`]).
    Tract,
    /// Greedy: least live bytes after the step ([`heuristics::Greedy::LeastAfter`]).
    GreedyAfter,
    /// Greedy: least live bytes during the step ([`heuristics::Greedy::LeastDuring`]).
    GreedyDuring,
    /// Greedy: finish the branch in hand ([`heuristics::Greedy::DepthFirst`]).
    GreedyDepth,
    /// Every node as late as its readers allow ([`heuristics::lazy`]).
    Lazy,
}

impl SeedOrder {
    /// Every seed, in the order they are tried.
    pub const ALL: [SeedOrder; 6] = [
        SeedOrder::File,
        SeedOrder::Tract,
        SeedOrder::GreedyAfter,
        SeedOrder::GreedyDuring,
        SeedOrder::GreedyDepth,
        SeedOrder::Lazy,
    ];

    /// The order on `g` under memory model `m`.
    pub fn schedule(self, g: &Graph, m: &MemoryModel) -> Schedule {
        let greedy = |rule| Schedule::from_indices(heuristics::greedy(m, rule));
        match self {
            SeedOrder::File => Schedule::file_order(g),
            SeedOrder::Tract => Schedule::tract_order(g),
            SeedOrder::GreedyAfter => greedy(heuristics::Greedy::LeastAfter),
            SeedOrder::GreedyDuring => greedy(heuristics::Greedy::LeastDuring),
            SeedOrder::GreedyDepth => greedy(heuristics::Greedy::DepthFirst),
            SeedOrder::Lazy => Schedule::from_indices(heuristics::lazy(m)),
        }
    }
}

/// The scheduler's result.
#[derive(Clone, Debug)]
pub struct Scheduled {
    /// The minimum-peak order found.
    pub schedule: Schedule,
    /// Its peak live bytes under the memory model.
    pub peak_live_bytes: usize,
    /// True when no order has a lower peak (the search finished within its budget).
    pub optimal: bool,
    /// The reference and greedy orders the search started from.
    pub seeds: Vec<(SeedOrder, Schedule)>,
    /// Search states expanded.
    pub states: usize,
    /// Segments between cut points.
    pub segments: usize,
}

/// Finds the minimum-peak order of `g` under the plain memory model (no sharing) with
/// tensors rounded up to `alignment` bytes.
pub fn plan(g: &Graph, alignment: usize, limits: SearchLimits) -> Scheduled {
    plan_for(g, &MemoryModel::new(g, alignment), limits)
}

/// Finds the minimum-peak order of `g` under the memory model `m`.
pub fn plan_for(g: &Graph, m: &MemoryModel, limits: SearchLimits) -> Scheduled {
    plan_seeded(g, m, limits, &[])
}

/// As [`plan_for`], with `known` orders (e.g. the best orders of related memory models) as
/// further seeds: the best of them bounds the search from the start.
pub fn plan_seeded(
    g: &Graph,
    m: &MemoryModel,
    limits: SearchLimits,
    known: &[Schedule],
) -> Scheduled {
    plan_within(
        g,
        m,
        &work::Budget::new(limits.work, None),
        limits.max_states,
        known,
    )
}

/// As [`plan_seeded`], the search spending `budget` (a share of a planning's work).
pub fn plan_within(
    g: &Graph,
    m: &MemoryModel,
    budget: &work::Budget,
    max_states: usize,
    known: &[Schedule],
) -> Scheduled {
    let seeds: Vec<(SeedOrder, Schedule)> = SeedOrder::ALL
        .iter()
        .map(|&s| (s, s.schedule(g, m)))
        .collect();
    let orders: Vec<Vec<usize>> = seeds
        .iter()
        .map(|(_, s)| s.indices())
        .chain(
            known
                .iter()
                .filter(|s| s.is_valid(g))
                .map(Schedule::indices),
        )
        .collect();
    let outcome = if m.is_empty() {
        search::Outcome {
            order: Vec::new(),
            peak: 0,
            optimal: true,
            states: 0,
            segments: 0,
        }
    } else {
        search::search(
            m,
            &orders,
            search::Limits {
                work: budget.clone(),
                max_states,
                variant: 0,
                target: None,
            },
        )
    };
    Scheduled {
        schedule: Schedule::from_indices(outcome.order),
        peak_live_bytes: outcome.peak,
        optimal: outcome.optimal,
        seeds,
        states: outcome.states,
        segments: outcome.segments,
    }
}

/// Other orders of `g` under `m` whose peak is at most `peak` (e.g. other optimal orders,
/// which may place into a smaller arena), one per tie-break `variant` (1, 2, ...), the
/// searches spending `budget`. An order not found within it is left out.
pub fn alternatives(
    g: &Graph,
    m: &MemoryModel,
    scheduled: &Scheduled,
    peak: usize,
    variants: std::ops::Range<u32>,
    budget: &work::Budget,
) -> Vec<Schedule> {
    if m.is_empty() {
        return Vec::new();
    }
    let orders: Vec<Vec<usize>> = scheduled.seeds.iter().map(|(_, s)| s.indices()).collect();
    let mut out = Vec::new();
    for variant in variants {
        if budget.is_over() {
            break;
        }
        let o = search::search(
            m,
            &orders,
            search::Limits {
                work: budget.clone(),
                max_states: MAX_STATES,
                variant,
                target: Some(peak + 1),
            },
        );
        let s = Schedule::from_indices(o.order);
        if o.peak <= peak && s.is_valid(g) && !out.contains(&s) && s != scheduled.schedule {
            out.push(s);
        }
    }
    out
}
