//! Planning: the stages between the optimised graph and the generated code — which tensors
//! share memory ([`sharing`]), the order of the ops (`crate::schedule`) and the offsets
//! (`crate::place`) — run within one work budget ([`work`]).
//!
//! [`plan_graph`] is the entry point. Each candidate sharing choice is scheduled and placed
//! by [`evaluate`]; the ONNX file's order and tract's order are kept as baselines
//! ([`OrderPlan`]); [`PlanStats`] says how the plan compares.
//!
//! **Work.** The budget is counted in work units, not time ([`work::Budget`]), so a plan is
//! the same on every machine under any load. It covers the whole planning (every search and
//! placement): each stage gets a share of what is left, so a search that finishes early
//! leaves its work to the next ones, and one that does not is cut at its share and keeps the
//! best order it has (reported as not optimal).

pub mod sharing;
pub mod stream;
pub mod work;

use std::time::Instant;

use work::Budget;

use crate::error::{Error, Result};
use crate::ir::{self, SharingChoice};
use crate::place::{self, ArenaPlan};
use crate::schedule::memory::MemoryModel;
use crate::schedule::{self, Schedule, SeedOrder};
use crate::{passes, Compiled, Options};

/// Node limits of the placement search at the kept plan's peak (see [`place::Ascending`]),
/// one round each until a placement fits: most that fit are found in under a thousand
/// nodes; a round that finds none costs about 5 µs a node on the development machine.
const FINAL_PLACEMENT_NODES: [usize; 2] = [5_000, 40_000];

/// Adjacent swaps tried by `schedule::flatten` on a kept order its placement left above its
/// peak (about 20 ms on a 110-op DAG).
const FLATTEN_PROPOSALS: usize = 3_000;

/// Figures of a plan, for reports and the CLI.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanStats {
    /// Peak live bytes of the chosen order under the memory model.
    pub peak_live_bytes: usize,
    /// The lowest peak the scheduler found over all orders (the chosen order may have a
    /// higher peak when it places into a smaller arena).
    pub min_peak_bytes: usize,
    /// True when `min_peak_bytes` is proven minimal (the exact search finished in its budget).
    pub optimal: bool,
    /// Scheduling and placement time, in milliseconds (the only figure that depends on the
    /// machine).
    pub planning_ms: f64,
    /// Work units planning spent (see [`work`]).
    pub work_units: u64,
    /// Arena of the ONNX file's order, nothing shared, not streamed, placed by the same
    /// placer.
    pub file_order_arena_bytes: usize,
    /// Arena of tract's `eval_order_opt_ram` order, nothing shared, not streamed, placed by
    /// the same placer.
    pub tract_order_arena_bytes: usize,
    /// Arena of the best plan for the graph as written, nothing shared: every op (BatchNorm,
    /// activation, Add, ...) its own output buffer, under the best order found. The baseline.
    pub plain_arena_bytes: usize,
    /// Arena of the best plan after fusion (activations and scale/shift folded into their
    /// producers) but with no buffer sharing (no in place, no zero-copy concatenation).
    pub fused_plain_arena_bytes: usize,
    /// Arena of the best plan with every sharing the graph allows forced on.
    pub forced_sharing_arena_bytes: usize,
    /// True when the fused plain plan's order is proven minimal.
    pub plain_optimal: bool,
    /// Nodes that write their output over an input.
    pub in_place_nodes: usize,
    /// Concatenation inputs written straight into their slice of the output.
    pub zero_copy_slots: usize,
    /// Search states expanded.
    pub search_states: usize,
    /// Segments between cut points that were searched.
    pub segments: usize,
    /// Arena of the best plan without streamed stages (equal to the arena when no stage
    /// is kept).
    pub unstreamed_arena_bytes: usize,
}

/// A baseline order of the optimised graph before streaming and its placement, for
/// comparisons.
#[derive(Clone, Debug)]
pub struct OrderPlan {
    /// The order of execution, of the unstreamed graph (whose node ids differ from the
    /// plan's once a stage is kept: see `labels`).
    pub schedule: Schedule,
    /// Each step's node: its ONNX name, or its op type when unnamed.
    pub labels: Vec<String>,
    /// Its placement: arena size and live bytes per step.
    pub plan: ArenaPlan,
}

/// One sharing choice, scheduled and placed.
#[derive(Clone, Debug)]
pub struct Evaluated {
    /// The choice.
    pub choice: SharingChoice,
    /// Its memory model.
    pub model: MemoryModel,
    /// What the order search found.
    pub scheduled: schedule::Scheduled,
    /// The order kept: the search's, or a seed that places into a smaller arena.
    pub schedule: Schedule,
    /// Its placement.
    pub plan: ArenaPlan,
}

/// Schedules and places `graph` under sharing `choice` within `budget`, the orders in
/// `known` seeding the search (sharing never adds live bytes, so the best order of a plan
/// with less sharing bounds one with more).
///
/// The objective is the placed arena: where placement leaves a gap above the optimal order's
/// peak, the seed orders are placed too (while the budget allows) and the smallest arena wins.
pub fn evaluate(
    graph: &ir::Graph,
    sharing: &ir::Sharing,
    choice: SharingChoice,
    alignment: usize,
    budget: &Budget,
    known: &[Schedule],
) -> Evaluated {
    let model = MemoryModel::with_sharing(graph, alignment, sharing, &choice);
    // The search takes most of the slot; placement (and trying other orders) the rest.
    let search = budget.share(17, 20);
    let scheduled = schedule::plan_within(graph, &model, &search, schedule::MAX_STATES, known);
    let mut schedule = scheduled.schedule.clone();
    let mut plan = place::place_within(graph, &model, &schedule, Some(budget));
    if plan.arena_bytes > plan.lower_bound() {
        // Other orders of the same peak, then the seeds, may place into less.
        let others = schedule::alternatives(
            graph,
            &model,
            &scheduled,
            scheduled.peak_live_bytes,
            1..5,
            budget,
        );
        let seeds = scheduled.seeds.iter().map(|(_, s)| s.clone());
        for s in others.into_iter().chain(seeds) {
            if budget.is_over() || plan.arena_bytes <= plan.lower_bound() {
                break;
            }
            let p = place::place_within(graph, &model, &s, Some(budget));
            if p.arena_bytes < plan.arena_bytes {
                schedule = s;
                plan = p;
            }
        }
    }
    Evaluated {
        choice,
        model,
        scheduled,
        schedule,
        plan,
    }
}

/// Fails unless `alignment` suits every element type in the arena (below 4 only for
/// int8-only arenas).
fn check_alignment(graph: &ir::Graph, alignment: usize) -> Result<()> {
    if !alignment.is_power_of_two() {
        return Err(Error::Model(format!(
            "alignment {alignment} must be a power of two"
        )));
    }
    let mut used = vec![false; graph.tensors.len()];
    for n in &graph.nodes {
        used[n.output.0] = true;
        for t in &n.inputs {
            used[t.0] = true;
        }
    }
    for t in graph.inputs.iter().chain(&graph.outputs) {
        used[t.0] = true;
    }
    if let Some(t) = graph
        .tensors
        .iter()
        .zip(&used)
        .find(|(t, &u)| u && t.in_arena() && t.dtype.size() > alignment)
    {
        return Err(Error::Model(format!(
            "alignment {alignment} is too small for tensor `{}` ({:?}, {} bytes per element); use at least {}",
            t.0.name,
            t.0.dtype,
            t.0.dtype.size(),
            t.0.dtype.size()
        )));
    }
    Ok(())
}

/// The stages after import, on a graph already in our IR: passes, then planning within
/// `options.work` (and `options.time_limit`, if set).
///
/// Sharing memory is a choice: every sharing the graph allows, the plain model (nothing
/// shared), in place only and zero-copy concatenation only are each scheduled and placed,
/// and the best then improves by flipping one concatenation at a time ([`sharing`]). The
/// plain plan is a candidate, so the result is never worse than it.
pub fn plan_graph(mut graph: ir::Graph, options: &Options) -> Result<Compiled> {
    check_alignment(&graph, options.alignment)?;
    let alignment = options.alignment;
    // The graph as written (one buffer per op output, nothing shared), for the baseline.
    let mut written = graph.without_weight_data();
    passes::as_written(&mut written);
    passes::optimize(&mut graph);
    crate::ops::conv::pointwise_convs_as_products(&mut graph);
    crate::ops::gemm::weights_by_step(&mut graph);
    crate::ops::conv::select_tiled(&mut graph, alignment);
    crate::ops::gemm::select_packed(&mut graph);
    let started = Instant::now();
    let mut clock = Budget::new(options.work, None);
    if let Some(limit) = options.time_limit {
        clock = clock.with_time_limit(limit);
    }
    // Regions: runs of the graph from its start and from the end of the last stage, and the
    // chains anywhere that would hold the most bytes as windows.
    let regions = |g: &ir::Graph, start: usize| {
        let mut r = stream::candidates(g, start);
        let more = if start > 0 {
            stream::candidates(g, 0)
        } else {
            Vec::new()
        };
        for c in more.into_iter().chain(stream::chains(g, CHAIN_CANDIDATES)) {
            if !r.contains(&c) {
                r.push(c);
            }
        }
        r
    };
    let candidates = if options.streaming {
        regions(&graph, 0)
    } else {
        Vec::new()
    };
    if candidates.is_empty() {
        let mut c = plan_optimized(graph, &written, alignment, &clock)?;
        c.stats.planning_ms = started.elapsed().as_secs_f64() * 1e3;
        c.stats.work_units = clock.used();
        return Ok(c);
    }
    // Half the time for the plan as it is, then the stages: each candidate region, at
    // several band heights, scheduled and placed quickly with nothing shared; the best few
    // graphs within the cost budget ([`BEAM`]) go on to the next round with the regions
    // left, while a stage shrinks the arena. The best graphs found ([`FINALISTS`]) are
    // planned in full, and the best kept only where its placed arena is smaller.
    let half = clock.share(1, 2);
    // Planning needs shapes only: the weights' data stays out while the search copies the
    // graph, and goes back into the plan returned.
    let weights = graph.take_weight_data();
    let mut base = plan_optimized(graph.clone(), &written, alignment, &half)?;
    base.stats.unstreamed_arena_bytes = base.plan.arena_bytes;
    // Streaming's cost: the stages' estimated extra instructions (see
    // `StreamOp::overhead_estimate`) stay within a share of the model's own (estimated low).
    let cost_budget = stream::cost_estimate(&graph) * u64::from(options.stream_cost_percent) / 100;
    let overhead =
        |g: &ir::Graph| -> u64 { stream::stages(g).map(|(_, s)| s.overhead_estimate()).sum() };
    // The search takes half the work left; the final plan the rest.
    let search = clock.share(1, 2);
    let read_caller = !options.copy_input;
    // A beam of the best few graphs so far (each with the regions left to try): a stage
    // that is best alone can leave no room for the next (one long stage against two).
    type Key = (usize, usize, std::cmp::Reverse<usize>);
    // (The graph as it is bounds nothing: its plan shares memory, the quick ones do not.)
    let mut beam: Vec<(usize, ir::Graph, Vec<stream::Region>)> =
        vec![(usize::MAX, graph.clone(), candidates)];
    let mut finalists: Vec<(Key, ir::Graph)> = Vec::new();
    let mut slowest = 0u64;
    let mut rounds = 0u32;
    while !beam.is_empty() && !search.is_over() {
        rounds += 1;
        let tries: usize = beam.iter().map(|(_, _, c)| c.len()).sum();
        let quick = search.left() / (2 * u64::from(rounds) * 2 * tries.max(1) as u64);
        let mut next: Vec<(Key, ir::Graph)> = Vec::new();
        for (parent, from, candidates) in &beam {
            for region in candidates {
                let wide = stream::band_rows(from, region);
                let mut bands = vec![1, 2, 3, 4, 5, 6, 8, wide];
                bands.sort_unstable();
                bands.dedup();
                // Each band with int8 depthwise windows split and whole, where there are any.
                let splits: &[bool] = if stream::splits(from, region) {
                    &[false, true]
                } else {
                    &[false]
                };
                let tries = bands
                    .iter()
                    .flat_map(|&band| splits.iter().map(move |&split| (band, split)));
                for (band, split) in tries {
                    // Not another try when the slowest one so far would overrun the search.
                    if search.is_over() || search.left() < slowest {
                        break;
                    }
                    let before = clock.used();
                    let Some(g) = stream::apply(from, region, band, alignment, read_caller, split)
                    else {
                        continue;
                    };
                    if overhead(&g) > cost_budget {
                        continue;
                    }
                    let e = evaluate(
                        &g,
                        &ir::Sharing::default(),
                        SharingChoice::none(),
                        alignment,
                        &search.slice(quick),
                        &[],
                    );
                    slowest = slowest.max(clock.used() - before);
                    if e.plan.arena_bytes >= *parent {
                        continue;
                    }
                    // Equal arenas: the smaller stages first (room for the next round's
                    // stages below them), then the wider band (fewer calls).
                    let scratch: usize = stream::stages(&g).map(|(_, s)| s.scratch_bytes).sum();
                    next.push(((e.plan.arena_bytes, scratch, std::cmp::Reverse(band)), g));
                }
            }
        }
        next.sort_by_key(|(k, _)| *k);
        next.dedup_by_key(|(k, _)| *k);
        next.truncate(BEAM);
        // The best few of all rounds, kept as the rounds go.
        finalists.extend(next.iter().take(FINALISTS).map(|(k, g)| (*k, g.clone())));
        finalists.sort_by_key(|(k, _)| *k);
        finalists.truncate(FINALISTS);
        beam = next
            .into_iter()
            .map(|((arena, ..), g)| {
                let after = g
                    .nodes
                    .iter()
                    .rposition(|n| matches!(n.op, ir::Op::Stream(_)));
                let candidates = regions(&g, after.map_or(0, |v| v + 1));
                (arena, g, candidates)
            })
            .collect();
    }
    // The quick plans rank the graphs; the best is planned in full with all the time left,
    // and the next few (sharing can change the order between them) with what it leaves,
    // each kept only when its order is proven minimal too and its arena smaller.
    let mut best: Option<Compiled> = None;
    let mut took = 0u64;
    for (_, streamed) in finalists {
        // Another full plan only while the time left holds three times what the last took.
        if best
            .as_ref()
            .is_some_and(|b| !b.stats.optimal || clock.left() < 3 * took)
        {
            break;
        }
        let before = clock.used();
        let planned = plan_optimized(streamed, &written, alignment, &clock)?;
        took = clock.used() - before;
        if best
            .as_ref()
            .is_none_or(|b| planned.plan.arena_bytes < b.plan.arena_bytes && planned.stats.optimal)
        {
            best = Some(planned);
        }
    }
    let finish = |mut c: Compiled| {
        c.stats.planning_ms = started.elapsed().as_secs_f64() * 1e3;
        c.stats.work_units = clock.used();
        c
    };
    let Some(mut planned) = best else {
        base.graph.put_weight_data(weights);
        return Ok(finish(base));
    };
    if planned.plan.arena_bytes >= base.plan.arena_bytes {
        base.graph.put_weight_data(weights);
        return Ok(finish(base));
    }
    // Stages only add tensors: every weight keeps its index.
    planned.graph.put_weight_data(weights);
    planned.stats.unstreamed_arena_bytes = base.plan.arena_bytes;
    // The baselines are what a runtime without our planning runs: the graph unstreamed.
    planned.stats.file_order_arena_bytes = base.stats.file_order_arena_bytes;
    planned.stats.tract_order_arena_bytes = base.stats.tract_order_arena_bytes;
    planned.file_order = base.file_order;
    planned.tract_order = base.tract_order;
    assert!(planned.plan.arena_bytes < planned.stats.unstreamed_arena_bytes);
    Ok(finish(planned))
}

/// Graphs with stages kept per round of the stage search.
const BEAM: usize = 6;

/// Graphs with stages planned in full at the end of the search.
const FINALISTS: usize = 3;

/// Chains (see `stream::chains`) tried per round besides the runs from the graph's start.
const CHAIN_CANDIDATES: usize = 12;

/// Schedules and places an optimised graph (after the passes) within `clock`: the sharing
/// choice, the baselines, the figures (`planning_ms` and `work_units` are the caller's).
fn plan_optimized(
    graph: ir::Graph,
    written: &ir::Graph,
    alignment: usize,
    clock: &Budget,
) -> Result<Compiled> {
    let sharing = graph.sharing();
    let shares = sharing::shares_anything(&sharing);
    // Weights of the stages still to come: the plain plan 2, with something to share the
    // three candidates 4 (all sharing) + 1 + 1 and the local search 2, the as-written
    // baseline 1. Each stage takes its weight's share of the time left.
    let mut weights: u64 = if shares { 11 } else { 3 };
    let mut stage = |clock: &Budget, weight: u64| {
        let b = clock.share(weight, weights.max(1));
        weights = weights.saturating_sub(weight);
        b
    };
    let plain = evaluate(
        &graph,
        &sharing,
        SharingChoice::none(),
        alignment,
        &stage(clock, 2),
        &[],
    );
    let baseline = |which: SeedOrder| {
        let schedule = which.schedule(&graph, &plain.model);
        let plan = place::place(&graph, &plain.model, &schedule);
        let labels = schedule
            .order
            .iter()
            .map(|v| {
                let n = &graph.nodes[v.0];
                if n.name.is_empty() {
                    &n.op_type
                } else {
                    &n.name
                }
                .clone()
            })
            .collect();
        OrderPlan {
            schedule,
            labels,
            plan,
        }
    };
    let file_order = baseline(SeedOrder::File);
    let tract_order = baseline(SeedOrder::Tract);
    let (fused_plain_arena_bytes, plain_optimal) =
        (plain.plan.arena_bytes, plain.scheduled.optimal);
    let plain_model = plain.model.clone();
    let (best, forced_sharing_arena_bytes) = if shares {
        sharing::search(&graph, &sharing, alignment, plain, clock, &mut stage)
    } else {
        (plain, fused_plain_arena_bytes)
    };
    let written_plan = evaluate(
        written,
        &ir::Sharing::default(),
        SharingChoice::none(),
        alignment,
        &stage(clock, 1),
        &[],
    );
    let Evaluated {
        mut choice,
        mut model,
        scheduled,
        mut schedule,
        mut plan,
    } = best;
    // Never worse than the baselines (a search cut short may leave a seed that places
    // worse than they do).
    for b in [&file_order, &tract_order] {
        if b.plan.arena_bytes < plan.arena_bytes {
            choice = SharingChoice::none();
            model = plain_model.clone();
            schedule = b.schedule.clone();
            plan = b.plan.clone();
        }
    }
    // The placers above stop early, as they run for every candidate; the plan kept gets a
    // longer look at its order's peak, counted in nodes (the work budget is spent by now),
    // so the plan stays a function of the model and the options.
    // When the order leaves no placement at its peak within those nodes, an order of the
    // same peak with its live bytes spread more evenly (`schedule::flatten`) gets the same
    // look.
    if plan.arena_bytes > plan.lower_bound() {
        let at_peak = |order: &Schedule| {
            FINAL_PLACEMENT_NODES
                .iter()
                .find_map(|&nodes| place::place_at_bound(&graph, &model, order, nodes))
        };
        if let Some(p) = at_peak(&schedule) {
            plan = p;
        } else {
            let flat = schedule::flatten::flatten(&model, &schedule, FLATTEN_PROPOSALS);
            if let Some(p) = at_peak(&flat).filter(|p| p.arena_bytes < plan.arena_bytes) {
                plan = p;
                schedule = flat;
            }
        }
    }
    let stats = PlanStats {
        peak_live_bytes: model.peak(&schedule.indices()),
        min_peak_bytes: scheduled.peak_live_bytes,
        optimal: scheduled.optimal,
        planning_ms: 0.0,
        work_units: 0,
        file_order_arena_bytes: file_order.plan.arena_bytes,
        tract_order_arena_bytes: tract_order.plan.arena_bytes,
        plain_arena_bytes: written_plan.plan.arena_bytes,
        fused_plain_arena_bytes,
        forced_sharing_arena_bytes,
        plain_optimal,
        in_place_nodes: plan.in_place.iter().filter(|p| p.is_some()).count(),
        zero_copy_slots: choice.slots.iter().filter(|&&s| s).count(),
        search_states: scheduled.states,
        segments: scheduled.segments,
        unstreamed_arena_bytes: plan.arena_bytes,
    };
    Ok(Compiled {
        graph,
        schedule,
        plan,
        stats,
        file_order,
        tract_order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_alignment_is_an_error() {
        let g = ir::Graph::default();
        assert!(check_alignment(&g, 12).is_err());
        assert!(check_alignment(&g, 16).is_ok());
    }
}
