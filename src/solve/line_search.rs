//! Line searches along a descent direction d from θ: a strong-Wolfe search whose trial
//! points are fused loss-and-gradient passes (L-BFGS, truncated Newton), and a backtracking
//! Armijo search on the loss alone (Newton, whose next Hessian pass brings the gradient).

use super::problem::{Point, Problem};
use crate::error::Result;

/// Sufficient decrease: F(θ + αd) ≤ F(θ) + C1·α·∇Fᵀd.
pub const C1: f64 = 1e-4;
/// Curvature: |∇F(θ + αd)ᵀd| ≤ C2·|∇Fᵀd|, loose as quasi-Newton methods want it.
const C2: f64 = 0.9;
/// Trial points at most, per search.
const MAX_TRIALS: usize = 40;
/// How much higher than F(θ) a trial's F may read and still count as a decrease when its
/// slope says it is one (Hager and Zhang's approximate Wolfe conditions, ε = 1e-6 of |F|):
/// near the optimum a step's decrease is below the rounding of F, while the gradient,
/// whose rounding is relative to its terms, still points the way.
const APPROXIMATE: f64 = 1e-6;

/// A decrease of F smaller than this share of |F| is below f64's rounding of F (a few
/// ulps), whatever the backend: a trial there can only read as no decrease.
const UNSEEN: f64 = 4.0 * f64::EPSILON;

/// Whether F at a trial, `value`, is no more than the rounding of the F it started from,
/// `f0` (APPROXIMATE of |F|): a decrease or an increase that F cannot show.
pub fn within_rounding(value: f64, f0: f64) -> bool {
    value <= f0 + APPROXIMATE * f0.abs()
}

/// Sufficient decrease judged by the slopes φ'(0) = ∇F(θ)ᵀd and φ'(α) = ∇F(θ + αd)ᵀd: the
/// trapezoid rule's F(θ + αd) − F(θ) ≈ α(φ'(0) + φ'(α))/2 ≤ C1·α·φ'(0), that is
/// φ'(α) ≤ (2·C1 − 1)·φ'(0) (Hager and Zhang's approximate Wolfe condition, exact for a
/// quadratic). It decides steps whose F is within rounding.
pub fn decreases_by_slope(slope0: f64, slope: f64) -> bool {
    slope <= (2.0 * C1 - 1.0) * slope0
}

/// Whether a step whose promised decrease is `promise` = |∇Fᵀd| is below what F resolves
/// (APPROXIMATE of |F|): then only the slopes can judge it.
pub fn below_rounding(promise: f64, f0: f64) -> bool {
    promise <= APPROXIMATE * f0.abs()
}

fn along(theta: &[f64], d: &[f64], alpha: f64) -> Vec<f64> {
    theta.iter().zip(d).map(|(t, v)| t + alpha * v).collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One trial: α, F and the slope ∇Fᵀd there (non-finite F reads as +∞).
#[derive(Clone, Copy)]
struct Trial {
    alpha: f64,
    value: f64,
    slope: f64,
}

/// The minimizer of the cubic through two trials' values and slopes, kept inside
/// [lo + 0.1·w, hi − 0.1·w] of their interval (bisection when the cubic has none there).
fn cubic(a: Trial, b: Trial) -> f64 {
    let (lo, hi) = (a.alpha.min(b.alpha), a.alpha.max(b.alpha));
    let width = hi - lo;
    let d1 = a.slope + b.slope - 3.0 * (a.value - b.value) / (a.alpha - b.alpha);
    let disc = d1 * d1 - a.slope * b.slope;
    let mid = 0.5 * (lo + hi);
    if !(disc >= 0.0 && b.value.is_finite() && a.value.is_finite()) {
        return mid;
    }
    let d2 = (b.alpha - a.alpha).signum() * disc.sqrt();
    let x = b.alpha - (b.alpha - a.alpha) * (b.slope + d2 - d1) / (b.slope - a.slope + 2.0 * d2);
    if x.is_finite() {
        x.clamp(lo + 0.1 * width, hi - 0.1 * width)
    } else {
        mid
    }
}

/// A strong-Wolfe point along `d` from `start` (Nocedal and Wright, algorithms 3.5 and
/// 3.6), first trying `alpha`. `None` when no trial met the conditions and none decreased F.
pub fn strong_wolfe(
    problem: &mut Problem,
    start: &Point,
    d: &[f64],
    alpha: f64,
) -> Result<Option<Point>> {
    let slope0 = dot(&start.grad, d);
    let f0 = start.value;
    let eval = |problem: &mut Problem, alpha: f64| -> Result<(Trial, Point)> {
        let point = problem.point(&along(&start.theta, d, alpha))?;
        let value = if point.value.is_finite() && point.grad.iter().all(|g| g.is_finite()) {
            point.value
        } else {
            f64::INFINITY
        };
        let slope = dot(&point.grad, d);
        Ok((
            Trial {
                alpha,
                value,
                slope,
            },
            point,
        ))
    };
    let mut prev = Trial {
        alpha: 0.0,
        value: f0,
        slope: slope0,
    };
    let mut best: Option<Point> = None;
    let keep = |best: &mut Option<Point>, point: Point, value: f64| {
        if value < f0 && best.as_ref().is_none_or(|b| value < b.value) {
            *best = Some(point);
        }
    };
    // Sufficient decrease, or its approximate form: F within rounding of F(θ), and the
    // slope no steeper than (2·C1 − 1) times the first (which a quadratic's Armijo point
    // meets).
    let decreases = |t: &Trial| {
        t.value <= f0 + C1 * t.alpha * slope0
            || (within_rounding(t.value, f0) && decreases_by_slope(slope0, t.slope))
    };
    let mut alpha = alpha;
    let mut trials = 0;
    // Bracketing: grow α until the interval holds a point meeting both conditions.
    let (mut lo, mut hi) = loop {
        let (t, point) = eval(problem, alpha)?;
        trials += 1;
        let higher = t.value > prev.value + APPROXIMATE * f0.abs();
        if !decreases(&t) || (trials > 1 && higher) {
            break (prev, t);
        }
        if t.slope.abs() <= -C2 * slope0 {
            return Ok(Some(point));
        }
        keep(&mut best, point, t.value);
        if t.slope >= 0.0 {
            break (t, prev);
        }
        if trials >= MAX_TRIALS {
            return Ok(best);
        }
        prev = t;
        alpha *= 2.0;
    };
    // Zoom: shrink [lo, hi] (lo the end with the lower F that meets sufficient decrease).
    while trials < MAX_TRIALS {
        let alpha = if hi.value.is_finite() {
            cubic(lo, hi)
        } else {
            0.5 * (lo.alpha + hi.alpha)
        };
        let (t, point) = eval(problem, alpha)?;
        trials += 1;
        if !decreases(&t) || t.value > lo.value + APPROXIMATE * f0.abs() {
            hi = t;
        } else {
            if t.slope.abs() <= -C2 * slope0 {
                return Ok(Some(point));
            }
            keep(&mut best, point, t.value);
            if t.slope * (hi.alpha - lo.alpha) >= 0.0 {
                hi = lo;
            }
            lo = t;
        }
        if (hi.alpha - lo.alpha).abs() <= 1e-14 * lo.alpha.abs().max(1e-300) {
            break;
        }
    }
    Ok(best)
}

/// The first of α = 1, ½, ¼, … (quadratic interpolation, kept within [0.1, 0.5] of the
/// last α) whose F meets sufficient decrease along `d`, from loss-only passes; with its F.
/// `None` after 40 trials, or once α·|∇Fᵀd| is below f64's rounding of F.
pub fn backtracking(
    problem: &mut Problem,
    start: &Point,
    d: &[f64],
) -> Result<Option<(Vec<f64>, f64)>> {
    let slope0 = dot(&start.grad, d);
    let mut alpha = 1.0;
    for _ in 0..MAX_TRIALS {
        if alpha * slope0.abs() <= UNSEEN * start.value.abs() {
            // No F in f64 could show the decrease this step promises.
            break;
        }
        let theta = along(&start.theta, d, alpha);
        let value = problem.value(&theta)?;
        if value.is_finite() && value <= start.value + C1 * alpha * slope0 {
            return Ok(Some((theta, value)));
        }
        // The minimizer of the quadratic through F(0), F'(0) and F(α).
        let q = if value.is_finite() {
            -slope0 * alpha * alpha / (2.0 * (value - start.value - slope0 * alpha))
        } else {
            0.1 * alpha
        };
        alpha = q.clamp(0.1 * alpha, 0.5 * alpha);
    }
    Ok(None)
}
