//! The budget every evaluation runs under: steps taken, bytes of values built,
//! nesting of the values built, and stack used.
//!
//! jaq offers no fallible hook to stop a running filter: its interpreter is a
//! tree of lazy iterators, and the places we can hook into (the lookup of each
//! term, each operation on a value) cannot return an error. So running out
//! unwinds, with `resume_unwind` (which runs no panic hook and prints
//! nothing), straight to [`bounded`], which turns it into an [`Exceeded`].
//! Unwinding also means that jq's own `try` cannot catch it and carry on.
//! Counters are thread-local: an evaluation runs on one thread, start to end.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};

// Budgets unwind; with `panic = "abort"` running out would kill the process.
#[cfg(panic = "abort")]
compile_error!("weft-model's expression budgets need panic = \"unwind\"");

/// Steps one evaluation may take. A step is one jq term evaluated (a field
/// access, a comparison, a call), one value built or one element of it, or
/// one element a comparison or search visits. An input mapping or a guard
/// takes 10 to 50 steps, a `map` building an object per item about 26 an
/// item; a release build runs 15 to 40 million steps a second. So this lets
/// a map over some 200,000 items through (the README already calls tens of
/// thousands slow) and holds a runaway expression's thread for under half a
/// second.
pub const MAX_STEPS: u64 = 5_000_000;

/// Bytes of values one evaluation may build, counted as they are built
/// (array slots, object entries, string bytes), whether or not they are
/// still alive at the end. Instance data is rewritten on every transition,
/// so data in the megabytes is already slow; 64 MiB leaves room for
/// intermediate copies while keeping a runaway expression to a small share
/// of the machine.
pub const MAX_BYTES: u64 = 64 << 20;

/// How deeply the values an expression builds may nest. The store reads
/// instance records back with serde_json, which refuses to nest deeper than
/// 128 levels, and a record holds the data a few levels down: a deeper value
/// could be written but never read back. Comparing, printing and dropping a
/// value recurse once per level, so this also bounds their stack use.
pub const MAX_DEPTH: u32 = 100;

/// Stack one evaluation may use below where it started. jaq recurses on the
/// native stack for every nested call (`def f: 1 + f; f`), and a thread's
/// stack cannot be grown; engine and test threads have 2 MiB. Half of that
/// leaves the caller's frames, recursion over values nested up to
/// [`MAX_DEPTH`] and the unwinding itself room to run.
pub const MAX_STACK: usize = 1 << 20;

/// Which budget an evaluation ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Steps,
    Bytes,
    Depth,
    Stack,
}

impl Exceeded {
    /// What the expression did, to follow "expression `...` ".
    pub fn describe(self) -> String {
        match self {
            Exceeded::Steps => format!("exceeded its budget of {MAX_STEPS} steps"),
            Exceeded::Bytes => format!("built values larger than {MAX_BYTES} bytes"),
            Exceeded::Depth => format!("built values nested deeper than {MAX_DEPTH} levels"),
            Exceeded::Stack => format!(
                "recursed deeper than its stack budget of {} KiB allows",
                MAX_STACK >> 10
            ),
        }
    }
}

/// The unwinding payload: private, so no other panic is mistaken for it.
struct Stop(Exceeded);

struct Budget {
    steps: Cell<u64>,
    bytes: Cell<u64>,
    /// The lowest stack address the evaluation may reach; 0 when no
    /// evaluation runs (stacks grow down on every target we build for).
    floor: Cell<usize>,
}

thread_local! {
    static BUDGET: Budget = const {
        Budget {
            steps: Cell::new(u64::MAX),
            bytes: Cell::new(u64::MAX),
            floor: Cell::new(0),
        }
    };
}

/// Roughly where the stack is now.
#[inline(always)]
fn stack_here() -> usize {
    let marker = 0u8;
    std::ptr::from_ref(std::hint::black_box(&marker)).addr()
}

/// Stops the running evaluation.
#[cold]
pub fn stop(why: Exceeded) -> ! {
    panic::resume_unwind(Box::new(Stop(why)))
}

/// Charges `steps` and `bytes` to the running evaluation and checks its
/// stack; outside an evaluation the budget is unlimited.
#[inline]
pub fn charge(steps: u64, bytes: u64) {
    BUDGET.with(|b| {
        let left = b.steps.get();
        if left < steps {
            stop(Exceeded::Steps)
        }
        b.steps.set(left - steps);
        let room = b.bytes.get();
        if room < bytes {
            stop(Exceeded::Bytes)
        }
        b.bytes.set(room - bytes);
        if stack_here() < b.floor.get() {
            stop(Exceeded::Stack)
        }
    })
}

/// One step.
#[inline]
pub fn step() {
    charge(1, 0)
}

/// Runs `f` under a fresh budget. A nested call shares the outer budget.
pub fn bounded<T>(f: impl FnOnce() -> T) -> Result<T, Exceeded> {
    if BUDGET.with(|b| b.floor.get()) != 0 {
        return Ok(f());
    }
    BUDGET.with(|b| {
        b.steps.set(MAX_STEPS);
        b.bytes.set(MAX_BYTES);
        b.floor.set(stack_here().saturating_sub(MAX_STACK).max(1));
    });
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    BUDGET.with(|b| {
        #[cfg(test)]
        LAST_SPENT.with(|l| l.set((MAX_STEPS - b.steps.get(), MAX_BYTES - b.bytes.get())));
        b.steps.set(u64::MAX);
        b.bytes.set(u64::MAX);
        b.floor.set(0);
    });
    match out {
        Ok(t) => Ok(t),
        Err(payload) => match payload.downcast::<Stop>() {
            Ok(stop) => Err(stop.0),
            Err(other) => panic::resume_unwind(other),
        },
    }
}

#[cfg(test)]
thread_local! {
    static LAST_SPENT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Steps and bytes the last evaluation on this thread spent, to measure what
/// typical expressions cost.
#[cfg(test)]
pub fn last_spent() -> (u64, u64) {
    LAST_SPENT.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_is_an_error_and_resets_the_budget() {
        let spin = || loop {
            step()
        };
        assert_eq!(bounded(spin), Err(Exceeded::Steps));
        assert_eq!(bounded(|| charge(0, MAX_BYTES + 1)), Err(Exceeded::Bytes));
        // Outside an evaluation nothing is counted.
        charge(MAX_STEPS, MAX_BYTES);
        assert_eq!(bounded(|| charge(MAX_STEPS, MAX_BYTES)), Ok(()));
    }

    #[test]
    fn nested_evaluations_share_the_outer_budget() {
        let out = bounded(|| {
            charge(MAX_STEPS - 1, 0);
            bounded(|| charge(2, 0))
        });
        assert_eq!(out, Err(Exceeded::Steps));
    }

    #[test]
    fn other_panics_pass_through() {
        let caught = panic::catch_unwind(|| bounded(|| panic::resume_unwind(Box::new(7_u8))));
        let payload = caught.expect_err("the panic goes on");
        assert_eq!(payload.downcast_ref::<u8>(), Some(&7));
        assert_eq!(bounded(|| 1), Ok(1));
    }
}
