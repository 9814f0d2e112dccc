//! An order of the same peak with its live bytes spread more evenly, for the placer.
//!
//! The order search stops at the first order of minimum peak, and many orders share it. They
//! do not place alike: where many steps sit at the peak, or just under it, the tensors live
//! across them must tile the arena exactly, and an order can leave no such tiling (on 110-op
//! DAGs that read far back, 4 of 20 searched orders placed 5–10% above their peak). An order
//! with fewer steps at the peak and lower live bytes around them leaves the placer room.

use super::memory::MemoryModel;
use super::Schedule;

/// `schedule` after `proposals` swaps of adjacent steps were tried, each kept when the two
/// nodes are independent and the order gets no worse by (peak, steps at the peak, sum of
/// squared live bytes per step). Equal orders are kept too, so the search walks across the
/// plateaus of equal scores. The positions come from a fixed xorshift sequence: the result
/// is a function of the model and `proposals`.
///
/// `compiler/tests/planning_budget.rs` checks it on random DAGs: the order stays topological,
/// its peak never rises, and it has no more steps at the peak.
pub fn flatten(m: &MemoryModel, schedule: &Schedule, proposals: usize) -> Schedule {
    let mut order = schedule.indices();
    if order.len() < 2 {
        return schedule.clone();
    }
    let score = |order: &[usize]| {
        let profile = m.profile(order);
        let peak = profile.iter().copied().max().unwrap_or(0);
        let at_peak = profile.iter().filter(|&&b| b == peak).count();
        let squares: u128 = profile.iter().map(|&b| (b as u128).pow(2)).sum();
        (peak, at_peak, squares)
    };
    let mut best = score(&order);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..proposals {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % (order.len() as u64 - 1)) as usize;
        if m.preds[order[i + 1]].contains(&order[i]) {
            continue;
        }
        order.swap(i, i + 1);
        let s = score(&order);
        if s <= best {
            best = s;
        } else {
            order.swap(i, i + 1);
        }
    }
    Schedule::from_indices(order)
}
