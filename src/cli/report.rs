//! The report of `downhill fit`: its JSON and its text.

use serde_json::{Value, json};

use downhill::error::count;
use downhill::optim::UpdateRule;
use downhill::train::{LogEntry, StopReason};
use downhill::{Fit, Model, Objective, Params, params_file};

pub struct FitReport<'a> {
    pub objective: Objective,
    /// The loss plus the penalties at the fitted parameters.
    pub objective_value: f64,
    /// Why the solver (gd, for a descent) was chosen.
    pub solver_why: &'a str,
    pub rule: UpdateRule,
    pub backend: &'a str,
    pub device: &'a str,
    pub rows: usize,
    pub features: usize,
    pub fit: &'a Fit,
    pub truth: Option<&'a Params>,
    /// What `--verify` measured.
    pub verified: Option<&'a downhill::verify::Verified>,
}

impl FitReport<'_> {
    pub fn json(&self) -> Value {
        let (weights, bias) = params_file::json_parts(self.objective.model(), &self.fit.params);
        let mut out = json!({
            "model": self.objective.model(),
            "loss_fn": self.objective.loss(),
            "backend": self.backend,
            "device": self.device,
            "rows": self.rows,
            "features": self.features,
            "classes": self.objective.outputs(),
            "weights": weights,
            "bias": bias,
            "loss": self.fit.loss,
            "history": self.fit.history,
            "history_epochs": self.fit.history_epochs,
            "epochs": self.fit.epochs,
            "train_seconds": self.fit.train_seconds,
            "optimizer": self.rule.optimizer.name(),
            "stop_reason": match self.fit.stop {
                StopReason::Epochs => "epochs",
                StopReason::NoImprovement { .. } => "no_improvement",
                StopReason::Interrupted { .. } => "interrupted",
                StopReason::Converged => "converged",
                StopReason::NotConverged => "not_converged",
            },
            "objective": self.objective_value,
            "stopped_epoch": self.fit.epochs,
            "metrics": entry_json(&self.fit.last),
            "metrics_history": self.fit.log.iter().map(entry_json).collect::<Vec<_>>(),
            "training_rows": self.fit.configured.training_rows,
            "held_out_rows": self.fit.configured.held_out_rows,
        });
        if let StopReason::NoImprovement { best_epoch } = self.fit.stop {
            out["best_epoch"] = json!(best_epoch);
        }
        match &self.fit.solved {
            Some(s) => {
                out["solver"] = json!(s.solver.name());
                out["solver_reason"] = json!(s.why);
                out["iterations"] = json!(s.iterations);
                out["passes"] = json!(s.passes.total());
                out["passes_by_kind"] = json!(s.passes);
                out["converged"] = json!(s.converged);
                out["grad_norm"] = json!(s.grad_norm);
                out["stop_detail"] = json!(s.reason);
            }
            None => {
                out["solver"] = json!("gd");
                out["solver_reason"] = json!(self.solver_why);
            }
        }
        let column = |f: &dyn Fn(&LogEntry) -> Option<f64>| -> Value {
            self.fit
                .log
                .iter()
                .map(|e| json!(f(e)))
                .collect::<Vec<_>>()
                .into()
        };
        if self.fit.last.validation.is_some() {
            out["val_history"] = column(&|e| e.validation.map(|v| v.loss));
        }
        match self.objective.model() {
            Model::Linear => out["r2_history"] = column(&|e| e.training.r2),
            _ => out["accuracy_history"] = column(&|e| e.training.accuracy),
        }
        if let Some(st) = &self.fit.configured.standardization {
            // `mean` and `std` as model files name them; `scale` (1/std) as before.
            let std: Vec<f64> = st.scale.iter().map(|s| 1.0 / s).collect();
            out["standardization"] = json!({"mean": st.mean, "std": std, "scale": st.scale});
        }
        if let Some(cw) = &self.fit.configured.class_weights {
            out["class_weights"] = json!(cw);
        }
        if let Some(v) = self.verified {
            out["verified"] = json!({"rows": v.rows, "loss": v.loss, "gradient": v.gradient});
        }
        if let Some(truth) = self.truth {
            let distance = self.fit.params.distance(truth);
            out["distance_to_truth"] = json!(distance);
            out["relative_distance_to_truth"] = json!(distance / truth.norm());
        }
        out
    }

    pub fn text(&self) -> String {
        let f = self.fit;
        let mut s = format!(
            "{} on {} × {}\nbackend: {}\nepochs: {} ({}), {}, descent loop: {:.3} s\n",
            self.objective,
            count(self.rows, "row"),
            count(self.features, "feature"),
            self.device,
            f.epochs,
            f.stop.describe(),
            f.last,
            f.train_seconds
        );
        match &f.solved {
            Some(v) => {
                s += &format!(
                    "solver: {} ({}): {} after {} iterations, {} passes over the rows, \
                     ‖∇F‖∞ {:.3e}, objective {:.9}\n",
                    v.solver,
                    v.why,
                    if v.converged {
                        "converged"
                    } else {
                        "not converged"
                    },
                    v.iterations,
                    v.passes.total(),
                    v.grad_norm,
                    v.objective
                );
            }
            None => s += &format!("solver: gd ({})\n", self.solver_why),
        }
        s += &format!("weights: {}\n", preview(f.params.weights()));
        s += &format!("bias: {}\n", preview(f.params.bias()));
        if let Some(v) = self.verified {
            s += &format!(
                "verified against the f64 reference on {} rows: loss within {:.1e}, gradient \
                 within {:.1e}\n",
                v.rows, v.loss, v.gradient
            );
        }
        if let Some(truth) = self.truth {
            let distance = f.params.distance(truth);
            s += &format!(
                "distance to the true parameters: {distance:.6} ({:.3}% of their norm)\n",
                100.0 * distance / truth.norm()
            );
        }
        s
    }
}

/// `loss 0.123456, accuracy 0.9000, val_loss …` for the progress lines and the summary.
/// One logged epoch as JSON: loss and metrics, on training and held-out rows.
fn entry_json(e: &LogEntry) -> Value {
    let mut v = json!({"epoch": e.epoch, "loss": e.training.loss});
    let mut put = |prefix: &str, ev: &downhill::backend::Evaluation| {
        if let Some(a) = ev.accuracy {
            v[format!("{prefix}accuracy")] = json!(a);
        }
        if let Some(r2) = ev.r2 {
            v[format!("{prefix}r2")] = json!(r2);
        }
    };
    put("", &e.training);
    if let Some(val) = &e.validation {
        put("val_", val);
        v["val_loss"] = json!(val.loss);
    }
    v
}

/// Up to 12 numbers, then how many more there are.
fn preview(values: &[f64]) -> String {
    const SHOWN: usize = 12;
    let shown: Vec<String> = values
        .iter()
        .take(SHOWN)
        .map(|v| format!("{v:.6}"))
        .collect();
    let more = values.len().saturating_sub(SHOWN);
    if more == 0 {
        format!("[{}]", shown.join(", "))
    } else {
        format!(
            "[{}, … {more} more (see --json or --out)]",
            shown.join(", ")
        )
    }
}
