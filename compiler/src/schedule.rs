//! Schedule: the order in which the nodes run.

use crate::ir::{Graph, NodeId};

/// A topological order of the graph's nodes; step `s` runs `order[s]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Node per step.
    pub order: Vec<NodeId>,
}

impl Schedule {
    /// The order the nodes are stored in (ONNX file order, as tract keeps it).
    pub fn file_order(g: &Graph) -> Schedule {
        Schedule {
            order: (0..g.nodes.len()).map(NodeId).collect(),
        }
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
