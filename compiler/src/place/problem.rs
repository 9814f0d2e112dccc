//! The placement problem of one schedule: storage units with their sizes, pieces and
//! lifetimes, and where a unit may go given the units already placed.

use super::{lifetimes, ArenaPlan, Lifetime, Unit};
use crate::ir::Graph;
use crate::schedule::memory::MemoryModel;
use crate::schedule::Schedule;

/// Units to place, with their sizes and lifetimes, under one schedule.
///
/// A unit is one or more *pieces* at fixed offsets from the unit's start, each with its own
/// lifetime: the slices of a zero-copy concatenation are written at different steps, and
/// other tensors may use a slice's bytes until it is written.
pub struct Problem {
    /// Union of the pieces' lifetimes, per unit.
    pub(crate) life: Vec<Option<Lifetime>>,
    /// Bytes, per unit.
    pub(crate) size: Vec<usize>,
    /// Pieces per unit: offset in the unit, bytes, lifetime.
    pub(crate) pieces: Vec<Vec<(usize, usize, Lifetime)>>,
    /// Units with a lifetime and bytes.
    pub(crate) items: Vec<usize>,
    /// Bytes live at each step: no placement can beat their maximum.
    pub(crate) step_live_bytes: Vec<usize>,
    /// Per buffer of the memory model: its unit.
    pub(crate) unit_of_buffer: Vec<usize>,
    /// Per node: the buffer it overwrote in place.
    pub(crate) in_place: Vec<Option<usize>>,
    /// Alignment of every unit's offset.
    pub(crate) alignment: usize,
    /// The work the searching placers may spend (`None`: only their node caps stop them).
    pub(crate) budget: Option<crate::plan::work::Budget>,
    /// Per unit `i`: the other units live at one of its steps, and where each forbids `i`:
    /// `(j, a, b)` when `i` at offsets `[o_j + a, o_j + b)` would share a byte with `j` at
    /// `o_j` at a common step (one entry per pair of pieces that meet; worked out on first
    /// use, the placers' searches ask for them at every node).
    pub(crate) meets: std::cell::OnceCell<Vec<Vec<(usize, i64, i64)>>>,
}

impl Problem {
    /// The units of `m` under `schedule`: buffers joined by in-place writes.
    pub fn new(g: &Graph, m: &MemoryModel, schedule: &Schedule) -> Problem {
        let order = schedule.indices();
        let replay = m.replay(&order);
        // Units: buffers joined by in-place writes (the output takes over the input's bytes).
        let nb = m.size.len();
        let mut parent: Vec<usize> = (0..nb).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        for (v, t) in replay.in_place.iter().enumerate() {
            if let (Some(t), Some(o)) = (t, m.writes[v]) {
                let (a, b) = (find(&mut parent, *t), find(&mut parent, o));
                parent[b] = a;
            }
        }
        let mut unit_of_buffer = vec![usize::MAX; nb];
        let mut unit_of_root = vec![usize::MAX; nb];
        let mut size: Vec<usize> = Vec::new();
        for (b, unit) in unit_of_buffer.iter_mut().enumerate() {
            let r = find(&mut parent, b);
            if unit_of_root[r] == usize::MAX {
                unit_of_root[r] = size.len();
                size.push(0);
            }
            let u = unit_of_root[r];
            *unit = u;
            size[u] = size[u].max(m.size[b]);
        }
        // Pieces: each tensor's own bytes, from its write to its buffer's death.
        let producers = g.producers();
        let mut scratch_of = vec![None; g.tensors.len()];
        for (v, n) in g.nodes.iter().enumerate() {
            if let Some(s) = n.scratch {
                scratch_of[s.0] = Some(v);
            }
        }
        let mut pieces: Vec<Vec<(usize, usize, Lifetime)>> = vec![Vec::new(); size.len()];
        for (t, own) in m.own.iter().enumerate() {
            let Some((b, _)) = m.home[t] else { continue };
            let first = match (producers[t], scratch_of[t]) {
                (Some(p), _) => replay.step[p.0],
                (None, Some(v)) => replay.step[v],
                (None, None) => 0,
            };
            if first == usize::MAX {
                continue;
            }
            let life = Lifetime {
                first,
                last: replay.died[b].max(first),
            };
            for &(s, e) in own {
                pieces[unit_of_buffer[b]].push((s, e - s, life));
            }
        }
        let life: Vec<Option<Lifetime>> = pieces
            .iter()
            .map(|ps| {
                ps.iter().map(|p| p.2).reduce(|a, b| Lifetime {
                    first: a.first.min(b.first),
                    last: a.last.max(b.last),
                })
            })
            .collect();
        let items: Vec<usize> = (0..size.len())
            .filter(|&u| life[u].is_some() && size[u] > 0)
            .collect();
        Problem {
            life,
            size,
            pieces,
            items,
            step_live_bytes: if replay.during.is_empty() {
                vec![0]
            } else {
                replay.during
            },
            unit_of_buffer,
            in_place: replay.in_place,
            alignment: m.alignment,
            budget: None,
            meets: std::cell::OnceCell::new(),
        }
    }

    /// What [`Problem::meets`] holds for unit `i`.
    pub(crate) fn meeting(&self, i: usize) -> &[(usize, i64, i64)] {
        let meets = self.meets.get_or_init(|| {
            let mut meets = vec![Vec::new(); self.size.len()];
            for (k, &a) in self.items.iter().enumerate() {
                for &b in &self.items[..k] {
                    if !self.lifetime(a).overlaps(&self.lifetime(b)) {
                        continue;
                    }
                    for &(pr, ps, pl) in &self.pieces[a] {
                        for &(qr, qs, ql) in &self.pieces[b] {
                            if pl.overlaps(&ql) {
                                // Piece p of a (at o_a + pr, ps bytes) against piece q of b
                                // (at o_b + qr, qs bytes), either way round.
                                let (pr, ps, qr, qs) = (pr as i64, ps as i64, qr as i64, qs as i64);
                                meets[a].push((b, qr - pr - ps + 1, qr + qs - pr));
                                meets[b].push((a, pr - qr - qs + 1, pr + ps - qr));
                            }
                        }
                    }
                }
            }
            meets
        });
        &meets[i]
    }

    /// Offsets at which unit `i` would share a byte with a placed unit (one with an offset)
    /// at a common step: half-open intervals `[a, b)`, sorted by start.
    pub(crate) fn forbidden(&self, i: usize, offsets: &[Option<usize>]) -> Vec<(i64, i64)> {
        let mut f: Vec<(i64, i64)> = self
            .meeting(i)
            .iter()
            .filter_map(|&(j, a, b)| offsets[j].map(|o| (o as i64 + a, o as i64 + b)))
            .collect();
        // By start only: `gaps` merges intervals of one start in any order alike.
        f.sort_unstable_by_key(|&(start, _)| start);
        f
    }

    /// The feasible aligned offsets, as `(first, last)` ranges in increasing order, the last
    /// one unbounded (`usize::MAX`), given the forbidden intervals sorted by start.
    pub(crate) fn gaps(&self, forbidden: &[(i64, i64)]) -> Vec<(usize, usize)> {
        let a = self.alignment as i64;
        let up = |x: i64| x.max(0).saturating_add(a - 1) / a * a;
        let mut out = Vec::new();
        let mut cursor = 0i64;
        for &(s, e) in forbidden {
            if s > cursor {
                // Feasible: cursor ..= s - 1, aligned down.
                let last = (s - 1) / a * a;
                if last >= cursor {
                    out.push((cursor as usize, last as usize));
                }
            }
            cursor = cursor.max(up(e));
        }
        if cursor < i64::MAX / 2 {
            out.push((cursor as usize, usize::MAX));
        }
        out
    }

    /// The plan of unit offsets `offsets` (per unit) and arena size `arena`.
    pub(crate) fn plan(
        &self,
        g: &Graph,
        m: &MemoryModel,
        schedule: &Schedule,
        offsets: Vec<Option<usize>>,
        arena: usize,
    ) -> ArenaPlan {
        let unit_of: Vec<Option<usize>> = m
            .home
            .iter()
            .map(|h| h.map(|(b, _)| self.unit_of_buffer[b]))
            .collect();
        let tensor_offsets = m
            .home
            .iter()
            .map(|h| h.and_then(|(b, within)| offsets[self.unit_of_buffer[b]].map(|o| o + within)))
            .collect();
        let in_place = g
            .nodes
            .iter()
            .enumerate()
            .map(|(v, n)| {
                let b = self.in_place[v]?;
                n.inputs
                    .iter()
                    .position(|t| m.home[t.0].is_some_and(|h| h.0 == b))
            })
            .collect();
        let units = (0..self.size.len())
            .map(|u| Unit {
                offset: offsets[u].unwrap_or(0),
                bytes: if offsets[u].is_some() {
                    self.size[u]
                } else {
                    0
                },
                life: self.life[u].unwrap_or(Lifetime { first: 0, last: 0 }),
                pieces: self.pieces[u].clone(),
            })
            .collect();
        ArenaPlan {
            offsets: tensor_offsets,
            lifetimes: lifetimes(g, schedule),
            arena_bytes: arena,
            alignment: m.alignment,
            step_live_bytes: self.step_live_bytes.clone(),
            in_place,
            units,
            unit_of,
        }
    }

    pub(crate) fn lifetime(&self, i: usize) -> Lifetime {
        self.life[i].expect("placed tensors have a lifetime")
    }
}

impl Problem {
    /// Spends the work of one node of a searching placer (one unit per unit to place: a
    /// node looks at the units placed before it); true when the budget is spent, or a time
    /// limit has passed (looked at every 256 nodes).
    pub(crate) fn out_of_work(&self, nodes: usize) -> bool {
        self.budget.as_ref().is_some_and(|b| {
            b.spend(self.items.len() as u64);
            b.work_is_over() || (nodes.is_multiple_of(256) && b.time_is_up())
        })
    }
}

/// Placement problems built by hand, for the placers' tests.
#[cfg(test)]
pub(crate) mod toy {
    use super::{Lifetime, Problem};

    /// Units of one piece each: `(bytes, first step, last step)`.
    pub fn problem(units: &[(usize, usize, usize)], alignment: usize) -> Problem {
        let pieced: Vec<PiecedUnit> = units
            .iter()
            .map(|&(b, first, last)| (b, vec![(0, b, first, last)]))
            .collect();
        with_pieces(&pieced, alignment)
    }

    /// A unit of several pieces: its bytes, and per piece `(offset in unit, bytes, first
    /// step, last step)`.
    pub type PiecedUnit = (usize, Vec<(usize, usize, usize, usize)>);

    /// Units of several pieces.
    pub fn with_pieces(units: &[PiecedUnit], alignment: usize) -> Problem {
        let steps = units
            .iter()
            .flat_map(|u| u.1.iter().map(|p| p.3 + 1))
            .max()
            .unwrap_or(1);
        let mut step_live_bytes = vec![0; steps];
        for (_, pieces) in units {
            for &(_, b, f, l) in pieces {
                for s in &mut step_live_bytes[f..=l] {
                    *s += b;
                }
            }
        }
        let pieces: Vec<Vec<(usize, usize, Lifetime)>> = units
            .iter()
            .map(|u| {
                u.1.iter()
                    .map(|&(r, b, first, last)| (r, b, Lifetime { first, last }))
                    .collect()
            })
            .collect();
        Problem {
            life: pieces
                .iter()
                .map(|ps| {
                    Some(Lifetime {
                        first: ps.iter().map(|p| p.2.first).min().unwrap(),
                        last: ps.iter().map(|p| p.2.last).max().unwrap(),
                    })
                })
                .collect(),
            size: units.iter().map(|u| u.0).collect(),
            pieces,
            items: (0..units.len()).collect(),
            step_live_bytes,
            unit_of_buffer: (0..units.len()).collect(),
            in_place: Vec::new(),
            alignment,
            budget: None,
            meets: std::cell::OnceCell::new(),
        }
    }

    /// True when no two pieces live at a common step share a byte and all units are aligned.
    pub fn sound_pieces(p: &Problem, offsets: &[Option<usize>]) -> bool {
        (0..p.size.len()).all(|i| {
            let oi = offsets[i].expect("placed");
            oi.is_multiple_of(p.alignment)
                && (i + 1..p.size.len()).all(|j| {
                    let oj = offsets[j].expect("placed");
                    p.pieces[i].iter().all(|&(ri, bi, li)| {
                        p.pieces[j].iter().all(|&(rj, bj, lj)| {
                            !li.overlaps(&lj) || oi + ri + bi <= oj + rj || oj + rj + bj <= oi + ri
                        })
                    })
                })
        })
    }

    /// True when no two units live at a common step share a byte and all are aligned.
    pub fn sound(p: &Problem, offsets: &[Option<usize>]) -> bool {
        sound_pieces(p, offsets)
    }

    /// A deterministic pseudo-random source: numbers below `m`.
    fn xorshift(seed: u64) -> impl FnMut(usize) -> usize {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        move |m: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m as u64) as usize
        }
    }

    /// Deterministic pseudo-random problems of `n` units.
    pub fn random(seed: u64, n: usize) -> Problem {
        let mut next = xorshift(seed);
        let units: Vec<(usize, usize, usize)> = (0..n)
            .map(|_| {
                let first = next(12);
                (16 * (1 + next(8)), first, first + next(4))
            })
            .collect();
        problem(&units, 16)
    }

    /// Deterministic pseudo-random problems of `n` units of one to three pieces, each
    /// written at its own step and all dead at the unit's last step (a concatenation's
    /// slices).
    pub fn random_pieces(seed: u64, n: usize) -> Problem {
        let mut next = xorshift(seed);
        let units: Vec<PiecedUnit> = (0..n)
            .map(|_| {
                let last = 2 + next(10);
                let mut pieces = Vec::new();
                let mut at = 0;
                for _ in 0..1 + next(3) {
                    let b = 16 * (1 + next(4));
                    pieces.push((at, b, last - next(3).min(last), last));
                    at += b;
                }
                (at, pieces)
            })
            .collect();
        with_pieces(&units, 16)
    }
}
