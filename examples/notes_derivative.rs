//! The teaching notes' first derivative: f(x) = 3x² − 4x + 5 at x = 3. f(3) = 20; the slope
//! by a finite difference with h = 0.0001 is about 14.0003, and the tape gives 14 exactly.
//!
//! cargo run --release --example notes_derivative

use downhill::autodiff::Tape;

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

fn main() {
    let (value, difference, slope) = numbers();
    println!("f(3) = {value}");
    println!("(f(3 + h) - f(3)) / h with h = 0.0001: {difference:.4}");
    println!("df/dx at 3 from the tape: {slope}");
    println!("f on [-5, 5) in steps of 0.25:");
    for i in 0..40 {
        let x = -5.0 + 0.25 * f64::from(i);
        println!("  f({x:5.2}) = {:8.4}", f(x));
    }
}
