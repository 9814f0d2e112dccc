//! The memory model every order is judged by.
//!
//! While a node runs, its inputs, its output and every other live buffer are held. Weights
//! live in flash and cost nothing. A buffer dies after its last reader; graph inputs are live
//! from the start until their last use, graph outputs until the end. Each buffer occupies its
//! size rounded up to the arena alignment, as it will in the arena.
//!
//! **Sharing.** The graph states which tensors *may* share memory ([`Sharing`]); a
//! [`SharingChoice`] says which of those the plan uses:
//!
//! - a concatenation input chosen for zero-copy is a slice of the concatenation's output:
//!   the two are one *buffer* with a fixed layout. Each member takes its own bytes when it is
//!   produced (a slice when its producer writes it, the rest of the output when the
//!   concatenation runs), so sharing never holds more bytes than not sharing; the buffer is
//!   freed when every reader of every member has run. Nested concatenations nest;
//! - with in-place on, a node that can overwrite an input writes its output over that input's
//!   buffer when it is the buffer's last reader and the sizes match. Whether that holds depends
//!   on the order, so it is decided as the order is followed, never fixed in advance.
//!
//! The model is built from the IR; the scheduler and placer read only this.

use crate::ir::{Graph, Sharing, SharingChoice, TensorId, TensorKind};

/// The scheduling problem: nodes, the buffers they read and write, and buffer sizes.
#[derive(Clone, Debug)]
pub struct MemoryModel {
    /// Per node: the buffers it reads, each once.
    pub reads: Vec<Vec<usize>>,
    /// Per node: the buffer its output belongs to (`None` for a tensor of no bytes).
    pub writes: Vec<Option<usize>>,
    /// Per node: buffers it may overwrite with its output, when it is their last reader.
    pub in_place: Vec<Vec<usize>>,
    /// Per node: the nodes whose output it reads, each once.
    pub preds: Vec<Vec<usize>>,
    /// Per node: the nodes that read its output, each once.
    pub succs: Vec<Vec<usize>>,
    /// Per buffer: bytes (rounded up to the alignment).
    pub size: Vec<usize>,
    /// Per buffer: how many nodes read it.
    pub readers: Vec<u32>,
    /// Per buffer: held until the end (it holds a graph output).
    pub pinned: Vec<bool>,
    /// Buffers live before the first step (graph inputs).
    pub initial: Vec<usize>,
    /// Per tensor: its buffer and its byte offset inside it (`None`: weights, empty tensors).
    pub home: Vec<Option<(usize, usize)>>,
    /// Per tensor: the byte ranges of its buffer it is the first to write (its own bytes
    /// minus the slices its zero-copy inputs wrote; a buffer's root also owns the padding
    /// up to the alignment).
    pub own: Vec<Vec<(usize, usize)>>,
    /// Per node: bytes it allocates when it runs not in place (its output's own bytes).
    pub alloc: Vec<usize>,
    /// Per node: the buffer of its kernel's scratch, held during its step only.
    pub temp: Vec<Option<usize>>,
    /// Every buffer size is a multiple of this many bytes.
    pub alignment: usize,
}

impl MemoryModel {
    /// The plain model of `g`: every tensor its own buffer, nothing in place.
    pub fn new(g: &Graph, alignment: usize) -> MemoryModel {
        MemoryModel::with_sharing(g, alignment, &Sharing::default(), &SharingChoice::none())
    }

    /// The model of `g` with the sharing `choice` makes among the facts in `sharing`.
    pub fn with_sharing(
        g: &Graph,
        alignment: usize,
        sharing: &Sharing,
        choice: &SharingChoice,
    ) -> MemoryModel {
        let alignment = alignment.max(1);
        let roots = sharing.resolve(g, choice);
        // Tensors some node or the interface uses (passes leave dead ones behind).
        let mut used = vec![false; g.tensors.len()];
        for n in &g.nodes {
            used[n.output.0] = true;
            for t in n.inputs.iter().chain(&n.scratch) {
                used[t.0] = true;
            }
        }
        for t in g.inputs.iter().chain(&g.outputs) {
            used[t.0] = true;
        }
        // Buffers get dense indices, one per root tensor with bytes.
        let mut buffer_of_root = vec![None; g.tensors.len()];
        let mut size = Vec::new();
        let mut pinned = Vec::new();
        for (i, t) in g.tensors.iter().enumerate() {
            if used[i] && t.in_arena() && t.bytes() > 0 && roots[i].0 == TensorId(i) {
                buffer_of_root[i] = Some(size.len());
                size.push(t.bytes().div_ceil(alignment) * alignment);
                pinned.push(false);
            }
        }
        let home: Vec<Option<(usize, usize)>> = (0..g.tensors.len())
            .map(|i| {
                let t = &g.tensors[i];
                if !used[i] || !t.in_arena() || t.bytes() == 0 {
                    return None;
                }
                let (root, offset) = roots[i];
                buffer_of_root[root.0].map(|b| (b, offset))
            })
            .collect();
        for (i, t) in g.tensors.iter().enumerate() {
            if let (TensorKind::Output(_), Some((b, _))) = (&t.kind, home[i]) {
                pinned[b] = true;
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
                if let Some((b, _)) = home[t.0] {
                    if !reads[v].contains(&b) {
                        reads[v].push(b);
                        readers[b] += 1;
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
        let writes: Vec<Option<usize>> = g
            .nodes
            .iter()
            .map(|n| home[n.output.0].map(|h| h.0))
            .collect();
        // In place: the output must be a buffer of its own (not a slice, not a shared
        // concatenation), the input a whole buffer of the same size that no other operand of
        // the node touches.
        let mut members = vec![0usize; size.len()];
        for h in home.iter().flatten() {
            members[h.0] += 1;
        }
        let in_place = (0..n)
            .map(|v| {
                let node = &g.nodes[v];
                let Some((out_b, 0)) = home[node.output.0] else {
                    return Vec::new();
                };
                if !choice.in_place || members[out_b] != 1 {
                    return Vec::new();
                }
                sharing
                    .in_place
                    .get(v)
                    .into_iter()
                    .flatten()
                    .filter_map(|&pos| {
                        let t = node.inputs[pos];
                        let (b, off) = home[t.0]?;
                        let others_elsewhere = node
                            .inputs
                            .iter()
                            .enumerate()
                            .all(|(q, u)| q == pos || home[u.0].is_none_or(|h| h.0 != b));
                        (off == 0 && size[b] == size[out_b] && b != out_b && others_elsewhere)
                            .then_some(b)
                    })
                    .collect()
            })
            .collect();
        let mut initial: Vec<usize> = g
            .inputs
            .iter()
            .filter_map(|t| home[t.0].map(|h| h.0))
            .collect();
        initial.dedup();
        // Own byte ranges: the tensor's span minus the spans of its chosen zero-copy inputs.
        let parent = sharing.parents(g, choice);
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); g.tensors.len()];
        for (t, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children[p.0].push(t);
            }
        }
        let own: Vec<Vec<(usize, usize)>> = (0..g.tensors.len())
            .map(|t| {
                let Some((b, off)) = home[t] else {
                    return Vec::new();
                };
                let end = if parent[t].is_none() {
                    size[b]
                } else {
                    off + g.tensors[t].bytes()
                };
                let mut holes: Vec<(usize, usize)> = children[t]
                    .iter()
                    .filter_map(|&c| home[c].map(|(_, o)| (o, o + g.tensors[c].bytes())))
                    .collect();
                holes.sort_unstable();
                let mut ranges = Vec::new();
                let mut cursor = off;
                for (s, e) in holes {
                    if s > cursor {
                        ranges.push((cursor, s));
                    }
                    cursor = cursor.max(e);
                }
                if end > cursor {
                    ranges.push((cursor, end));
                }
                ranges
            })
            .collect();
        let temp = g
            .nodes
            .iter()
            .map(|n| n.scratch.and_then(|t| home[t.0]).map(|h| h.0))
            .collect();
        let alloc = g
            .nodes
            .iter()
            .map(|n| own[n.output.0].iter().map(|(s, e)| e - s).sum())
            .collect();
        MemoryModel {
            reads,
            writes,
            in_place,
            preds,
            succs,
            size,
            readers,
            pinned,
            initial,
            home,
            own,
            alloc,
            temp,
            alignment,
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

    /// Bytes of the node's output buffer.
    pub fn out_bytes(&self, v: usize) -> usize {
        self.writes[v].map_or(0, |b| self.size[b])
    }

    /// Bytes the node holds while it runs in any order: its output, or its inputs when it
    /// may run in place (a lower bound of its step, for the search).
    pub fn own_bytes(&self, v: usize) -> usize {
        let ins: usize =
            self.reads[v].iter().map(|&b| self.size[b]).sum::<usize>() + self.temp_bytes(v);
        match self.writes[v] {
            // A shared concatenation reads its own output buffer: count it once.
            Some(o) if self.in_place[v].is_empty() && !self.reads[v].contains(&o) => {
                ins + self.size[o]
            }
            _ => ins,
        }
    }

    /// Bytes of node `v`'s kernel scratch (held during its step only).
    pub fn temp_bytes(&self, v: usize) -> usize {
        self.temp[v].map_or(0, |b| self.size[b])
    }

    /// Follows `order` (a topological order of all nodes): what each step holds and does.
    pub fn replay(&self, order: &[usize]) -> Replay {
        let mut sim = Simulation::new(self);
        let mut r = Replay {
            during: Vec::with_capacity(order.len()),
            in_place: vec![None; self.len()],
            step: vec![usize::MAX; self.len()],
            died: vec![order.len().saturating_sub(1); self.size.len()],
        };
        for (s, &v) in order.iter().enumerate() {
            r.in_place[v] = sim.in_place_target(self, v);
            r.step[v] = s;
            if let Some(b) = self.temp[v] {
                r.died[b] = s;
            }
            r.during.push(sim.run(self, v));
            for &b in sim.last_freed() {
                r.died[b] = s;
            }
        }
        r
    }

    /// Live bytes during each step of `order`.
    pub fn profile(&self, order: &[usize]) -> Vec<usize> {
        self.replay(order).during
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

/// What following an order does, step by step.
#[derive(Clone, Debug)]
pub struct Replay {
    /// Live bytes during each step.
    pub during: Vec<usize>,
    /// Per node: the buffer it overwrote in place, if any.
    pub in_place: Vec<Option<usize>>,
    /// Per node: the step it runs at.
    pub step: Vec<usize>,
    /// Per buffer: the last step it is held (the last step for pinned buffers).
    pub died: Vec<usize>,
}

/// One step of the undo log: where its freed buffers start in `Simulation::freed`, and
/// the bytes it allocated.
#[derive(Clone, Copy, Debug)]
struct Undo {
    freed_from: usize,
    allocated: usize,
}

/// Live bytes and remaining readers while an order is followed; steps can be undone,
/// which is what the exhaustive search needs.
#[derive(Clone, Debug)]
pub struct Simulation {
    /// Bytes live between steps.
    pub live: usize,
    remaining: Vec<u32>,
    undo: Vec<Undo>,
    /// The buffers each step freed, step after step (one vector, so steps allocate nothing).
    freed: Vec<usize>,
    /// Graph inputs nobody reads, freed after the first step.
    unread_inputs: Vec<usize>,
}

impl Simulation {
    /// The state before the first step: the graph inputs are live.
    pub fn new(m: &MemoryModel) -> Simulation {
        let mut live = 0;
        let mut unread_inputs = Vec::new();
        for &b in &m.initial {
            live += m.size[b];
            if m.readers[b] == 0 && !m.pinned[b] {
                unread_inputs.push(b);
            }
        }
        Simulation {
            live,
            remaining: m.readers.clone(),
            undo: Vec::new(),
            freed: Vec::new(),
            unread_inputs,
        }
    }

    /// True before the first step when graph inputs nobody reads are still held (the first
    /// step, whichever it is, frees them).
    pub fn holds_unread_inputs(&self) -> bool {
        self.undo.is_empty() && !self.unread_inputs.is_empty()
    }

    /// The buffer `v` would overwrite if it ran now.
    pub fn in_place_target(&self, m: &MemoryModel, v: usize) -> Option<usize> {
        m.in_place[v]
            .iter()
            .copied()
            .find(|&b| self.remaining[b] == 1 && !m.pinned[b])
    }

    /// Bytes `v` allocates for its output (its own bytes of the output buffer).
    fn allocation(&self, m: &MemoryModel, v: usize) -> usize {
        m.alloc[v]
    }

    /// Live bytes while `v` would run now.
    pub fn cost(&self, m: &MemoryModel, v: usize) -> usize {
        let scratch = m.temp_bytes(v);
        if self.in_place_target(m, v).is_some() {
            self.live + scratch
        } else {
            self.live + self.allocation(m, v) + scratch
        }
    }

    /// Live bytes after `v` would run now.
    pub fn after(&self, m: &MemoryModel, v: usize) -> usize {
        let mut after = self.live + self.allocation(m, v);
        for &b in &m.reads[v] {
            if self.remaining[b] == 1 && !m.pinned[b] {
                after -= m.size[b];
            }
        }
        if let Some(o) = m.writes[v] {
            if m.readers[o] == 0 && !m.pinned[o] {
                after -= m.size[o];
            }
        }
        after
    }

    /// Runs `v`; returns the live bytes during the step.
    pub fn run(&mut self, m: &MemoryModel, v: usize) -> usize {
        let during = self.cost(m, v);
        let allocated = self.allocation(m, v);
        self.live += allocated;
        let freed_from = self.freed.len();
        if self.undo.is_empty() {
            self.freed.append(&mut self.unread_inputs);
        }
        for &b in &m.reads[v] {
            self.remaining[b] -= 1;
            if self.remaining[b] == 0 && !m.pinned[b] {
                self.freed.push(b);
            }
        }
        if let Some(o) = m.writes[v] {
            if m.readers[o] == 0 && !m.pinned[o] {
                self.freed.push(o);
            }
        }
        for &b in &self.freed[freed_from..] {
            self.live -= m.size[b];
        }
        self.undo.push(Undo {
            freed_from,
            allocated,
        });
        during
    }

    /// The buffers the last step freed.
    fn last_freed(&self) -> &[usize] {
        let from = self.undo.last().map_or(self.freed.len(), |u| u.freed_from);
        &self.freed[from..]
    }

    /// Undoes the last [`Simulation::run`], which ran `v`.
    pub fn undo(&mut self, m: &MemoryModel, v: usize) {
        let Undo {
            freed_from,
            allocated,
        } = self.undo.pop().expect("a step to undo");
        for &b in &self.freed[freed_from..] {
            self.live += m.size[b];
        }
        for &b in &m.reads[v] {
            self.remaining[b] += 1;
        }
        self.live -= allocated;
        if self.undo.is_empty() {
            // The first step also freed the unread inputs; keep them for the next first step.
            self.unread_inputs = self.freed[freed_from..]
                .iter()
                .copied()
                .filter(|b| m.initial.contains(b) && m.readers[*b] == 0)
                .collect();
        }
        self.freed.truncate(freed_from);
    }
}
