//! Orders found without search: the reference orders (baselines) and greedy ones. They
//! seed the exhaustive search with a bound, and stand in for it when its budget runs out.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::memory::{MemoryModel, Simulation};

/// The topological order that runs, among the ready nodes, the one with the smallest key
/// first (Kahn's algorithm with a priority queue). Always valid, whatever the keys.
pub fn by_key<K: Ord + Copy>(m: &MemoryModel, key: impl Fn(usize) -> K) -> Vec<usize> {
    let mut missing: Vec<usize> = m.preds.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<Reverse<(K, usize)>> = (0..m.len())
        .filter(|&v| missing[v] == 0)
        .map(|v| Reverse((key(v), v)))
        .collect();
    let mut order = Vec::with_capacity(m.len());
    while let Some(Reverse((_, v))) = ready.pop() {
        order.push(v);
        for &s in &m.succs[v] {
            missing[s] -= 1;
            if missing[s] == 0 {
                ready.push(Reverse((key(s), s)));
            }
        }
    }
    order
}

/// How a greedy order picks the next node among the ready ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Greedy {
    /// Smallest live bytes after the step, then smallest during it.
    LeastAfter,
    /// Smallest live bytes during the step, then after it.
    LeastDuring,
    /// Finish the branch in hand: prefer a reader of the last output, then as `LeastAfter`.
    DepthFirst,
}

/// A greedy order under the memory model.
pub fn greedy(m: &MemoryModel, rule: Greedy) -> Vec<usize> {
    let mut missing: Vec<usize> = m.preds.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..m.len()).filter(|&v| missing[v] == 0).collect();
    let mut sim = Simulation::new(m);
    let mut order = Vec::with_capacity(m.len());
    let mut last: Option<usize> = None;
    while !ready.is_empty() {
        let pick = (0..ready.len())
            .min_by_key(|&i| {
                let v = ready[i];
                let during = sim.cost(m, v);
                let after = sim.after(m, v);
                let off_branch = match (rule, last) {
                    (Greedy::DepthFirst, Some(l)) => !m.preds[v].contains(&l),
                    _ => false,
                };
                match rule {
                    Greedy::LeastDuring => (off_branch, during, after, v),
                    Greedy::LeastAfter | Greedy::DepthFirst => (off_branch, after, during, v),
                }
            })
            .expect("a ready node");
        let v = ready.swap_remove(pick);
        sim.run(m, v);
        order.push(v);
        last = Some(v);
        for &s in &m.succs[v] {
            missing[s] -= 1;
            if missing[s] == 0 {
                ready.push(s);
            }
        }
    }
    order
}

/// Every node as late as its first reader allows: a post-order walk from the nodes no one
/// reads, each node's deepest input first (the longest chain of producers behind it), so a
/// short side branch is made just before its reader, after the long chain. What a long chain
/// fed from one wide fan-out needs (an unrolled recurrent layer: step t's input projection
/// made just before step t, not all 49 up front), where the greedy rules, seeing equal
/// costs, make them all first.
pub fn lazy(m: &MemoryModel) -> Vec<usize> {
    // Depth: the longest chain of producers ending at the node (nodes are in a topological
    // order of their own only by accident, so by Kahn's order).
    let topo = by_key(m, |v| v);
    let mut depth = vec![0usize; m.len()];
    for &v in &topo {
        depth[v] = m.preds[v].iter().map(|&p| depth[p] + 1).max().unwrap_or(0);
    }
    let inputs: Vec<Vec<usize>> = m
        .preds
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.sort_by_key(|&u| (Reverse(depth[u]), u));
            p
        })
        .collect();
    let mut done = vec![false; m.len()];
    let mut order = Vec::with_capacity(m.len());
    for root in (0..m.len()).filter(|&v| m.succs[v].is_empty()) {
        let mut stack = vec![(root, 0usize)];
        while let Some((v, next)) = stack.last_mut() {
            let v = *v;
            if done[v] {
                stack.pop();
            } else if let Some(&p) = inputs[v].get(*next) {
                *next += 1;
                if !done[p] {
                    stack.push((p, 0));
                }
            } else {
                done[v] = true;
                order.push(v);
                stack.pop();
            }
        }
    }
    order
}
