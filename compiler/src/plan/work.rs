//! Planning effort counted in work, not time, so that a plan is a function of the model and
//! the options alone: the same sources give the same binary on a laptop, in CI and on a
//! loaded build server (the proc macro always runs beside other compilations).
//!
//! A [`Budget`] is a share of one meter of *work units*. The searches spend units as they go
//! and stop when their share is spent: the exact order search one unit per node of the
//! segment it works on at each state it expands (a state's bound walks those nodes), the
//! backtracking placers one per storage unit at each node of their search. Everything else
//! (seed orders, the greedy placers, building streamed stages) runs to its end and is not
//! counted. [`DEFAULT_WORK`] takes about 2 s on the development machine (an x86-64 core of
//! 2026) for a search that uses it all; most models need a small part of it.
//!
//! A wall-clock limit can be added ([`Budget::with_time_limit`], the macro's `budget_ms`):
//! then planning also stops when the time is up, and the plan depends on the machine and its
//! load. It is never on by default.
//!
//! ```
//! use microarena_compiler::plan::work::Budget;
//! let b = Budget::new(1_000, None);
//! let part = b.slice(300);
//! part.spend(250);
//! assert!(!part.is_over());
//! part.spend(50);
//! assert!(part.is_over() && !b.is_over());
//! assert_eq!(b.left(), 700);
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Work units planning may spend by default (about 2 s of search on the development
/// machine). `effort = N` in the macro, `--effort N` in the CLI: N percent of this.
pub const DEFAULT_WORK: u64 = 250_000_000;

/// A share of the planning work: ends when the meter it draws on reaches `end` (or, with a
/// time limit, when the time is up). Cloning shares the meter.
#[derive(Clone, Debug)]
pub struct Budget {
    used: Rc<Cell<u64>>,
    end: u64,
    deadline: Option<Instant>,
}

impl Budget {
    /// A new meter with `units` to spend, and optionally a wall-clock limit (not
    /// reproducible: see the module docs).
    pub fn new(units: u64, time_limit: Option<Duration>) -> Budget {
        Budget {
            used: Rc::new(Cell::new(0)),
            end: units,
            deadline: time_limit.map(|t| Instant::now() + t),
        }
    }

    /// No limit (tests that must search to the end).
    pub fn unlimited() -> Budget {
        Budget::new(u64::MAX, None)
    }

    /// The same budget, also ending after `limit` of wall-clock time from now.
    pub fn with_time_limit(mut self, limit: Duration) -> Budget {
        let d = Instant::now() + limit;
        self.deadline = Some(self.deadline.map_or(d, |e| e.min(d)));
        self
    }

    /// Units spent on the whole meter so far.
    pub fn used(&self) -> u64 {
        self.used.get()
    }

    /// Units left in this share.
    pub fn left(&self) -> u64 {
        self.end.saturating_sub(self.used.get())
    }

    /// Spends `units`.
    #[inline]
    pub fn spend(&self, units: u64) {
        self.used.set(self.used.get().saturating_add(units));
    }

    /// True when this share is spent (or the time limit, if any, has passed).
    pub fn is_over(&self) -> bool {
        self.used.get() >= self.end || self.time_is_up()
    }

    /// True when this share is spent; the time limit is not looked at (callers that check
    /// often look at the clock less often, see [`Budget::time_is_up`]).
    #[inline]
    pub fn work_is_over(&self) -> bool {
        self.used.get() >= self.end
    }

    /// True when a time limit is set and has passed.
    pub fn time_is_up(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// A share of this budget ending `units` from now (or where this one ends).
    pub fn slice(&self, units: u64) -> Budget {
        Budget {
            used: Rc::clone(&self.used),
            end: self.end.min(self.used.get().saturating_add(units)),
            deadline: self.deadline,
        }
    }

    /// `weight / of` of what is left, as a share.
    pub fn share(&self, weight: u64, of: u64) -> Budget {
        self.slice(scale(self.left(), weight, of.max(1)))
    }
}

/// `x · a / b` without overflow.
fn scale(x: u64, a: u64, b: u64) -> u64 {
    (u128::from(x) * u128::from(a) / u128::from(b)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_draw_on_one_meter() {
        let b = Budget::new(100, None);
        let half = b.share(1, 2);
        assert_eq!(half.left(), 50);
        half.spend(60);
        assert!(half.is_over());
        assert_eq!(b.left(), 40);
        let rest = b.slice(1_000);
        assert_eq!(rest.left(), 40, "a slice never ends after its parent");
        assert!(!Budget::unlimited().is_over());
        assert!(Budget::new(0, None).is_over());
    }

    #[test]
    fn a_time_limit_ends_a_budget() {
        let b = Budget::unlimited().with_time_limit(Duration::ZERO);
        assert!(b.time_is_up() && b.is_over() && !b.work_is_over());
    }
}
