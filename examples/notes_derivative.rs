//! The teaching notes' first derivative: f(x) = 3x² − 4x + 5 at x = 3. f(3) = 20; the slope
//! by a finite difference with h = 0.0001 is about 14.0003, and the tape gives 14 exactly.
//! Draws f over [−5, 5) in steps of 0.25, as the notes do, with its tangent at 3, into
//! `derivative.png`.
//!
//! cargo run --release --example notes_derivative

use std::path::Path;

use downhill::autodiff::Tape;
use downhill::plot::{Curve, PALETTE, curve_plot};

fn f(x: f64) -> f64 {
    3.0 * x * x - 4.0 * x + 5.0
}

/// (f(3), the forward difference (f(3 + h) − f(3)) / h with h = 0.0001, the tape's slope).
pub fn numbers() -> (f64, f64, f64) {
    let h = 0.0001;
    let tape = Tape::new();
    let x = tape.var(3.0);
    let y = 3.0 * x.powi(2) - 4.0 * x + 5.0;
    tape.backward(y);
    (y.value(), (f(3.0 + h) - f(3.0)) / h, x.grad())
}

/// f at x = −5, −4.75, …, 4.75 (the notes' `np.arange(-5, 5, 0.25)`).
pub fn samples() -> Vec<(f64, f64)> {
    (0..40)
        .map(|i| {
            let x = -5.0 + 0.25 * f64::from(i);
            (x, f(x))
        })
        .collect()
}

/// The plot of f and its tangent at 3, y = 20 + 14(x − 3), near 3.
pub fn plot(path: &Path) -> downhill::Result<()> {
    let (value, _, slope) = numbers();
    let tangent = [1.5, 4.75].map(|x| (x, value + slope * (x - 3.0)));
    let curves = [
        Curve {
            label: "f(x) = 3x² − 4x + 5".into(),
            color: PALETTE[0],
            points: samples(),
        },
        Curve {
            label: format!("tangent at x = 3: slope {slope}"),
            color: PALETTE[3],
            points: tangent.to_vec(),
        },
    ];
    curve_plot(path, "f and its slope at x = 3", ("x", "f(x)"), &curves)
}

fn main() -> downhill::Result<()> {
    let (value, difference, slope) = numbers();
    println!("f(3) = {value}");
    println!("(f(3 + h) - f(3)) / h with h = 0.0001: {difference:.4}");
    println!("df/dx at 3 from the tape: {slope}");
    println!("f on [-5, 5) in steps of 0.25:");
    for (x, y) in samples() {
        println!("  f({x:5.2}) = {y:8.4}");
    }
    plot(Path::new("derivative.png"))?;
    println!("drew f and its tangent at 3 in derivative.png");
    Ok(())
}
