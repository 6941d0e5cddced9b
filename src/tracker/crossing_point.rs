//! Where a rising function crosses zero: the adaptive policy's search for
//! the scale whose predicted p95 lag meets the target.
//!
//! Each evaluation there is a simulated poll schedule (milliseconds of CPU
//! on the thread beside the hot path), and bisection took 14 of them per
//! recalibration, 25 or 26 when the answer had moved out of its bracket
//! (the first doublings of a fresh process): 5% of the bridge's CPU in the e2e
//! `signalled` stage (`benches/tools/thread_cpu.sh`). The calibration's
//! function is close to a straight line (see `adaptive::calibrate`), so the
//! secant through the bracket's ends lands near the crossing. The Illinois
//! variant of regula falsi halves the value kept at an end that has not
//! moved twice in a row, so both ends close in; each step lands at least
//! half the tolerance inside the bracket, so a step just past the crossing
//! closes it. Where the function is flat or jumps (intervals clamped at
//! their bounds) a step that did not halve the bracket is followed by a
//! bisection: never more than twice bisection's count.

/// Steps at most, whatever the function: twice bisection's count for a
/// bracket 2^50 times the tolerance.
const MAX_STEPS: usize = 100;

/// Whether `value` says too far: a NaN does not, as bisection's comparison
/// did not.
pub(super) fn above_zero(value: f64) -> bool {
    value > 0.0
}

/// The last point known not to be above zero, within `tol` of where the
/// non-decreasing `f` crosses zero, given `f(lo) <= 0 < f(hi)` as
/// `(lo, f(lo))` and `(hi, f(hi))`. Bisection's contract, in fewer
/// evaluations: `f(result) <= 0`, and `f` is above zero at some point at
/// most `tol` above it (or `result` is `lo`, when `hi - lo <= tol`). A NaN
/// counts as not above zero, as it did for bisection.
pub(super) fn last_not_above(
    mut f: impl FnMut(f64) -> f64,
    (mut lo, mut f_lo): (f64, f64),
    (mut hi, mut f_hi): (f64, f64),
    tol: f64,
) -> f64 {
    let mut hi_moved_last = None;
    let mut bisect = false;
    for _ in 0..MAX_STEPS {
        let width = hi - lo;
        if width.is_nan() || width <= tol {
            break;
        }
        let secant = lo - f_lo * width / (f_hi - f_lo);
        let x = if bisect || !secant.is_finite() {
            lo + width / 2.0
        } else {
            secant.clamp(lo + tol / 2.0, hi - tol / 2.0)
        };
        let f_x = f(x);
        let hi_moves = above_zero(f_x);
        if hi_moves {
            (hi, f_hi) = (x, f_x);
        } else {
            (lo, f_lo) = (x, if f_x.is_nan() { 0.0 } else { f_x });
        }
        // Illinois: the end kept twice in a row weighs half as much, so
        // the next secant reaches past the crossing.
        match (hi_moved_last, hi_moves) {
            (Some(true), true) => f_lo /= 2.0,
            (Some(false), false) => f_hi /= 2.0,
            _ => {}
        }
        hi_moved_last = Some(hi_moves);
        bisect = !bisect && hi - lo > width / 2.0;
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer, and how many times `f` was called to get it.
    fn solve(f: impl Fn(f64) -> f64, lo: f64, hi: f64, tol: f64) -> (f64, usize) {
        let mut calls = 0;
        let counted = |x: f64| {
            calls += 1;
            f(x)
        };
        let x = last_not_above(counted, (lo, f(lo)), (hi, f(hi)), tol);
        (x, calls)
    }

    /// Steps bisection takes to narrow `width` to `tol`.
    fn halvings(width: f64, tol: f64) -> usize {
        (width / tol).log2().ceil() as usize
    }

    /// The contract: not above zero at the answer, above it `tol` later.
    fn meets_contract(f: impl Fn(f64) -> f64, x: f64, tol: f64) -> bool {
        !above_zero(f(x)) && above_zero(f(x + tol))
    }

    #[test]
    fn a_line_is_solved_in_a_few_steps() {
        let f = |x: f64| 0.7 * (x - 1.234);
        let (x, calls) = solve(f, -1.0, 3.0, 1e-3);
        assert!(meets_contract(f, x, 1e-3), "{x}");
        assert!(calls <= 3, "{calls} calls");
    }

    #[test]
    fn a_curve_takes_fewer_steps_than_bisection() {
        // p95 against scale, in logarithms, bends near the bounds.
        let f = |x: f64| (x.exp() + 0.3).ln() - 0.9;
        let (x, calls) = solve(f, -1.386, 1.386, 1e-3);
        assert!(meets_contract(f, x, 1e-3), "{x}");
        assert!(calls * 2 <= halvings(2.772, 1e-3), "{calls} calls");
    }

    #[test]
    fn a_flat_then_rising_function_over_a_wide_bracket() {
        // Intervals clamped at their bounds: flat at both ends.
        let f = |x: f64| x.clamp(-2.0, 3.0) - 0.5;
        let (x, calls) = solve(f, -9.21, 9.21, 1e-3);
        assert!(meets_contract(f, x, 1e-3), "{x}");
        assert!(calls <= 2 * halvings(18.42, 1e-3), "{calls} calls");
    }

    #[test]
    fn a_jump_is_found_within_the_tolerance() {
        let f = |x: f64| if x > 0.3 { 1.0 } else { -1.0 };
        let (x, calls) = solve(f, -5.0, 5.0, 1e-3);
        assert!(meets_contract(f, x, 1e-3), "{x}");
        assert!(calls <= 2 * halvings(10.0, 1e-3), "{calls} calls");
    }

    #[test]
    fn a_bracket_already_narrow_is_its_low_end() {
        let (x, calls) = solve(|x| x - 0.5, 0.4999, 0.5001, 1e-3);
        assert_eq!((x, calls), (0.4999, 0));
    }

    #[test]
    fn nan_counts_as_not_above_zero() {
        // Bisection's comparison was false for NaN: the low end moved up.
        let f = |x: f64| if x < 2.0 { f64::NAN } else { 1.0 };
        let (x, _) = solve(f, 0.0, 4.0, 1e-3);
        assert!((2.0 - 1e-3..2.0).contains(&x), "{x}");
    }

    proptest::proptest! {
        /// Any non-decreasing piecewise-linear function with a crossing:
        /// the contract holds, in no more than twice bisection's steps.
        #[test]
        fn rising_functions_meet_the_contract(
            slopes in proptest::collection::vec(0.0f64..5.0, 1..8),
            jumps in proptest::collection::vec(0.0f64..2.0, 8),
            offset in 0.01f64..20.0,
        ) {
            let pieces = slopes.len() as f64;
            let f = |x: f64| {
                // x in [0, pieces]: piece i rises by slopes[i] and jumps[i].
                let mut y = -offset;
                for (i, (s, j)) in slopes.iter().zip(&jumps).enumerate() {
                    let into = (x - i as f64).clamp(0.0, 1.0);
                    y += s * into + if x > i as f64 + 1.0 { *j } else { 0.0 };
                }
                y + if x >= pieces { 1.0 } else { 0.0 }
            };
            let (lo, hi) = (0.0, pieces + 1.0);
            proptest::prop_assume!(f(lo) <= 0.0 && f(hi) > 0.0);
            let (x, calls) = solve(f, lo, hi, 1e-3);
            proptest::prop_assert!(meets_contract(f, x, 1e-3), "{}", x);
            proptest::prop_assert!(calls <= 2 * halvings(hi - lo, 1e-3), "{} calls", calls);
        }
    }
}
