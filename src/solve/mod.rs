//! Solvers that reach the optimum of F(θ) = J(θ) + (λ₂/2)‖W‖² + λ₁‖W‖₁ rather than only
//! descend it: Newton with the exact Hessian, truncated Newton (conjugate gradients on
//! Hessian-vector products) and L-BFGS (OWL-QN with λ₁). Each runs on the host in f64
//! over any configured [`Session`](crate::Session): a value, a gradient, a Hessian or a
//! Hessian-vector product is one pass of the session over its rows, whatever the backend.
//!
//! They stop when ‖∇F‖∞ (the pseudo-gradient's with λ₁) has fallen to `tol` times its
//! value at the start, as LIBLINEAR's solvers stop (on the 2-norm there): the gradient of
//! the weighted mean objective with respect to the standardized parameters, so the test
//! reads the same at any row count and any scale of the features or the labels.

mod iterate;
mod lbfgs;
mod line_search;
mod newton;
mod problem;

pub use iterate::RESOLUTION;
use iterate::{Iterate, Moved};
pub use problem::{Passes, Point, Problem};

use crate::error::{Error, Result};

/// How a fit reaches its parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Solver {
    /// Gradient descent with the trainer's optimizer, batches and schedule.
    Gd,
    /// Newton with the exact Hessian.
    Newton,
    /// Truncated Newton: conjugate gradients on Hessian-vector products.
    NewtonCg,
    /// L-BFGS; OWL-QN with an L1 penalty.
    Lbfgs,
    /// `gd` when a descent option is given; else `newton` where the Hessian is small
    /// enough and the backend has its pass, else `lbfgs`.
    #[default]
    Auto,
}

impl Solver {
    pub fn name(&self) -> &'static str {
        match self {
            Solver::Gd => "gd",
            Solver::Newton => "newton",
            Solver::NewtonCg => "newton-cg",
            Solver::Lbfgs => "lbfgs",
            Solver::Auto => "auto",
        }
    }

    /// Iterations at most, unless given: enough for ordinary problems to converge.
    pub fn default_max_iter(&self) -> u64 {
        match self {
            Solver::Newton | Solver::NewtonCg => 100,
            _ => 1000,
        }
    }
}

impl std::fmt::Display for Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Solver {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "gd" => Solver::Gd,
            "newton" => Solver::Newton,
            "newton-cg" => Solver::NewtonCg,
            "lbfgs" => Solver::Lbfgs,
            "auto" => Solver::Auto,
            _ => {
                return Err(Error::option(
                    "solver",
                    s,
                    "expected gd, newton, newton-cg, lbfgs or auto",
                ));
            }
        })
    }
}

/// The most parameters (d + 1)·k `newton` takes: its Hessian has p² entries, summed
/// per row over p(p + 1)/2 products, and its Cholesky takes p³/3 steps.
pub const NEWTON_MAX_PARAMETERS: usize = 2048;

/// What stops a solver, and L-BFGS's memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stopping {
    /// Converged when ‖∇F‖∞ ≤ tol · ‖∇F(θ₀)‖∞.
    pub tol: f64,
    pub max_iter: u64,
    /// Pairs L-BFGS keeps.
    pub memory: usize,
}

/// One iteration as the solver reports it: after `iteration` steps, at `point`.
pub struct Progress<'p> {
    pub iteration: u64,
    pub point: &'p Point,
    /// F + λ₁‖W‖₁.
    pub objective: f64,
    pub grad_norm: f64,
}

/// The solvers' default tolerance on ‖∇F‖∞, relative to its value at the start.
pub const DEFAULT_TOL: f64 = 1e-8;

/// What a solver's fit reports beyond a descent's.
#[derive(Clone, Debug, PartialEq)]
pub struct Solved {
    pub solver: Solver,
    /// Why this solver ran (`auto`'s choice, or "asked for").
    pub why: String,
    pub iterations: u64,
    pub passes: Passes,
    /// Passes over the rows, every kind, by the time each iteration was reported (one
    /// entry per iteration from the start).
    pub pass_history: Vec<u64>,
    pub converged: bool,
    /// ‖∇F‖∞ at the end (the pseudo-gradient's with an L1 penalty).
    pub grad_norm: f64,
    /// The loss plus the penalties.
    pub objective: f64,
    /// Why the solver stopped.
    pub reason: String,
}

/// How a solve ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    pub point: Point,
    pub objective: f64,
    /// ‖∇F‖∞ at the end (the pseudo-gradient's with λ₁).
    pub grad_norm: f64,
    pub iterations: u64,
    pub passes: Passes,
    pub converged: bool,
    /// Why it stopped, in words.
    pub reason: String,
    /// Passes over the rows by the time each iteration was reported.
    pub pass_history: Vec<u64>,
}

/// What a solver carries from one iteration to the next, beyond what one pass at θ gives
/// again (F, ∇F and Newton's Hessian there come back bit for bit from the same pass).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SolverState {
    pub solver: Solver,
    /// θ in the solver's coordinates (the standardized features').
    pub theta: Vec<f64>,
    /// Iterations done.
    pub iteration: u64,
    /// ‖∇F‖∞ at the start, which the tolerance is relative to.
    pub start_norm: f64,
    /// The least F + λ₁‖W‖₁ so far (none before the first iterate is judged) and the
    /// iteration that reached it (the stall window).
    pub best: Option<f64>,
    pub best_iteration: u64,
    pub passes: Passes,
    /// Passes by the time each iteration was reported.
    pub pass_history: Vec<u64>,
    /// L-BFGS's curvature pairs (s, y), oldest first.
    pub pairs: Vec<(Vec<f64>, Vec<f64>)>,
}

/// Where a solve starts: at θ₀, or where a checkpoint's state left off.
pub enum Start<'s> {
    At(Vec<f64>),
    Resume(&'s SolverState),
}

/// A solve's checkpoints: every `every` iterations, at an interrupt and at `max_iter`,
/// the state is handed to `save` just before the next step.
pub struct Saving<'a> {
    pub every: u64,
    pub save: &'a mut dyn FnMut(&SolverState) -> Result<()>,
}

/// Runs `solver` (not `gd` or `auto`) from `start` until it converges, stalls, or reaches
/// `stopping.max_iter`; `progress` sees every iterate and returns false to stop there
/// (an interrupt). A resumed solve does not report its first iterate again (the fit that
/// saved it did) and goes on with the same bits as one that never stopped.
pub fn solve(
    solver: Solver,
    problem: &mut Problem,
    start: Start,
    stopping: &Stopping,
    progress: &mut dyn FnMut(&Progress) -> bool,
    mut saving: Option<Saving>,
) -> Result<Solution> {
    let mut method: Box<dyn Iterate> = match solver {
        Solver::Newton => Box::new(newton::Newton::default()),
        Solver::NewtonCg => Box::new(newton::NewtonCg {
            max_cg: problem.parameters().clamp(10, 250),
        }),
        Solver::Lbfgs => Box::new(lbfgs::Lbfgs::new(stopping.memory)),
        Solver::Gd | Solver::Auto => {
            return Err(Error::option(
                "solver",
                solver,
                "is not one of the solvers newton, newton-cg, lbfgs",
            ));
        }
    };
    let (theta, resumed) = match start {
        Start::At(theta) => (theta, None),
        Start::Resume(state) => (state.theta.clone(), Some(state)),
    };
    let mut point = method.start(problem, theta)?;
    if !point.value.is_finite() {
        return Err(problem.non_finite_start());
    }
    let mut iterations = resumed.map_or(0, |s| s.iteration);
    // The best F and the iteration that last improved it.
    let mut best = resumed.map_or((f64::INFINITY, 0), |s| {
        (s.best.unwrap_or(f64::INFINITY), s.best_iteration)
    });
    let mut pass_history = Vec::new();
    let start_norm = match resumed {
        Some(state) => {
            method.restore(&state.pairs);
            problem.passes = state.passes;
            pass_history = state.pass_history.clone();
            state.start_norm
        }
        None => max_norm(&method.stationarity(problem, &point)),
    };
    let floor = Floor {
        exact: solver == Solver::Newton,
        window: stalled_iterations(solver),
        start: start_norm,
        tol: stopping.tol,
    };
    let mut reported = resumed.is_some();
    let (converged, reason) = loop {
        let grad_norm = max_norm(&method.stationarity(problem, &point));
        let objective = point.value + problem.l1_penalty(&point.theta);
        let state = |method: &dyn Iterate, problem: &Problem, history: &[u64], best: (f64, u64)| {
            SolverState {
                solver,
                theta: point.theta.clone(),
                iteration: iterations,
                start_norm,
                best: best.0.is_finite().then_some(best.0),
                best_iteration: best.1,
                passes: problem.passes,
                pass_history: history.to_vec(),
                pairs: method.memory(),
            }
        };
        if !reported {
            pass_history.push(problem.passes.total());
            let report = Progress {
                iteration: iterations,
                point: &point,
                objective,
                grad_norm,
            };
            if !progress(&report) {
                if let Some(s) = saving.as_mut() {
                    (s.save)(&state(method.as_ref(), problem, &pass_history, best))?;
                }
                break (false, "interrupted".to_string());
            }
        }
        reported = false;
        if grad_norm <= stopping.tol * start_norm {
            break (
                true,
                format!(
                    "‖∇F‖∞ {grad_norm:.3e} ≤ tol {} × {start_norm:.3e} at the start",
                    stopping.tol
                ),
            );
        }
        if iterations >= stopping.max_iter {
            if let Some(s) = saving.as_mut() {
                (s.save)(&state(method.as_ref(), problem, &pass_history, best))?;
            }
            break (false, format!("reached max-iter {}", stopping.max_iter));
        }
        if objective < best.0 - 1e-12 * objective.abs().max(1.0) {
            best = (objective, iterations);
        } else if iterations - best.1 >= floor.window {
            break floor.judge(grad_norm, None, objective);
        }
        if let Some(s) = saving.as_mut()
            && iterations > 0
            && iterations.is_multiple_of(s.every.max(1))
        {
            (s.save)(&state(method.as_ref(), problem, &pass_history, best))?;
        }
        match method.step(problem, &point)? {
            Moved::To(next) => point = next,
            Moved::Stalled { slope } => break floor.judge(grad_norm, Some(slope), objective),
        }
        iterations += 1;
    };
    let grad_norm = max_norm(&method.stationarity(problem, &point));
    Ok(Solution {
        objective: point.value + problem.l1_penalty(&point.theta),
        point,
        grad_norm,
        iterations,
        passes: problem.passes,
        converged,
        reason,
        pass_history,
    })
}

/// Iterations without a decrease of F beyond 1e-12 of it after which a solver has
/// stalled as a line search does: few for truncated Newton, whose every iteration is a
/// long stride, more for L-BFGS.
fn stalled_iterations(solver: Solver) -> u64 {
    match solver {
        Solver::Lbfgs => 20,
        _ => 5,
    }
}

/// What a stall at the objective's rounding means.
struct Floor {
    /// Whether the direction is the exact Newton step.
    exact: bool,
    /// Iterations without a decrease that make a stall.
    window: u64,
    /// ‖∇F‖∞ at the start.
    start: f64,
    tol: f64,
}

impl Floor {
    /// Whether a solver that stalled at ‖∇F‖∞ `grad_norm`, with F `objective`, along a
    /// direction of slope `slope` (none when F stopped decreasing over iterations) has
    /// converged, and why. The exact Newton step promises ½|∇Fᵀd|, which bounds what is
    /// left: at most [`RESOLUTION`] of F converges. Other directions promise less than is
    /// left, so they converge at the rounding only with ‖∇F‖∞ within √tol of the start
    /// (which converges the exact step too).
    fn judge(&self, grad_norm: f64, slope: Option<f64>, objective: f64) -> (bool, String) {
        let promised = slope.map_or(0.0, |s| 0.5 * s.abs() / objective.abs().max(1.0));
        let loose = self.tol.sqrt() * self.start;
        // The exact step's promise is only as good as the gradient it came from: on a
        // device whose gradient sums are f32 it can promise more than is there, so a
        // gradient already within √tol of the start converges it too.
        let converged = if self.exact && slope.is_some() {
            promised <= RESOLUTION || grad_norm <= loose
        } else {
            grad_norm <= loose
        };
        let what = match slope {
            Some(_) => {
                format!("the line search found no decrease (the step promised {promised:.1e} of F)")
            }
            None => format!("F stopped decreasing for {} iterations", self.window),
        };
        let verdict = if converged {
            "the objective's rounding is reached: converged"
        } else {
            "short of the tolerance"
        };
        (
            converged,
            format!("{what} at ‖∇F‖∞ {grad_norm:.3e}; {verdict}"),
        )
    }
}

fn max_norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}
