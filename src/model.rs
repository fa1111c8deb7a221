//! What is fitted: the model, its loss, and the parameters W (d×k) and b (k).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::custom::{CustomLoss, LossKind};
use crate::error::{Error, Result};
pub use crate::params::{Gradient, Params};

/// The model family. Z = XW + b in every case; they differ in the activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// ŷ = Xw + b, one output.
    Linear,
    /// ŷ = σ(Xw + b), one output, labels in {0, 1} (or [0, 1] under mse).
    Logistic,
    /// softmax(XW + b) over k classes, integer labels 0..k−1.
    Softmax,
}

/// The cost J, always a mean over the rows of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// J = (1/n) Σ (ŷ − y)².
    Mse,
    /// J = −(1/n) Σ [y log ŷ + (1 − y) log(1 − ŷ)], computed from z.
    Bce,
    /// J = −(1/n) Σ log softmax(Z)ᵢ,yᵢ.
    Ce,
    /// A loss registered with [`crate::custom::CustomLoss::register`].
    #[serde(skip)]
    Custom(u32),
}

impl Serialize for Loss {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl Model {
    pub const ALL: [Model; 3] = [Model::Linear, Model::Logistic, Model::Softmax];

    pub fn name(self) -> &'static str {
        match self {
            Model::Linear => "linear",
            Model::Logistic => "logistic",
            Model::Softmax => "softmax",
        }
    }

    /// linear → mse, logistic → bce, softmax → ce.
    pub fn default_loss(self) -> Loss {
        match self {
            Model::Linear => Loss::Mse,
            Model::Logistic => Loss::Bce,
            Model::Softmax => Loss::Ce,
        }
    }

    /// The losses this model supports, as the user would type them.
    pub fn supported_losses(self) -> &'static str {
        match self {
            Model::Linear => "mse, or a --loss-expr of z and y",
            Model::Logistic => "mse or bce, or a --loss-expr of z and y",
            Model::Softmax => "ce, or a --loss-expr of p and t",
        }
    }

    fn supports(self, loss: Loss) -> bool {
        match (self, loss) {
            (Model::Softmax, Loss::Custom(id)) => CustomLoss::lookup(id).kind() == LossKind::Class,
            (_, Loss::Custom(id)) => CustomLoss::lookup(id).kind() == LossKind::Output,
            _ => matches!(
                (self, loss),
                (Model::Linear, Loss::Mse)
                    | (Model::Logistic, Loss::Mse)
                    | (Model::Logistic, Loss::Bce)
                    | (Model::Softmax, Loss::Ce)
            ),
        }
    }
}

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::Bce => "bce",
            Loss::Ce => "ce",
            Loss::Custom(_) => "custom",
        }
    }
}

impl CustomLoss {
    /// Interns the loss for this process; the returned [`Loss`] names it.
    pub fn register(self) -> Loss {
        Loss::Custom(self.intern())
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::Custom(id) => write!(f, "custom:{}", CustomLoss::lookup(*id).name()),
            _ => f.write_str(self.name()),
        }
    }
}

impl FromStr for Model {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(Model::Linear),
            "logistic" => Ok(Model::Logistic),
            "softmax" => Ok(Model::Softmax),
            _ => Err(Error::option(
                "model",
                s,
                "expected linear, logistic or softmax",
            )),
        }
    }
}

impl FromStr for Loss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mse" => Ok(Loss::Mse),
            "bce" => Ok(Loss::Bce),
            "ce" => Ok(Loss::Ce),
            _ => Err(Error::option("loss", s, "expected mse, bce or ce")),
        }
    }
}

/// A model with a loss it supports and its number of outputs k
/// (1 for linear and logistic, the class count for softmax).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Objective {
    model: Model,
    loss: Loss,
    outputs: usize,
}

impl Objective {
    /// `loss` defaults to the model's own ([`Model::default_loss`]); `classes` is used
    /// by softmax only and must be at least 2.
    pub fn new(model: Model, loss: Option<Loss>, classes: usize) -> Result<Self> {
        let loss = loss.unwrap_or(model.default_loss());
        if !model.supports(loss) {
            return Err(Error::UnsupportedLoss {
                model: model.name(),
                loss: loss.name(),
                supported: model.supported_losses(),
            });
        }
        let outputs = match model {
            Model::Softmax if classes < 2 => {
                return Err(Error::option(
                    "classes",
                    classes,
                    "softmax needs at least 2 classes",
                ));
            }
            Model::Softmax => classes,
            Model::Linear | Model::Logistic => 1,
        };
        Ok(Objective {
            model,
            loss,
            outputs,
        })
    }

    /// Linear regression with mean squared error.
    pub fn linear() -> Self {
        Objective {
            model: Model::Linear,
            loss: Loss::Mse,
            outputs: 1,
        }
    }

    /// Logistic regression with binary cross-entropy.
    pub fn logistic() -> Self {
        Objective {
            model: Model::Logistic,
            loss: Loss::Bce,
            outputs: 1,
        }
    }

    /// Softmax regression over `classes` classes with cross-entropy.
    pub fn softmax(classes: usize) -> Result<Self> {
        Self::new(Model::Softmax, None, classes)
    }

    pub fn model(&self) -> Model {
        self.model
    }

    pub fn loss(&self) -> Loss {
        self.loss
    }

    /// k: the number of columns of W.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Checks one label; `Err` carries what was expected, for the caller to place.
    pub fn check_label(&self, y: f32) -> Result<(), &'static str> {
        let ok = match (self.model, self.loss) {
            (Model::Linear, _) => y.is_finite(),
            (Model::Logistic, Loss::Bce) => y == 0.0 || y == 1.0,
            (Model::Logistic, _) => (0.0..=1.0).contains(&y),
            (Model::Softmax, _) => y >= 0.0 && y.fract() == 0.0 && (y as usize) < self.outputs,
        };
        if ok {
            Ok(())
        } else {
            Err(match (self.model, self.loss) {
                (Model::Linear, _) => "that are finite numbers",
                (Model::Logistic, Loss::Bce) => "0 or 1",
                (Model::Logistic, _) => "in [0, 1]",
                (Model::Softmax, _) => "that are integers in 0..k-1 (k = --classes)",
            })
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.model {
            Model::Softmax => write!(
                f,
                "softmax regression ({} classes, {})",
                self.outputs, self.loss
            ),
            _ => write!(f, "{} regression with {}", self.model, self.loss),
        }
    }
}
