//! Properties of the scheduler and the placer on random DAGs: the schedule is a topological
//! order, no two tensors that are live together share a byte, the arena is at least the
//! bound, and the exact search equals brute force over every topological order.

use microarena_compiler::ir::{Graph, Node, Op, OrderRank, TensorId, TensorKind};
use microarena_compiler::place::{self, Fit, Priority, STRATEGIES};
use microarena_compiler::schedule::memory::MemoryModel;
use microarena_compiler::schedule::{self, SearchLimits};
use proptest::prelude::*;

/// A random DAG as data: per node, the producers of its inputs (`None`: a graph input) and
/// its output size in elements; plus the shuffle of the file order.
#[derive(Clone, Debug)]
struct Dag {
    inputs: usize,
    input_len: Vec<usize>,
    nodes: Vec<(Vec<Option<usize>>, Option<usize>, usize)>,
}

fn dag(max_nodes: usize) -> impl Strategy<Value = Dag> {
    (1..=2usize, 1..=max_nodes).prop_flat_map(|(inputs, n)| {
        let node = |i: usize| {
            // Up to three operands among graph inputs and earlier nodes.
            let operand = (0..inputs + i).prop_map(move |k| if k < i { Some(k) } else { None });
            (
                prop::collection::vec(operand, 1..=3),
                prop::option::of(0..inputs),
                1..=64usize,
            )
        };
        let nodes: Vec<_> = (0..n).map(node).collect();
        (prop::collection::vec(1..=64usize, inputs), nodes).prop_map(move |(input_len, nodes)| {
            Dag {
                inputs,
                input_len,
                nodes,
            }
        })
    })
}

/// The IR graph of a [`Dag`]: opaque nodes (planning needs only shapes); nodes whose result
/// nobody reads are graph outputs; the file order is the node order.
fn graph(d: &Dag) -> Graph {
    let mut g = Graph::default();
    for (k, &len) in d.input_len.iter().enumerate() {
        let t = g.add_tensor(format!("in{k}"), vec![len], TensorKind::Input(k));
        g.inputs.push(t);
    }
    let mut outs: Vec<TensorId> = Vec::new();
    for (i, (ops, extra, len)) in d.nodes.iter().enumerate() {
        let mut inputs: Vec<TensorId> = ops
            .iter()
            .map(|o| match o {
                Some(p) => outs[*p],
                None => g.inputs[0],
            })
            .collect();
        if let Some(k) = extra {
            inputs.push(g.inputs[*k % d.inputs]);
        }
        let out = g.add_tensor(format!("t{i}"), vec![*len], TensorKind::Activation);
        g.nodes.push(Node {
            name: format!("n{i}"),
            op_type: "Test".into(),
            op: Op::Opaque {
                what: "test".into(),
            },
            inputs,
            output: out,
            scratch: None,
            rank: OrderRank { file: i, tract: i },
        });
        outs.push(out);
    }
    let consumers = g.consumers();
    for (i, t) in outs.iter().enumerate() {
        if consumers[t.0].is_empty() || i + 1 == outs.len() {
            let k = g.outputs.len();
            g.tensors[t.0].kind = TensorKind::Output(k);
            g.outputs.push(*t);
            g.output_shapes.push(g.tensors[t.0].shape.clone());
        }
    }
    g
}

/// The smallest peak over every topological order, by enumeration.
fn brute_force(m: &MemoryModel) -> usize {
    fn go(m: &MemoryModel, order: &mut Vec<usize>, done: &mut Vec<bool>, best: &mut usize) {
        if order.len() == m.len() {
            *best = (*best).min(m.peak(order));
            return;
        }
        for v in 0..m.len() {
            if !done[v] && m.preds[v].iter().all(|&p| done[p]) {
                done[v] = true;
                order.push(v);
                go(m, order, done, best);
                order.pop();
                done[v] = false;
            }
        }
    }
    let mut best = usize::MAX;
    go(m, &mut Vec::new(), &mut vec![false; m.len()], &mut best);
    best
}

/// Cases of the cheap properties: 200 by default (a debug `cargo test` in seconds);
/// `MICROARENA_PROPTEST_CASES` raises it. `.ci/run` sets 5,000 (about 17 s; the compiler
/// crate is optimised even in dev builds, see the workspace Cargo.toml): 5,000 + 5,000
/// graphs for the two cheap properties and a tenth of that for the whole-pipeline one (whose
/// searches run to their budget), over 10,000 random graphs in all.
fn cases() -> u32 {
    std::env::var("MICROARENA_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn search_equals_brute_force(d in dag(9), alignment in prop::sample::select(vec![4usize, 16, 64])) {
        let g = graph(&d);
        let s = schedule::plan(&g, alignment, SearchLimits::default());
        let m = MemoryModel::new(&g, alignment);
        prop_assert!(s.schedule.is_valid(&g));
        prop_assert!(s.optimal);
        prop_assert_eq!(m.peak(&s.schedule.indices()), s.peak_live_bytes);
        prop_assert_eq!(s.peak_live_bytes, brute_force(&m));
    }

    #[test]
    fn every_greedy_strategy_is_sound(d in dag(30)) {
        let g = graph(&d);
        let s = schedule::Schedule::file_order(&g);
        let m = MemoryModel::new(&g, 16);
        for (priority, fit) in STRATEGIES {
            let p = place::place_with(&g, &m, &s, priority, fit);
            prop_assert!(place::is_valid(&g, &p), "{:?} {:?}", priority, fit);
            prop_assert!(p.arena_bytes >= p.lower_bound());
        }
        let _ = (Priority::Size, Fit::Best);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases((cases() / 10).max(20)))]

    #[test]
    fn plans_are_sound(d in dag(30), alignment in prop::sample::select(vec![4usize, 16])) {
        let g = graph(&d);
        let c = microarena_compiler::plan_graph(
            g.clone(),
            // A small budget (1% of the default work): soundness must hold whether or not
            // the search finishes.
            &microarena_compiler::Options {
                alignment,
                work: microarena_compiler::DEFAULT_WORK / 100,
                ..Default::default()
            },
        ).expect("plans");
        prop_assert!(c.schedule.is_valid(&c.graph));
        prop_assert!(place::is_valid(&c.graph, &c.plan));
        prop_assert!(c.plan.arena_bytes >= c.plan.lower_bound());
        prop_assert!(c.plan.arena_bytes >= c.stats.min_peak_bytes);
        prop_assert_eq!(c.plan.lower_bound(), c.stats.peak_live_bytes);
        prop_assert!(c.stats.min_peak_bytes <= c.stats.peak_live_bytes);
        prop_assert!(c.plan.arena_bytes <= c.stats.file_order_arena_bytes);
        prop_assert!(c.plan.arena_bytes <= c.stats.tract_order_arena_bytes);
        for o in c.plan.offsets.iter().flatten() {
            prop_assert_eq!(o % alignment, 0);
        }
    }

}

#[test]
fn a_chain_is_one_piece_per_node_and_needs_no_search() {
    let d = Dag {
        inputs: 1,
        input_len: vec![8],
        nodes: (0..50)
            .map(|i| (vec![if i == 0 { None } else { Some(i - 1) }], None, 8 + i))
            .collect(),
    };
    let g = graph(&d);
    let s = schedule::plan(&g, 4, SearchLimits::default());
    assert!(s.optimal);
    assert_eq!(s.segments, 0);
    assert_eq!(s.states, 0);
}

#[test]
fn a_spent_budget_keeps_the_best_seed_and_says_so() {
    // Eight branches of three nodes off one input, joined at the end: the search needs
    // thousands of states, so a zero budget stops it at its first check.
    let mut nodes = Vec::new();
    for b in 0..8 {
        nodes.push((vec![None], None, 40 + 7 * b));
        nodes.push((vec![Some(3 * b)], None, 50 - 5 * b));
        nodes.push((vec![Some(3 * b + 1)], None, 3 + b));
    }
    nodes.push(((0..8).map(|b| Some(3 * b + 2)).collect(), None, 4));
    let d = Dag {
        inputs: 1,
        input_len: vec![16],
        nodes,
    };
    let g = graph(&d);
    let m = MemoryModel::new(&g, 4);
    let full = schedule::plan(&g, 4, SearchLimits::default());
    assert!(full.optimal);
    assert!(full.states > 1, "the case must need a search");
    let zero = SearchLimits {
        work: 0,
        ..Default::default()
    };
    let cut = schedule::plan(&g, 4, zero);
    assert!(!cut.optimal);
    assert!(cut.schedule.is_valid(&g));
    let best_seed = cut
        .seeds
        .iter()
        .map(|(_, o)| m.peak(&o.indices()))
        .min()
        .unwrap();
    assert_eq!(cut.peak_live_bytes, best_seed);
    assert!(full.peak_live_bytes <= best_seed);
}
