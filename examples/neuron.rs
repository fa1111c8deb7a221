//! One logistic neuron with squared error, as in the teaching notes: x = [1, 2, 3], y = 1,
//! w = [0.5, 0.3, 0.1], b = −1. The gradient three ways: the chain rule by hand,
//! downhill's kernels (CPU reference, and the GPU when there is one), and central finite
//! differences.
//!
//! cargo run --release --example neuron

use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data};
use downhill::gpu::Gpu;
use downhill::{Dataset, Loss, Model, Objective, Params};

fn main() -> downhill::Result<()> {
    let x = [1.0, 2.0, 3.0];
    let (w, b, y) = ([0.5, 0.3, 0.1], -1.0, 1.0);

    // By hand: z = x·w + b, σ(z), J = (σ − y)², dJ/dσ = 2(σ − y), dσ/dz = σ(1 − σ).
    let z: f64 = x.iter().zip(&w).map(|(x, w)| x * w).sum::<f64>() + b;
    let s = 1.0 / (1.0 + (-z).exp());
    let (dj_ds, ds_dz) = (2.0 * (s - y), s * (1.0 - s));
    let delta = dj_ds * ds_dz;
    println!("z = {z:.4}, σ(z) = {s:.4}, J = {:.6}", (s - y) * (s - y));
    println!("dJ/dσ = {dj_ds:.4}, dσ/dz = {ds_dz:.4}, δ = dJ/dσ · dσ/dz = {delta:.4}");
    println!(
        "by hand:      ∇w = δ·x = [{:.4}, {:.4}, {:.4}], ∇b = δ·1 = {delta:.4}",
        delta * x[0],
        delta * x[1],
        delta * x[2]
    );

    let data = Dataset::from_slices(&x.map(|v| v as f32), &[y as f32], 3)?;
    let objective = Objective::new(Model::Logistic, Some(Loss::Mse), 1)?;
    let params = Params::new(3, 1, w.to_vec(), vec![b])?;
    let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(Reference)];
    match Gpu::open() {
        Ok(gpu) => backends.push(Box::new(gpu)),
        Err(e) => eprintln!("(no GPU: {e})"),
    }
    for backend in &backends {
        let g = downhill::gradient(backend.as_ref(), &data, objective, Some(&params))?;
        println!(
            "{:<13} ∇w = [{:.4}, {:.4}, {:.4}], ∇b = {:.4}",
            format!("{}:", backend.name()),
            g.weights[0],
            g.weights[1],
            g.weights[2],
            g.bias[0]
        );
    }

    // Central differences (J(θ + h) − J(θ − h)) / 2h on the reference's loss.
    let h = 1e-5;
    let mut session = Reference.open(Data::Host(&data), objective)?;
    let mut loss_at = |i: usize, shift: f64| -> downhill::Result<f64> {
        let mut p = params.clone();
        if i < 3 {
            p.weights_mut()[i] += shift;
        } else {
            p.bias_mut()[0] += shift;
        }
        session.set_params(&p)?;
        session.loss()
    };
    let mut numeric = [0.0; 4];
    for (i, n) in numeric.iter_mut().enumerate() {
        *n = (loss_at(i, h)? - loss_at(i, -h)?) / (2.0 * h);
    }
    println!(
        "differences:  ∇w = [{:.4}, {:.4}, {:.4}], ∇b = {:.4}",
        numeric[0], numeric[1], numeric[2], numeric[3]
    );
    Ok(())
}
