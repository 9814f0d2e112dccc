//! The memory model every order is judged by.
//!
//! While a node runs, its inputs, its output and every other live activation are held.
//! Weights live in flash and cost nothing. A tensor dies after its last consumer; graph
//! inputs are live from the start until their last use, graph outputs until the end. Each
//! tensor occupies its size rounded up to the arena alignment, as it will in the arena.
//!
//! The model is built from the IR ([`MemoryModel::new`]); the scheduler reads only this, so a
//! later refinement of what may share memory changes this file, not the search.

use crate::ir::{Graph, TensorKind};

/// The scheduling problem: nodes, the arena tensors they read and write, and their sizes.
#[derive(Clone, Debug)]
pub struct MemoryModel {
    /// Per node: the arena tensors it reads, each once.
    pub reads: Vec<Vec<usize>>,
    /// Per node: the arena tensor it writes (`None` for a tensor of no bytes).
    pub writes: Vec<Option<usize>>,
    /// Per node: the nodes whose output it reads, each once.
    pub preds: Vec<Vec<usize>>,
    /// Per node: the nodes that read its output, each once.
    pub succs: Vec<Vec<usize>>,
    /// Per arena tensor: bytes it occupies (rounded up to the alignment).
    pub size: Vec<usize>,
    /// Per arena tensor: how many nodes read it.
    pub readers: Vec<u32>,
    /// Per arena tensor: held until the end (graph outputs).
    pub pinned: Vec<bool>,
    /// Arena tensors live before the first step (graph inputs).
    pub initial: Vec<usize>,
}

impl MemoryModel {
    /// The model of `g` with every tensor rounded up to `alignment` bytes.
    pub fn new(g: &Graph, alignment: usize) -> MemoryModel {
        let alignment = alignment.max(1);
        // Arena tensors get dense indices; weights and empty tensors get none.
        let mut index = vec![None; g.tensors.len()];
        let mut size = Vec::new();
        let mut pinned = Vec::new();
        for (i, t) in g.tensors.iter().enumerate() {
            if t.in_arena() && t.bytes() > 0 {
                index[i] = Some(size.len());
                size.push(t.bytes().div_ceil(alignment) * alignment);
                pinned.push(matches!(t.kind, TensorKind::Output(_)));
            }
        }
        let producers = g.producers();
        let n = g.nodes.len();
        let mut reads = vec![Vec::new(); n];
        let mut preds = vec![Vec::new(); n];
        let mut succs = vec![Vec::new(); n];
        let mut readers = vec![0u32; size.len()];
        for (v, node) in g.nodes.iter().enumerate() {
            for t in &node.inputs {
                if let Some(ix) = index[t.0] {
                    if !reads[v].contains(&ix) {
                        reads[v].push(ix);
                        readers[ix] += 1;
                    }
                }
                if let Some(p) = producers[t.0] {
                    if !preds[v].contains(&p.0) {
                        preds[v].push(p.0);
                        succs[p.0].push(v);
                    }
                }
            }
        }
        let writes = g.nodes.iter().map(|n| index[n.output.0]).collect();
        let initial = g.inputs.iter().filter_map(|t| index[t.0]).collect();
        MemoryModel {
            reads,
            writes,
            preds,
            succs,
            size,
            readers,
            pinned,
            initial,
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.reads.len()
    }

    /// True when there is no node.
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }

    /// Bytes the node's output takes.
    pub fn out_bytes(&self, v: usize) -> usize {
        self.writes[v].map_or(0, |t| self.size[t])
    }

    /// Bytes of the node's inputs and output together: held while it runs, in any order.
    pub fn own_bytes(&self, v: usize) -> usize {
        self.out_bytes(v) + self.reads[v].iter().map(|&t| self.size[t]).sum::<usize>()
    }

    /// Live bytes during each step of `order` (a topological order of all nodes).
    pub fn profile(&self, order: &[usize]) -> Vec<usize> {
        let mut sim = Simulation::new(self);
        order.iter().map(|&v| sim.run(self, v)).collect()
    }

    /// The largest number of live bytes during any step of `order`.
    pub fn peak(&self, order: &[usize]) -> usize {
        self.profile(order).into_iter().max().unwrap_or(0)
    }

    /// True when `order` holds every node once, each after its predecessors.
    pub fn is_topological(&self, order: &[usize]) -> bool {
        let mut done = vec![false; self.len()];
        if order.len() != self.len() {
            return false;
        }
        for &v in order {
            if v >= self.len() || done[v] || self.preds[v].iter().any(|&p| !done[p]) {
                return false;
            }
            done[v] = true;
        }
        true
    }
}

/// Live bytes and remaining readers while an order is followed; steps can be undone,
/// which is what the exhaustive search needs.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// Bytes live between steps.
    pub live: usize,
    remaining: Vec<u32>,
    /// Tensors freed by each step run so far, to undo it.
    freed: Vec<Vec<usize>>,
    /// Graph inputs nobody reads, freed after the first step.
    unread_inputs: Vec<usize>,
}

impl Simulation {
    /// The state before the first step: the graph inputs are live.
    pub fn new(m: &MemoryModel) -> Simulation {
        let mut live = 0;
        let mut unread_inputs = Vec::new();
        for &t in &m.initial {
            live += m.size[t];
            if m.readers[t] == 0 && !m.pinned[t] {
                unread_inputs.push(t);
            }
        }
        Simulation {
            live,
            remaining: m.readers.clone(),
            freed: Vec::new(),
            unread_inputs,
        }
    }

    /// Live bytes while `v` would run now.
    pub fn cost(&self, m: &MemoryModel, v: usize) -> usize {
        self.live + m.out_bytes(v)
    }

    /// Bytes that running `v` now would free.
    pub fn frees(&self, m: &MemoryModel, v: usize) -> usize {
        let mut f: usize = m.reads[v]
            .iter()
            .filter(|&&t| self.remaining[t] == 1 && !m.pinned[t])
            .map(|&t| m.size[t])
            .sum();
        if let Some(o) = m.writes[v] {
            if m.readers[o] == 0 && !m.pinned[o] {
                f += m.size[o];
            }
        }
        f
    }

    /// Runs `v`; returns the live bytes during the step.
    pub fn run(&mut self, m: &MemoryModel, v: usize) -> usize {
        let during = self.cost(m, v);
        self.live = during;
        let mut freed = Vec::new();
        if self.freed.is_empty() {
            freed.append(&mut self.unread_inputs);
        }
        for &t in &m.reads[v] {
            self.remaining[t] -= 1;
            if self.remaining[t] == 0 && !m.pinned[t] {
                freed.push(t);
            }
        }
        if let Some(o) = m.writes[v] {
            if m.readers[o] == 0 && !m.pinned[o] {
                freed.push(o);
            }
        }
        for &t in &freed {
            self.live -= m.size[t];
        }
        self.freed.push(freed);
        during
    }

    /// Undoes the last [`Simulation::run`], which ran `v`.
    pub fn undo(&mut self, m: &MemoryModel, v: usize) {
        let freed = self.freed.pop().expect("a step to undo");
        for &t in &freed {
            self.live += m.size[t];
        }
        for &t in &m.reads[v] {
            self.remaining[t] += 1;
        }
        self.live -= m.out_bytes(v);
        if self.freed.is_empty() {
            // The first step also freed the unread inputs; keep them for the next first step.
            self.unread_inputs = freed
                .into_iter()
                .filter(|t| m.initial.contains(t) && m.readers[*t] == 0)
                .collect();
        }
    }
}
