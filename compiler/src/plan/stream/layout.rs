//! The stage's buffers packed into its scratch, and which graph inputs it reads in place.

use super::*;

/// A buffer of a stage's scratch and when it is live.
#[derive(Clone, Debug)]
pub(super) struct LiveSpan {
    pub(super) bytes: usize,
    /// From and to which step (of the unrolled program) it is live, in order.
    pub(super) live: Vec<(usize, usize)>,
}

impl LiveSpan {
    /// True when both may hold something at one step.
    pub(super) fn meets(&self, other: &LiveSpan) -> bool {
        let (mut i, mut j) = (0, 0);
        while let (Some(&(a, b)), Some(&(c, d))) = (self.live.get(i), other.live.get(j)) {
            if a <= d && c <= b {
                return true;
            }
            if b < d {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }
}

/// Offsets (multiples of `alignment`) such that buffers that meet never overlap, and the
/// bytes they span. Buffers go one by one to the lowest offset clear of those placed that
/// they meet; of a few orders (largest first; longest-lived first; largest area of bytes
/// times steps first) the one spanning the fewest bytes.
pub(super) fn pack(spans: &[LiveSpan], alignment: usize) -> (Vec<usize>, usize) {
    let steps = |s: &LiveSpan| -> usize { s.live.iter().map(|(a, b)| b - a + 1).sum() };
    let first = |s: &LiveSpan| s.live.first().map_or(0, |l| l.0);
    // Which buffers meet, worked out once for the four orders (a buffer's live list has an
    // entry per pass of the program: walking them is most of the packing's time).
    let n = spans.len();
    let mut meet = vec![false; n * n];
    for i in 0..n {
        for j in 0..i {
            let m = spans[i].meets(&spans[j]);
            meet[i * n + j] = m;
            meet[j * n + i] = m;
        }
    }
    (0..4)
        .map(|key| {
            let mut order: Vec<usize> = (0..spans.len()).collect();
            order.sort_by_key(|&k| {
                let (b, t) = (spans[k].bytes, steps(&spans[k]));
                std::cmp::Reverse(match key {
                    0 => (b, t),
                    1 => (t, b),
                    2 => (t.saturating_mul(b), b),
                    // In the order the program first writes them: the windows of a chain
                    // of layers, each meeting the next, alternate between two places.
                    _ => (usize::MAX - first(&spans[k]), b),
                })
            });
            pack_in_order(spans, &order, |a, b| meet[a * n + b], alignment)
        })
        .min_by_key(|(_, total)| *total)
        .unwrap_or_default()
}

/// [`pack`] in one order, `meets(a, b)` true when buffers `a` and `b` meet.
fn pack_in_order(
    spans: &[LiveSpan],
    order: &[usize],
    meets: impl Fn(usize, usize) -> bool,
    alignment: usize,
) -> (Vec<usize>, usize) {
    let mut offsets = vec![0usize; spans.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut total = 0usize;
    for &k in order {
        let mut taken: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| meets(j, k))
            .map(|&j| (offsets[j], offsets[j] + spans[j].bytes))
            .collect();
        taken.sort_unstable();
        let mut at = 0usize;
        for (lo, hi) in taken {
            if at + spans[k].bytes <= lo {
                break;
            }
            at = at.max(hi.next_multiple_of(alignment));
        }
        offsets[k] = at;
        total = total.max((at + spans[k].bytes).next_multiple_of(alignment));
        placed.push(k);
    }
    (offsets, total)
}

/// True when the stage of `region` can read graph input tensor `t` where the caller passes
/// it: the stage is its only reader and `run` would copy it into the arena unchanged or
/// quantized (not a uint8 interface, whose top bit `run` flips).
pub(super) fn read_in_place(g: &Graph, region: &Region, t: TensorId) -> bool {
    let TensorKind::Input(i) = g.tensor(t).kind else {
        return false;
    };
    let only_stage = g.consumers()[t.0]
        .iter()
        .all(|c| region.nodes.contains(&c.0));
    only_stage
        && !g.outputs.contains(&t)
        && !g.input_is_unsigned(i)
        && matches!(g.tensor(t).dtype, DType::F32 | DType::I8)
}

#[cfg(test)]
mod tests {
    use super::{pack, LiveSpan};

    /// Random buffers with random live steps: those that meet never overlap, every offset is
    /// aligned, and buffers never live at once share bytes (the span is at most the sum).
    #[test]
    fn packed_buffers_that_meet_never_overlap() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n) as usize
        };
        let mut shared = 0;
        for _ in 0..500 {
            let spans: Vec<LiveSpan> = (0..1 + next(12))
                .map(|_| {
                    let mut live = Vec::new();
                    let mut t = next(10);
                    for _ in 0..1 + next(4) {
                        let end = t + next(8);
                        live.push((t, end));
                        t = end + 1 + next(10);
                    }
                    LiveSpan {
                        bytes: 1 + next(3000),
                        live,
                    }
                })
                .collect();
            let (offsets, total) = pack(&spans, 16);
            let sum: usize = spans.iter().map(|s| s.bytes.next_multiple_of(16)).sum();
            assert!(total <= sum && total % 16 == 0);
            shared += usize::from(total < sum);
            for (i, a) in spans.iter().enumerate() {
                assert_eq!(offsets[i] % 16, 0);
                assert!(offsets[i] + a.bytes <= total);
                for (j, b) in spans.iter().enumerate().take(i) {
                    let apart =
                        offsets[i] + a.bytes <= offsets[j] || offsets[j] + b.bytes <= offsets[i];
                    assert!(apart || !a.meets(b), "{a:?} and {b:?} overlap");
                }
            }
        }
        assert!(shared > 100, "{shared} of 500 packings shared bytes");
    }
}
