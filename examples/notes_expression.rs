//! The teaching notes' small graphs: d = a·b + c with a = 2, b = −3, c = 10, and then
//! e = a·b, d = e + c, L = d·f with f = −2, drawn as Graphviz DOT (and SVG when `dot` is
//! installed) in the current directory.
//!
//! cargo run --release --example notes_expression

use downhill::autodiff::Tape;

/// d and (∂d/∂a, ∂d/∂b, ∂d/∂c).
pub fn expression() -> (f64, [f64; 3]) {
    let tape = Tape::new();
    let (a, b, c) = (tape.var(2.0), tape.var(-3.0), tape.var(10.0));
    let d = a * b + c;
    tape.backward(d);
    (d.value(), [a.grad(), b.grad(), c.grad()])
}

/// L, the gradients of (a, b, c, e, d, f, L), and the graph in DOT.
pub fn graph() -> (f64, [f64; 7], String) {
    let tape = Tape::new();
    let a = tape.var(2.0).label("a");
    let b = tape.var(-3.0).label("b");
    let c = tape.var(10.0).label("c");
    let e = (a * b).label("e");
    let d = (e + c).label("d");
    let f = tape.var(-2.0).label("f");
    let l = (d * f).label("L");
    tape.backward(l);
    let grads = [a, b, c, e, d, f, l].map(|v| v.grad());
    (l.value(), grads, tape.to_dot(l))
}

fn main() -> std::io::Result<()> {
    let (d, [da, db, dc]) = expression();
    println!("d = a*b + c = {d}; dd/da = {da}, dd/db = {db}, dd/dc = {dc}");
    let (l, g, dot) = graph();
    println!("L = (a*b + c) * f = {l}");
    for (name, grad) in ["a", "b", "c", "e", "d", "f", "L"].iter().zip(g) {
        println!("  dL/d{name} = {grad}");
    }
    std::fs::write("graph.dot", &dot)?;
    println!("wrote graph.dot");
    match std::process::Command::new("dot")
        .args(["-Tsvg", "graph.dot", "-o", "graph.svg"])
        .status()
    {
        Ok(s) if s.success() => println!("wrote graph.svg"),
        _ => println!("(install graphviz for graph.svg: dot -Tsvg graph.dot -o graph.svg)"),
    }
    Ok(())
}
