//! Fits that reach the optimum with a solver of [`crate::solve`] instead of descending:
//! which solver `auto` picks and why, what the others refuse, and the fit they report.

use super::*;
use crate::solve::{
    DEFAULT_TOL, NEWTON_MAX_PARAMETERS, Problem, Progress, Saving, Solution, Solved, Solver,
    SolverState, Start, Stopping,
};

impl Trainer {
    /// How the fit reaches its parameters. Default [`Solver::Auto`]: gradient descent when
    /// a descent option (learning rate, epochs, batch size, optimizer and its
    /// hyperparameters, schedule, warmup, patience, validation fraction) is set or a
    /// checkpoint is written or resumed; otherwise Newton where the Hessian is small
    /// enough and the backend has its pass, else L-BFGS.
    pub fn solver(mut self, solver: Solver) -> Self {
        self.solver = solver;
        self
    }

    /// Solver iterations at most. Default: 100 for newton and newton-cg, 1000 for lbfgs.
    pub fn max_iter(mut self, iterations: u64) -> Self {
        self.max_iter = Some(iterations);
        self
    }

    /// Curvature pairs L-BFGS keeps. Default 10.
    pub fn lbfgs_memory(mut self, pairs: usize) -> Self {
        self.lbfgs_memory = pairs;
        self
    }

    /// The solver a fit of these options runs on `session`, and why.
    pub fn chosen_solver(&self, session: &dyn Session) -> (Solver, String) {
        if self.solver != Solver::Auto {
            return (self.solver, "asked for".into());
        }
        if self.descent_given {
            return (Solver::Gd, "a descent option was given".into());
        }
        if let Some(ck) = &self.wiring.resume {
            return match &ck.solver {
                Some(state) => (state.solver, "the checkpoint is a solver's".into()),
                None => (Solver::Gd, "the checkpoint is a descent's".into()),
            };
        }
        if self.wiring.checkpointing.is_some() {
            return (
                Solver::Gd,
                "checkpoints without --solver are a descent's, as before solvers wrote them".into(),
            );
        }
        if self.regularization.l1 > 0.0 {
            return (Solver::Lbfgs, "an L1 penalty (OWL-QN)".into());
        }
        let p = (session.features() + 1) * session.objective().outputs();
        if !session.has_curvature() {
            return (
                Solver::Lbfgs,
                format!("{} has no Hessian pass", session.describe()),
            );
        }
        if p > NEWTON_MAX_PARAMETERS {
            return (
                Solver::Lbfgs,
                format!("{p} parameters, above newton's {NEWTON_MAX_PARAMETERS}"),
            );
        }
        if !session.has_hessian() {
            return (
                Solver::NewtonCg,
                format!(
                    "{} has Hessian-vector products, not the Hessian",
                    session.describe()
                ),
            );
        }
        if session.prefers_products() {
            return (
                Solver::NewtonCg,
                "sparse rows: Hessian-vector products cost a pass, the Hessian far more".into(),
            );
        }
        (
            Solver::Newton,
            format!("{p} parameters: the exact Hessian is small"),
        )
    }

    /// What a solver other than gd refuses.
    fn check_solver(&self, solver: Solver, session: &dyn Session) -> Result<()> {
        let refuse = |reason: String| Err(Error::option("solver", solver, reason));
        if self.solver == solver && self.descent_given {
            return refuse(
                "takes no descent option (learning rate, epochs, batch size, optimizer, \
                 schedule, warmup, patience, validation fraction); those are gd's"
                    .into(),
            );
        }
        if let Some(ck) = &self.wiring.resume {
            match &ck.solver {
                None => return refuse("cannot resume a descent's checkpoint; gd does".into()),
                Some(state) if state.solver != solver => {
                    return refuse(format!(
                        "cannot resume a checkpoint of {}; resume with --solver {}",
                        state.solver, state.solver
                    ));
                }
                Some(_) => {}
            }
        }
        if solver != Solver::Lbfgs && self.regularization.l1 > 0.0 {
            return refuse("does not take an L1 penalty; lbfgs does (OWL-QN)".into());
        }
        let p = (session.features() + 1) * session.objective().outputs();
        if solver == Solver::Newton && p > NEWTON_MAX_PARAMETERS {
            return refuse(format!(
                "takes at most {NEWTON_MAX_PARAMETERS} parameters ((features + 1) × \
                 outputs), and this problem has {p}; newton-cg and lbfgs take any number"
            ));
        }
        if solver == Solver::Newton && session.has_curvature() && !session.has_hessian() {
            return refuse(format!(
                "needs the exact Hessian, which {} does not build; newton-cg (Hessian-vector \
                 products) and lbfgs fit the same problem",
                session.describe()
            ));
        }
        if self.max_iter == Some(0) {
            return Err(Error::option("max-iter", 0, "must be at least 1"));
        }
        if self.lbfgs_memory == 0 {
            return Err(Error::option("lbfgs-memory", 0, "must be at least 1"));
        }
        Ok(())
    }

    /// The options a solver's checkpoint must share with the fit that resumes it: the
    /// trainer's, and the solver's own but for --max-iter (a fit resumed to go on).
    fn solver_fingerprint(&self, solver: Solver) -> String {
        format!(
            "{}, solver {solver}, lbfgs_memory {}",
            self.options_fingerprint(),
            self.lbfgs_memory
        )
    }

    /// The checkpoint this fit resumes and its solver's state, checked against the fit.
    fn resumed_state(
        &self,
        objective: &Objective,
        rows: usize,
        features: usize,
        fingerprint: &str,
    ) -> Result<Option<(&Checkpoint, &SolverState)>> {
        let Some(ck) = self.wiring.resume.as_deref() else {
            return Ok(None);
        };
        ck.check_matches(
            objective,
            rows,
            features,
            self.wiring.data_id.as_deref(),
            fingerprint,
            None,
        )?;
        Ok(ck.solver.as_ref().map(|state| (ck, state)))
    }

    /// The checkpoint of a solver's `state` (θ raw as `raw`) on a session of `shape`
    /// (objective, rows, features): the descent's fields filled so that a loader checks
    /// them alike, the iteration as the epoch and no step within it.
    fn solver_checkpoint(
        &self,
        (objective, rows, features): (&Objective, usize, usize),
        fingerprint: &str,
        log: Vec<LogEntry>,
        raw: Vec<f64>,
        state: &SolverState,
    ) -> Checkpoint {
        Checkpoint {
            format: Checkpoint::format(),
            model: objective.model(),
            loss_fn: objective.loss().to_string(),
            outputs: objective.outputs(),
            rows,
            features,
            data: self.wiring.data_id.clone(),
            options: fingerprint.to_string(),
            epoch: state.iteration,
            step_in_epoch: 0,
            evaluated: true,
            rng: RngState {
                seed: self.seed,
                epoch: state.iteration,
                step: 0,
            },
            snapshot: crate::backend::Snapshot {
                theta: raw.clone(),
                state: Vec::new(),
                raw,
            },
            // The descent's early-stopping record; a solver keeps its own in `solver`.
            best: Best {
                value: state.best.unwrap_or(0.0),
                epoch: state.best_iteration,
                params: None,
            },
            waited: 0,
            log,
            solver: Some(state.clone()),
        }
    }

    /// The iterations `solver` runs at most.
    pub fn max_iterations(&self, solver: Solver) -> u64 {
        self.max_iter.unwrap_or(solver.default_max_iter())
    }

    /// The objective the fit minimized at its parameters: the training loss plus the
    /// penalties on the weights in the optimizer's space (standardized when
    /// standardizing).
    pub fn objective_of(&self, fit: &Fit) -> f64 {
        let k = fit.params.outputs();
        let flat = fit.params.flat();
        let theta = match &fit.configured.standardization {
            Some(s) => s.from_raw(&flat, k),
            None => flat,
        };
        let w = &theta[..fit.params.features() * k];
        let Regularization { l2, l1 } = self.regularization;
        fit.loss
            + 0.5 * l2 * w.iter().map(|v| v * v).sum::<f64>()
            + l1 * w.iter().map(|v| v.abs()).sum::<f64>()
    }

    /// The solver's stopping rule: `tol` (default 1e-8, relative to the start) on ‖∇F‖∞,
    /// and its iteration limit.
    fn stopping_of(&self, solver: Solver) -> Stopping {
        Stopping {
            tol: self.tol.unwrap_or(DEFAULT_TOL),
            max_iter: self.max_iterations(solver),
            memory: self.lbfgs_memory,
        }
    }

    /// A fit by `solver` on a configured session.
    pub(super) fn solve_fit(
        &self,
        session: &mut dyn Session,
        observer: &mut dyn Observer,
        solver: Solver,
        why: String,
        configured: Configured,
    ) -> Result<Fit> {
        self.check_solver(solver, session)?;
        let start = Instant::now();
        let objective = session.objective();
        let outputs = objective.outputs();
        let init = self
            .init
            .clone()
            .unwrap_or_else(|| Params::zeros(session.features(), outputs));
        let stopping = self.stopping_of(solver);
        let interrupt = self.wiring.interrupt.clone();
        let fingerprint = self.solver_fingerprint(solver);
        let (rows, features) = (session.rows(), session.features());
        let resumed = self.resumed_state(&objective, rows, features, &fingerprint)?;
        let log = std::cell::RefCell::new(resumed.map_or_else(Vec::new, |(ck, _)| ck.log.clone()));
        let mut problem = Problem::new(
            session,
            self.regularization,
            configured.standardization.as_ref(),
            !self.fit_intercept,
        )?;
        let start_at = match resumed {
            Some((_, state)) => Start::Resume(state),
            None => Start::At(problem.theta_of(&init)),
        };
        let wants = observer.wants_params();
        let params_of = problem.params_of();
        let mut record = |report: &Progress| {
            let entry = LogEntry::at(
                report.iteration,
                Evaluations {
                    training: report.point.evaluation,
                    validation: None,
                },
            );
            log.borrow_mut().push(entry);
            let params = wants.then(|| params_of(&report.point.theta));
            observer.logged(&entry, params.as_ref());
            observer.progress(report.iteration);
            !interrupt.as_ref().is_some_and(Interrupt::is_raised)
        };
        let mut save = |state: &SolverState| -> Result<()> {
            let Some(to) = &self.wiring.checkpointing else {
                return Ok(());
            };
            let raw = params_of(&state.theta).flat();
            let shape = (&objective, rows, features);
            let log = log.borrow().clone();
            self.solver_checkpoint(shape, &fingerprint, log, raw, state)
                .save(&to.path)
        };
        let saving = self.wiring.checkpointing.as_ref().map(|c| Saving {
            every: c.every,
            save: &mut save,
        });
        let solution: Solution = crate::solve::solve(
            solver,
            &mut problem,
            start_at,
            &stopping,
            &mut record,
            saving,
        )?;
        let params = problem.params(&solution.point.theta);
        problem.session().set_params(&params)?;
        let log = log.into_inner();
        let last = *log.last().expect("the solver reports its start");
        let stop = if solution.reason == "interrupted" {
            StopReason::Interrupted {
                step: solution.iterations,
            }
        } else if solution.converged {
            StopReason::Converged
        } else {
            StopReason::NotConverged
        };
        let mut fitted = FittedModel::new(&objective, params.clone());
        fitted.standardization = configured.standardization.clone();
        Ok(Fit {
            params,
            model: fitted,
            loss: last.training.loss,
            history: log.iter().map(|e| e.training.loss).collect(),
            history_epochs: log.iter().map(|e| e.epoch).collect(),
            log,
            last,
            epochs: solution.iterations,
            stop,
            configured,
            train_seconds: start.elapsed().as_secs_f64(),
            solved: Some(Solved {
                solver,
                why,
                iterations: solution.iterations,
                passes: solution.passes,
                pass_history: solution.pass_history,
                converged: solution.converged,
                grad_norm: solution.grad_norm,
                objective: solution.objective,
                reason: solution.reason,
            }),
        })
    }
}
