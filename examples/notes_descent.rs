//! Gradient descent on J(b) = (5 − b)² + (10 − b)² from b = 10 with learning rate 0.1: the
//! first step takes b to 9, and b converges to the minimum 7.5.
//!
//! cargo run --release --example notes_descent

use downhill::autodiff::Tape;

/// b after each of `steps` steps.
pub fn path(steps: usize) -> Vec<f64> {
    let mut b = 10.0;
    (0..steps)
        .map(|_| {
            let tape = Tape::new();
            let bv = tape.var(b);
            let j = (5.0 - bv).powi(2) + (10.0 - bv).powi(2);
            tape.backward(j);
            b -= 0.1 * bv.grad();
            b
        })
        .collect()
}

fn main() {
    for (i, b) in path(20).iter().enumerate() {
        println!("step {:2}: b = {b:.6}", i + 1);
    }
}
