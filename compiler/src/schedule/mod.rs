//! Schedule: the order in which the nodes run, chosen to minimise the arena.
//!
//! [`memory`] states the memory model, [`heuristics`] gives the reference orders and
//! greedy ones, [`search`] finds the exact minimum-peak order. [`plan`] runs them all
//! within a time budget.

pub mod heuristics;
pub mod memory;
pub mod search;

use std::time::{Duration, Instant};

use crate::ir::{Graph, NodeId};
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

/// How long and how far the scheduler may search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchLimits {
    /// Wall-clock budget of the exact search; the best order found is used after it.
    pub budget: Duration,
    /// Memo entries after which the search stops, whatever the time (bounds memory).
    pub max_states: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            budget: Duration::from_secs(2),
            max_states: 4_000_000,
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
    /// The reference and greedy orders the search started from, by name.
    pub seeds: Vec<(&'static str, Schedule)>,
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
    let start = Instant::now();
    let seeds: Vec<(&'static str, Schedule)> = vec![
        ("file", Schedule::file_order(g)),
        ("tract", Schedule::tract_order(g)),
        (
            "greedy-after",
            Schedule::from_indices(heuristics::greedy(m, heuristics::Greedy::LeastAfter)),
        ),
        (
            "greedy-during",
            Schedule::from_indices(heuristics::greedy(m, heuristics::Greedy::LeastDuring)),
        ),
        (
            "greedy-depth",
            Schedule::from_indices(heuristics::greedy(m, heuristics::Greedy::DepthFirst)),
        ),
    ];
    let orders: Vec<Vec<usize>> = seeds.iter().map(|(_, s)| s.indices()).collect();
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
            search::Budget {
                deadline: start + limits.budget,
                max_states: limits.max_states,
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
