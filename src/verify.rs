//! A backend checked against the f64 reference at run time (`fit --verify`): the mission's
//! "a CPU reference checks the GPU", for devices and drivers nobody has tried. The loss and
//! the gradient of a backend's session are compared with [`Reference`]'s on the same rows,
//! at the fit's starting parameters and at a fixed point away from them (at zero weights
//! every column of W looks alike, so a kernel that mixes them up would pass there).

use crate::backend::reference::Reference;
use crate::backend::{Backend, Data, Session};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Gradient, Objective, Params};
use crate::rng;

/// Rows compared: all of them up to this many, else a fixed sample of this many.
pub const SAMPLE_ROWS: usize = 100_000;

/// The largest disagreement accepted, relative to the reference's loss (and to its
/// largest gradient entry, or 10⁻³ when every entry is smaller): f32 sums of 10⁵ rows
/// stay within about 10⁻⁶, a wrong kernel is off by far more.
pub const TOLERANCE: f64 = 1e-4;

/// What a verification measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// Rows compared.
    pub rows: usize,
    /// The largest relative difference of the loss, over the points compared.
    pub loss: f64,
    /// The largest difference of a gradient entry, relative to the reference's largest.
    pub gradient: f64,
}

/// Every ⌈n / SAMPLE_ROWS⌉-th row of `data`, as a dataset of its own (weights kept).
pub fn sample_host(data: &Dataset) -> Result<Dataset> {
    let stride = data.rows().div_ceil(SAMPLE_ROWS).max(1);
    let picked: Vec<usize> = (0..data.rows()).step_by(stride).collect();
    let d = data.features();
    let mut x = Vec::with_capacity(picked.len() * d);
    for &i in &picked {
        x.extend_from_slice(data.row(i));
    }
    let y = picked.iter().map(|&i| data.y()[i]).collect();
    let sampled = Dataset::new(x, y, d)?;
    match data.weights() {
        Some(w) => sampled.with_weights(picked.iter().map(|&i| w[i]).collect()),
        None => Ok(sampled),
    }
}

/// A point away from the start: entries uniform in ±1/√d from a fixed hash.
fn probe_point(features: usize, outputs: usize) -> Params {
    let scale = 1.0 / (features.max(1) as f64).sqrt();
    let value = |i: usize| {
        let h = rng::cell_hash(0x7665_7269_6679, 15, i as u32, 0)[0];
        (f64::from(h) / 4_294_967_296.0 * 2.0 - 1.0) * scale
    };
    let n = features * outputs;
    Params::new(
        features,
        outputs,
        (0..n).map(value).collect(),
        (0..outputs).map(|c| value(n + c)).collect(),
    )
    .expect("shapes match")
}

/// Compares `session` (over the rows of `data`, and no others) with the reference on the
/// same rows at `start` (zeros when `None`) and at a fixed point; leaves the session at
/// `start`. `backend` names the session in the error.
pub fn verify_session(
    session: &mut dyn Session,
    data: &Data<'_>,
    objective: Objective,
    start: Option<&Params>,
    backend: &str,
) -> Result<Verified> {
    let (d, k) = (data.features(), objective.outputs());
    let rows = data.window().len();
    let start = start.cloned().unwrap_or_else(|| Params::zeros(d, k));
    let mut reference = Reference.open(data.clone(), objective)?;
    let mut verified = Verified {
        rows,
        loss: 0.0,
        gradient: 0.0,
    };
    for (point, params) in [("start", &start), ("probe", &probe_point(d, k))] {
        session.set_params(params)?;
        reference.set_params(params)?;
        let (got, expected) = (session.gradient()?, reference.gradient()?);
        let (loss, gradient) = differences(&got, &expected);
        verified.loss = verified.loss.max(loss);
        verified.gradient = verified.gradient.max(gradient);
        if !(loss <= TOLERANCE && gradient <= TOLERANCE) {
            return Err(Error::Verification {
                backend: backend.to_string(),
                what: if loss > TOLERANCE || loss.is_nan() {
                    "loss"
                } else {
                    "gradient"
                },
                rows,
                detail: format!(
                    "at the {point} parameters: loss {} vs {}, largest gradient difference \
                     {gradient:.3e} of the largest entry (tolerance {TOLERANCE:e})",
                    got.loss, expected.loss
                ),
            });
        }
    }
    session.set_params(&start)?;
    Ok(verified)
}

/// The loss's relative difference and the largest entry's difference relative to the
/// reference's largest entry (at least 10⁻³); NaN when either is not finite.
fn differences(got: &Gradient, expected: &Gradient) -> (f64, f64) {
    let loss = (got.loss - expected.loss).abs() / expected.loss.abs().max(1.0);
    let scale = expected.max_abs().max(1e-3);
    let all = |g: &Gradient| {
        g.weights
            .iter()
            .chain(&g.bias)
            .copied()
            .collect::<Vec<f64>>()
    };
    let gradient = all(got)
        .iter()
        .zip(all(expected))
        .map(|(a, b)| (a - b).abs() / scale)
        .fold(0.0f64, |m, v| if v.is_nan() { f64::NAN } else { m.max(v) });
    (if loss.is_finite() { loss } else { f64::NAN }, gradient)
}

/// Opens `objective` on `backend` over the rows of `data` when it has at most
/// [`SAMPLE_ROWS`], else over a fixed sample of that many: the first rows of a synthetic
/// problem (its rows are drawn alike), every ⌈n / SAMPLE_ROWS⌉-th row of others; and
/// verifies it ([`verify_session`]).
pub fn verify(
    backend: &dyn Backend,
    data: &Data<'_>,
    objective: Objective,
    start: Option<&Params>,
) -> Result<Verified> {
    let host;
    let rows = match data {
        _ if data.window().len() <= SAMPLE_ROWS => data.clone(),
        Data::Synthetic(_) => Data::part(data.clone(), 0..SAMPLE_ROWS)?,
        _ => {
            host = sample_host(&*data.to_host()?)?;
            Data::Host(&host)
        }
    };
    let mut session = backend.open(rows.clone(), objective)?;
    verify_session(session.as_mut(), &rows, objective, start, backend.name())
}
