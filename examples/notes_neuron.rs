//! The teaching notes' tanh neuron: o = tanh(x1·w1 + x2·w2 + b) with x1 = 2, x2 = 0,
//! w1 = −3, w2 = 1, b = 6.8813735870195432: o ≈ 0.7071, and the gradients
//! x1: −1.5, w1: 1.0, x2: 0.5, w2: 0.0, b: 0.5.
//!
//! cargo run --release --example notes_neuron

use downhill::autodiff::Tape;

/// o and the gradients of (x1, w1, x2, w2, b).
pub fn numbers() -> (f64, [f64; 5]) {
    let tape = Tape::new();
    let (x1, x2) = (tape.var(2.0), tape.var(0.0));
    let (w1, w2) = (tape.var(-3.0), tape.var(1.0));
    // atanh(1/√2), so that o = 1/√2; the notes print it as 6.8813735870195432.
    let b = tape.var(6.881_373_587_019_543);
    let o = (x1 * w1 + x2 * w2 + b).tanh();
    tape.backward(o);
    (o.value(), [x1, w1, x2, w2, b].map(|v| v.grad()))
}

fn main() {
    let (o, g) = numbers();
    println!("o = tanh(x1*w1 + x2*w2 + b) = {o:.4}");
    for (name, grad) in ["x1", "w1", "x2", "w2", "b"].iter().zip(g) {
        println!("  do/d{name} = {grad:.4}");
    }
}
