//! Arguments shared by several commands: the model, and which columns of which file.

use std::path::Path;

use clap::Args;

use downhill::BackendKind;
use downhill::custom::{CustomLoss, LossKind};
use downhill::input::{Columns, Target};
use downhill::{Error, Loss, Model, params_file};

/// Parses with the type's own `FromStr`, whose errors name the option and the choices.
pub fn parse<T: std::str::FromStr<Err = Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

/// A problem's shape, ROWSxFEATURES (logistic: `None` classes) or ROWSxFEATURESxCLASSES
/// (softmax, at least 2), for `bench --shapes` and `bench --problems`.
pub fn parse_dims(s: &str) -> Result<(usize, usize, Option<usize>), String> {
    let number = |t: &str| {
        t.parse::<usize>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("shape {s:?}: {t:?} is not a positive integer"))
    };
    let parts: Vec<&str> = s.split('x').collect();
    match parts[..] {
        [r, f] => Ok((number(r)?, number(f)?, None)),
        [r, f, k] => match number(k)? {
            1 => Err(format!(
                "shape {s:?}: softmax takes at least 2 classes (ROWSxFEATURES is logistic)"
            )),
            k => Ok((number(r)?, number(f)?, Some(k))),
        },
        _ => Err(format!(
            "shape {s:?}: expected ROWSxFEATURES or ROWSxFEATURESxCLASSES, e.g. 200000x64 or \
             20000x2048x1000"
        )),
    }
}

#[derive(Args)]
pub struct ModelArgs {
    /// linear, logistic or softmax.
    #[arg(long, value_parser = parse::<Model>)]
    pub model: Model,
    /// mse, bce or ce. Default: linear → mse, logistic → bce, softmax → ce.
    #[arg(long, value_parser = parse::<Loss>, conflicts_with = "loss_expr")]
    pub loss: Option<Loss>,
    /// A custom per-row loss, compiled to the kernels: of z and y (linear, logistic), or a
    /// per-class term of p = softmax(z) and t = [class = label] (softmax). Numbers,
    /// + - * / ^, exp ln sqrt tanh sigmoid relu abs. E.g. "sqrt(1 + (z - y)^2) - 1".
    #[arg(long, allow_hyphen_values = true)]
    pub loss_expr: Option<String>,
    /// Softmax classes k. Default: from the parameter file, else max label + 1
    /// (3 for synthetic data).
    #[arg(long)]
    pub classes: Option<usize>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl ModelArgs {
    /// --loss, or the compiled --loss-expr.
    pub fn loss(&self) -> Result<Option<Loss>, Error> {
        let Some(expr) = &self.loss_expr else {
            return Ok(self.loss);
        };
        let kind = match self.model {
            Model::Softmax => LossKind::Class,
            _ => LossKind::Output,
        };
        Ok(Some(CustomLoss::parse(expr, kind)?.register()))
    }

    /// The softmax class count: --classes, else the parameter file's, else `None` (the
    /// labels decide).
    pub fn classes_hint(&self, params: Option<&Path>) -> Result<Option<usize>, Error> {
        match (self.model, self.classes, params) {
            (Model::Softmax, None, Some(path)) => params_file::softmax_classes(path),
            _ => Ok(self.classes),
        }
    }
}

#[derive(Args)]
pub struct BackendArgs {
    /// auto (a hardware GPU if there is one, else the CPU), gpu, cpu or reference.
    #[arg(long, default_value = "auto", value_parser = parse::<BackendKind>)]
    pub backend: BackendKind,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where the labels of a data file are.
#[derive(Args)]
pub struct TargetArgs {
    /// The label column (CSV, Parquet), or a 1-D .npy file of labels for a .npy X.
    #[arg(long)]
    pub target: Option<String>,
    /// The label column of a 2-D .npy array (from 0); the other columns are features.
    #[arg(long, conflicts_with = "target")]
    pub target_index: Option<usize>,
}

impl TargetArgs {
    /// The target the options name, or `fallback` when they name none.
    pub fn target_or(&self, fallback: Option<Target>) -> Option<Target> {
        match (&self.target, self.target_index) {
            (Some(name), _) => Some(Target::Column(name.clone())),
            (None, Some(i)) => Some(Target::Index(i)),
            (None, None) => fallback,
        }
    }

    /// The target, required: a clear error when neither option is given.
    pub fn required(&self, data: &Path) -> Result<Target, Error> {
        self.target_or(None).ok_or_else(|| {
            Error::option(
                "target",
                "(none)",
                format!(
                    "{} needs its labels named: --target COLUMN (or --target y.npy, or \
                     --target-index J for a 2-D .npy array)",
                    data.display()
                ),
            )
        })
    }
}

/// `--features a,b,c`: the feature columns of a data file, in order.
pub fn feature_names(list: &str) -> Result<Vec<String>, Error> {
    let names: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(Error::option(
            "features",
            list,
            format!("name {} is empty (a stray comma?)", i + 1),
        ));
    }
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(Error::option(
                "features",
                list,
                format!("{name} is named twice"),
            ));
        }
    }
    Ok(names)
}

/// Columns for a data file: `target`, the named features (else all the others), weights.
pub fn columns(
    target: Target,
    features: Option<&str>,
    weights: Option<&str>,
) -> Result<Columns, Error> {
    Ok(Columns {
        target,
        features: features.map(feature_names).transpose()?,
        weights: weights.map(str::to_string),
    })
}

/// The label column's name in a model file, when the target is a column.
pub fn target_name(target: &Target) -> Option<String> {
    match target {
        Target::Column(name) if !name.ends_with(".npy") => Some(name.clone()),
        Target::Index(i) => Some(format!("x{i}")),
        _ => None,
    }
}
