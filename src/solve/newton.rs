//! Newton's method with the exact Hessian (one pass builds ∇F and ∇²F; the step solves
//! ∇²F·p = −∇F by Cholesky in f64, damped by τI when the Hessian is not positive definite),
//! and truncated Newton (conjugate gradients on the same system, each product ∇²F·v a
//! pass, stopped at a forcing tolerance, as scikit-learn's newton-cg). Both take the step
//! through a line search.

use super::iterate::{Iterate, Moved};
use super::line_search::{self, dot};
use super::problem::{Point, Problem};
use crate::error::Result;

/// Exact Newton: the Hessian of the current point, from the pass that gave the point.
#[derive(Default)]
pub struct Newton {
    hessian: Vec<f64>,
}

impl Iterate for Newton {
    fn start(&mut self, problem: &mut Problem, theta: Vec<f64>) -> Result<Point> {
        let (point, hessian) = problem.hessian(&theta)?;
        self.hessian = hessian;
        Ok(point)
    }

    fn stationarity(&self, _: &Problem, point: &Point) -> Vec<f64> {
        point.grad.clone()
    }

    fn step(&mut self, problem: &mut Problem, point: &Point) -> Result<Moved> {
        let minus_g: Vec<f64> = point.grad.iter().map(|g| -g).collect();
        let mut d = solve_damped(&self.hessian, &minus_g);
        problem.project(&mut d);
        let slope0 = dot(&point.grad, &d);
        if line_search::below_rounding(-slope0, point.value) {
            // Near the optimum the step's decrease is below what F resolves (on f32 rows
            // F's sums carry ~1e-7 of it), while the gradient still shows it: take the
            // full step when the slopes say it decreases, with the Hessian pass the next
            // iteration needs anyway.
            let theta: Vec<f64> = point.theta.iter().zip(&d).map(|(t, v)| t + v).collect();
            let (next, hessian) = problem.hessian(&theta)?;
            if line_search::within_rounding(next.value, point.value)
                && line_search::decreases_by_slope(slope0, dot(&next.grad, &d))
            {
                self.hessian = hessian;
                return Ok(Moved::To(next));
            }
        }
        let Some((theta, _)) = line_search::backtracking(problem, point, &d)? else {
            return Ok(Moved::Stalled {
                slope: dot(&point.grad, &d),
            });
        };
        let (next, hessian) = problem.hessian(&theta)?;
        self.hessian = hessian;
        Ok(Moved::To(next))
    }
}

/// The solution of (H + τI)x = b for the least τ ≥ 0 among 0, 1e-10·s, 1e-9·s, … (s the
/// largest diagonal entry) whose matrix Cholesky factors; −b's direction (steepest
/// descent) if none does.
pub fn solve_damped(h: &[f64], b: &[f64]) -> Vec<f64> {
    let p = b.len();
    let scale = (0..p)
        .map(|i| h[i * p + i].abs())
        .fold(0.0, f64::max)
        .max(1e-300);
    let mut tau = 0.0;
    for _ in 0..16 {
        if let Some(l) = cholesky(h, p, tau) {
            return cholesky_solve(&l, p, b);
        }
        tau = if tau == 0.0 {
            1e-10 * scale
        } else {
            tau * 10.0
        };
    }
    b.to_vec()
}

/// L with LLᵀ = H + τI (lower triangle, row-major), or `None` when a pivot is not
/// positive.
fn cholesky(h: &[f64], p: usize, tau: f64) -> Option<Vec<f64>> {
    let mut l = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..=i {
            let s = h[i * p + j] + if i == j { tau } else { 0.0 }
                - dot_in_lanes(&l[i * p..i * p + j], &l[j * p..j * p + j]);
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return None;
                }
                l[i * p + i] = s.sqrt();
            } else {
                l[i * p + j] = s / l[j * p + j];
            }
        }
    }
    Some(l)
}

/// a·b in eight running sums, added pairwise at the end: the factorization's p³/6 products
/// as one running sum wait on each addition in turn (measured: 0.54 s of a 2 001-parameter
/// Newton step), eight of them fill the vector units.
fn dot_in_lanes(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = dot(a8.remainder(), b8.remainder());
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let [l0, l1, l2, l3, l4, l5, l6, l7] = lanes;
    ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)) + tail
}

fn cholesky_solve(l: &[f64], p: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; p];
    for i in 0..p {
        y[i] = (b[i] - dot(&l[i * p..i * p + i], &y[..i])) / l[i * p + i];
    }
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        let s: f64 = (i + 1..p).map(|j| l[j * p + i] * x[j]).sum();
        x[i] = (y[i] - s) / l[i * p + i];
    }
    x
}

/// Truncated Newton: conjugate gradients on ∇²F·p = −∇F to the forcing tolerance
/// min(½, √‖∇F‖)·‖∇F‖, at most `max_cg` products, then a strong-Wolfe search from α = 1.
pub struct NewtonCg {
    pub max_cg: usize,
}

impl Iterate for NewtonCg {
    fn start(&mut self, problem: &mut Problem, theta: Vec<f64>) -> Result<Point> {
        problem.point(&theta)
    }

    fn stationarity(&self, _: &Problem, point: &Point) -> Vec<f64> {
        point.grad.clone()
    }

    fn step(&mut self, problem: &mut Problem, point: &Point) -> Result<Moved> {
        let d = self.conjugate_gradients(problem, point)?;
        Ok(match line_search::strong_wolfe(problem, point, &d, 1.0)? {
            Some(next) => Moved::To(next),
            None => Moved::Stalled {
                slope: dot(&point.grad, &d),
            },
        })
    }
}

impl NewtonCg {
    /// Preconditioned conjugate gradients: the preconditioner is diagonal, the penalty's
    /// curvature λ₂ᵢ plus the data's mean curvature c (the same for every coordinate in
    /// standardized coordinates, up to the features' correlations), c estimated from the
    /// first product: the Rayleigh quotient of −∇F less the penalty's part.
    fn conjugate_gradients(&self, problem: &mut Problem, point: &Point) -> Result<Vec<f64>> {
        let g = &point.grad;
        let gnorm = dot(g, g).sqrt();
        let target = gnorm.sqrt().min(0.5) * gnorm;
        let mut x = vec![0.0; g.len()];
        let mut r: Vec<f64> = g.iter().map(|v| -v).collect();
        let l2 = problem.l2().to_vec();
        let mut diagonal: Option<Vec<f64>> = None;
        let mut d = r.clone();
        let mut rz = dot(&r, &r);
        for i in 0..self.max_cg {
            let hd = problem.product(&point.theta, &d, point.evaluation.weight)?;
            let curvature = dot(&d, &hd);
            if !(curvature > 0.0 && curvature.is_finite()) {
                // Not positive along d: the first iteration falls back to −∇F, later ones
                // keep what they have.
                if i == 0 {
                    x = r;
                }
                break;
            }
            let a = rz / curvature;
            for ((xi, ri), (di, hi)) in x.iter_mut().zip(&mut r).zip(d.iter().zip(&hd)) {
                *xi += a * di;
                *ri -= a * hi;
            }
            if dot(&r, &r).sqrt() <= target {
                break;
            }
            let m = diagonal.get_or_insert_with(|| {
                let penalty: f64 = d.iter().zip(&l2).map(|(v, l)| l * v * v).sum();
                let data = ((curvature - penalty) / dot(&d, &d)).max(1e-12);
                (0..d.len())
                    .map(|i| data + l2.get(i).copied().unwrap_or(0.0))
                    .collect()
            });
            let z: Vec<f64> = r.iter().zip(m.iter()).map(|(ri, mi)| ri / mi).collect();
            let next = dot(&r, &z);
            // The first direction was the plain residual; from here the preconditioned one.
            let beta = if i == 0 { 0.0 } else { next / rz };
            rz = next;
            for (di, zi) in d.iter_mut().zip(&z) {
                *di = zi + beta * *di;
            }
        }
        Ok(x)
    }
}
