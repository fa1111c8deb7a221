//! Two small functions of the teaching notes. L(w) = w1² + w2² − w1·w2 at (−5, 5): L = 75,
//! ∇L = (−15, 15). The linear unit z = w1·x1 + w2·x2 + b: its gradient with respect to
//! (w1, w2, b) is (x1, x2, 1).
//!
//! cargo run --release --example notes_two_variables

use downhill::autodiff::Tape;

/// L(−5, 5) and ∇L.
pub fn bowl() -> (f64, [f64; 2]) {
    let tape = Tape::new();
    let (w1, w2) = (tape.var(-5.0), tape.var(5.0));
    let l = w1.powi(2) + w2.powi(2) - w1 * w2;
    tape.backward(l);
    (l.value(), [w1.grad(), w2.grad()])
}

/// ∂z/∂(w1, w2, b) at x = (x1, x2), for any weights.
pub fn linear_unit(x1: f64, x2: f64) -> [f64; 3] {
    let tape = Tape::new();
    let (w1, w2, b) = (tape.var(0.3), tape.var(-1.2), tape.var(0.5));
    let z = w1 * x1 + w2 * x2 + b;
    tape.backward(z);
    [w1.grad(), w2.grad(), b.grad()]
}

fn main() {
    let (l, [g1, g2]) = bowl();
    println!("L(-5, 5) = {l}, grad L = ({g1}, {g2})");
    let g = linear_unit(1.5, -2.0);
    println!(
        "z = w1*x1 + w2*x2 + b at x = (1.5, -2): dz/d(w1, w2, b) = ({}, {}, {})",
        g[0], g[1], g[2]
    );
}
