//! L-BFGS (Nocedal and Wright, algorithm 7.4: the two-loop recursion over the last m
//! pairs s = Δθ, y = Δ∇F, initial scaling sᵀy/yᵀy) with a strong-Wolfe line search; with
//! λ₁ > 0 it is OWL-QN (Andrew and Gao, 2007): the same recursion on the pseudo-gradient,
//! the direction kept in the orthant it points into, and a backtracking search whose trial
//! points are projected onto that orthant, so weights reach exact zeros.

use std::collections::VecDeque;

use super::iterate::{Iterate, Moved};
use super::line_search::{self, C1, dot};
use super::problem::{Point, Problem};
use crate::error::Result;

/// The curvature pairs L-BFGS keeps: (s, y, 1/(yᵀs)), oldest first.
pub struct Lbfgs {
    memory: usize,
    pairs: VecDeque<(Vec<f64>, Vec<f64>, f64)>,
}

impl Lbfgs {
    pub fn new(memory: usize) -> Self {
        Lbfgs {
            memory,
            pairs: VecDeque::new(),
        }
    }

    /// −H·g: the two-loop recursion. The initial inverse Hessian is diagonal,
    /// 1/(c + λ₂ᵢ): the penalty's curvature `l2` (zero for the biases) plus the data's,
    /// c, the newest pair's (sᵀy − Σλ₂ᵢsᵢ²)/sᵀs (in standardized coordinates the data's
    /// curvature is alike across coordinates; the penalty's is not).
    fn direction(&self, g: &[f64], l2: &[f64]) -> Vec<f64> {
        let mut q: Vec<f64> = g.to_vec();
        let mut alphas = Vec::with_capacity(self.pairs.len());
        for (s, y, rho) in self.pairs.iter().rev() {
            let a = rho * dot(s, &q);
            for (qi, yi) in q.iter_mut().zip(y) {
                *qi -= a * yi;
            }
            alphas.push(a);
        }
        if let Some((s, y, _)) = self.pairs.back() {
            let penalty: f64 = s.iter().zip(l2).map(|(v, l)| l * v * v).sum();
            let ss = dot(s, s);
            let data = (dot(s, y) - penalty) / ss;
            if data > 1e-12 * dot(s, y) / ss {
                for (i, qi) in q.iter_mut().enumerate() {
                    *qi /= data + l2.get(i).copied().unwrap_or(0.0);
                }
            } else {
                let gamma = dot(s, y) / dot(y, y);
                q.iter_mut().for_each(|qi| *qi *= gamma);
            }
        }
        for ((s, y, rho), a) in self.pairs.iter().zip(alphas.into_iter().rev()) {
            let b = rho * dot(y, &q);
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += (a - b) * si;
            }
        }
        q.iter().map(|v| -v).collect()
    }

    /// Keeps the pair of a step from `from` to `to` when its curvature yᵀs is positive
    /// (the strong-Wolfe search guarantees it; OWL-QN's backtracking may not).
    fn remember(&mut self, from: &Point, to: &Point) {
        let s: Vec<f64> = to
            .theta
            .iter()
            .zip(&from.theta)
            .map(|(a, b)| a - b)
            .collect();
        let y: Vec<f64> = to.grad.iter().zip(&from.grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() && sy.is_finite() {
            if self.pairs.len() == self.memory {
                self.pairs.pop_front();
            }
            self.pairs.push_back((s, y, 1.0 / sy));
        }
    }

    /// The first step's length: 1/‖g‖₂ (a unit step along the first direction), later 1.
    fn first_alpha(&self, g: &[f64]) -> f64 {
        if self.pairs.is_empty() {
            1.0 / dot(g, g).sqrt().max(1.0)
        } else {
            1.0
        }
    }
}

impl Iterate for Lbfgs {
    fn start(&mut self, problem: &mut Problem, theta: Vec<f64>) -> Result<Point> {
        problem.point(&theta)
    }

    fn stationarity(&self, problem: &Problem, point: &Point) -> Vec<f64> {
        pseudo_gradient(problem, point)
    }

    fn memory(&self) -> Vec<(Vec<f64>, Vec<f64>)> {
        self.pairs
            .iter()
            .map(|(s, y, _)| (s.clone(), y.clone()))
            .collect()
    }

    fn restore(&mut self, pairs: &[(Vec<f64>, Vec<f64>)]) {
        // 1/(yᵀs) as `remember` computed it, so the directions are the same bits.
        self.pairs = pairs
            .iter()
            .map(|(s, y)| (s.clone(), y.clone(), 1.0 / dot(s, y)))
            .collect();
    }

    fn step(&mut self, problem: &mut Problem, point: &Point) -> Result<Moved> {
        if problem.has_l1() {
            return self.orthant_step(problem, point);
        }
        let d = self.direction(&point.grad, problem.l2());
        let alpha = self.first_alpha(&point.grad);
        let next = line_search::strong_wolfe(problem, point, &d, alpha)?;
        Ok(match next {
            Some(next) => {
                self.remember(point, &next);
                Moved::To(next)
            }
            None => Moved::Stalled {
                slope: dot(&point.grad, &d),
            },
        })
    }
}

impl Lbfgs {
    /// One OWL-QN step.
    fn orthant_step(&mut self, problem: &mut Problem, point: &Point) -> Result<Moved> {
        let weights = problem.weights();
        let pg = pseudo_gradient(problem, point);
        let mut d = self.direction(&pg, problem.l2());
        // The direction must descend along the pseudo-gradient, coordinate by coordinate.
        for (di, gi) in d.iter_mut().zip(&pg).take(weights) {
            if *di * gi >= 0.0 {
                *di = 0.0;
            }
        }
        // The orthant: θ's signs, and −pg's where θ is zero.
        let orthant: Vec<f64> = (0..weights)
            .map(|i| match point.theta[i] {
                t if t != 0.0 => t.signum(),
                _ => -pg[i].signum(),
            })
            .collect();
        let f0 = point.value + problem.l1_penalty(&point.theta);
        let mut alpha = self.first_alpha(&pg);
        for _ in 0..40 {
            let mut theta: Vec<f64> = point
                .theta
                .iter()
                .zip(&d)
                .map(|(t, v)| t + alpha * v)
                .collect();
            for (t, o) in theta.iter_mut().zip(&orthant) {
                if *t * o <= 0.0 {
                    *t = 0.0;
                }
            }
            let moved: Vec<f64> = theta.iter().zip(&point.theta).map(|(a, b)| a - b).collect();
            let next = problem.point(&theta)?;
            let f = next.value + problem.l1_penalty(&theta);
            if f.is_finite() && f <= f0 + C1 * dot(&pg, &moved) {
                self.remember(point, &next);
                return Ok(Moved::To(next));
            }
            alpha *= 0.5;
        }
        Ok(Moved::Stalled {
            slope: dot(&pg, &d),
        })
    }
}

/// ∇F, or with λ₁ > 0 the pseudo-gradient of F + λ₁‖W‖₁: the one-sided derivative that
/// descends, and 0 at a zero weight where neither side does. It is 0 exactly at the
/// optimum.
pub fn pseudo_gradient(problem: &Problem, point: &Point) -> Vec<f64> {
    let mut pg = point.grad.clone();
    for ((g, &t), &l1) in pg.iter_mut().zip(&point.theta).zip(problem.l1()) {
        *g = if t > 0.0 {
            *g + l1
        } else if t < 0.0 {
            *g - l1
        } else if *g + l1 < 0.0 {
            *g + l1
        } else if *g - l1 > 0.0 {
            *g - l1
        } else {
            0.0
        };
    }
    pg
}
