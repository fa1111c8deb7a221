//! The fastai line fit: y = 3x + 2 + U(0, 1) on 100 points with x ~ U(−1, 1), fitted by
//! gradient descent on the squared error from w = 1, b = 1 with learning rate 0.1 for 100
//! steps, the loss printed every 10 steps. The noise has mean ½, so the fit heads for
//! w ≈ 3, b ≈ 2.5.
//!
//! cargo run --release --example line_fit

use downhill::BackendKind;
use downhill::rng::cell_hash;
use downhill::{Dataset, Objective, Params, Trainer};

/// Uniform in [0, 1) from the hash of (seed, i).
fn uniform(seed: u64, i: usize) -> f32 {
    (cell_hash(seed, 0, i as u32, 0)[0] >> 8) as f32 / (1u32 << 24) as f32
}

fn main() -> downhill::Result<()> {
    let n = 100;
    let x: Vec<f32> = (0..n).map(|i| uniform(1, i) * 2.0 - 1.0).collect();
    let y: Vec<f32> = (0..n).map(|i| 3.0 * x[i] + 2.0 + uniform(2, i)).collect();
    let data = Dataset::new(x, y, 1)?;

    let selected = downhill::select(BackendKind::Auto, Default::default())?;
    eprintln!("backend: {}", selected.reason);
    let trainer = Trainer::new()
        .lr(0.1)
        .epochs(100)
        .log_every(10)
        .init(Params::new(1, 1, vec![1.0], vec![1.0])?);
    let fit = downhill::fit(
        selected.backend.as_ref(),
        &data,
        Objective::linear(),
        &trainer,
    )?;
    for (epoch, loss) in fit.history_epochs.iter().zip(&fit.history) {
        println!("step {epoch:3}: loss {loss:.4}");
    }
    println!(
        "w = {:.4}, b = {:.4}",
        fit.params.weights()[0],
        fit.params.bias()[0]
    );
    Ok(())
}
