//! A small reverse-mode autodiff engine on scalars, after micrograd: a tape (an arena of
//! nodes addressed by index, each naming its operands by index) records every operation;
//! [`Tape::backward`] walks it in reverse, which is a reverse topological order because an
//! operation's operands are always recorded before it. Gradients accumulate, so a value
//! used twice gets both contributions (a + a gives 2).
//!
//! ```
//! use downhill::autodiff::Tape;
//! let tape = Tape::new();
//! let (a, b, c) = (tape.var(2.0), tape.var(-3.0), tape.var(10.0));
//! let d = a * b + c;
//! tape.backward(d);
//! assert_eq!((d.value(), a.grad(), b.grad(), c.grad()), (4.0, -3.0, 2.0, 1.0));
//! ```

use std::cell::RefCell;
use std::fmt::Write;
use std::ops;

/// What a node computes from its operands (indices of earlier nodes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// An input, or a constant when `constant`.
    Leaf {
        constant: bool,
    },
    Add(usize, usize),
    Sub(usize, usize),
    Mul(usize, usize),
    Div(usize, usize),
    Neg(usize),
    PowI(usize, i32),
    PowF(usize, f64),
    Exp(usize),
    Ln(usize),
    Tanh(usize),
    Sigmoid(usize),
    Relu(usize),
}

/// The op table: what each operation means, in one place for every use of it — its value
/// from its operands' values, and its local derivatives ∂out/∂operand, in f64 (the tape's
/// forward and backward passes, the custom losses' per-row program) and as WGSL (the
/// custom losses' kernel code). `v(j)` is operand j's value (or its WGSL name), `out` the
/// op's own.
impl Op {
    /// The op's value; `None` for a leaf, whose value is given.
    pub fn value(self, v: impl Fn(usize) -> f64) -> Option<f64> {
        Some(match self {
            Op::Leaf { .. } => return None,
            Op::Add(a, b) => v(a) + v(b),
            Op::Sub(a, b) => v(a) - v(b),
            Op::Mul(a, b) => v(a) * v(b),
            Op::Div(a, b) => v(a) / v(b),
            Op::Neg(a) => -v(a),
            Op::PowI(a, n) => v(a).powi(n),
            Op::PowF(a, p) => v(a).powf(p),
            Op::Exp(a) => v(a).exp(),
            Op::Ln(a) => v(a).ln(),
            Op::Tanh(a) => v(a).tanh(),
            Op::Sigmoid(a) => crate::math::sigmoid(v(a)),
            Op::Relu(a) => v(a).max(0.0),
        })
    }

    /// (operand, ∂out/∂operand) for each operand.
    pub fn partials(self, v: impl Fn(usize) -> f64, out: f64) -> Vec<(usize, f64)> {
        match self {
            Op::Leaf { .. } => vec![],
            // d(a + b) = da + db
            Op::Add(a, b) => vec![(a, 1.0), (b, 1.0)],
            Op::Sub(a, b) => vec![(a, 1.0), (b, -1.0)],
            // d(ab) = b da + a db
            Op::Mul(a, b) => vec![(a, v(b)), (b, v(a))],
            // d(a/b) = da/b − a db/b²
            Op::Div(a, b) => vec![(a, 1.0 / v(b)), (b, -v(a) / (v(b) * v(b)))],
            Op::Neg(a) => vec![(a, -1.0)],
            // d(aⁿ) = n aⁿ⁻¹ da
            Op::PowI(a, n) => vec![(a, f64::from(n) * v(a).powi(n - 1))],
            Op::PowF(a, p) => vec![(a, p * v(a).powf(p - 1.0))],
            // d(eᵃ) = eᵃ da
            Op::Exp(a) => vec![(a, out)],
            // d(ln a) = da/a
            Op::Ln(a) => vec![(a, 1.0 / v(a))],
            // d(tanh a) = (1 − tanh² a) da
            Op::Tanh(a) => vec![(a, 1.0 - out * out)],
            // d(σ(a)) = σ(1 − σ) da
            Op::Sigmoid(a) => vec![(a, out * (1.0 - out))],
            Op::Relu(a) => vec![(a, if v(a) > 0.0 { 1.0 } else { 0.0 })],
        }
    }

    /// The op's second local derivatives ∂²out/∂operand∂operand′ that are not zero, each
    /// pair once (a mixed one counts for both orders): what forward-mode second
    /// derivatives ([`crate::custom::CustomLoss::eval_curvature`]) add to the chain rule.
    pub fn second_partials(self, v: impl Fn(usize) -> f64, out: f64) -> Vec<(usize, usize, f64)> {
        match self {
            Op::Leaf { .. } | Op::Add(..) | Op::Sub(..) | Op::Neg(_) | Op::Relu(_) => vec![],
            // ∂²(ab)/∂a∂b = 1
            Op::Mul(a, b) => vec![(a, b, 1.0)],
            // ∂²(a/b)/∂a∂b = −1/b², ∂²(a/b)/∂b² = 2a/b³
            Op::Div(a, b) => vec![
                (a, b, -1.0 / (v(b) * v(b))),
                (b, b, 2.0 * v(a) / v(b).powi(3)),
            ],
            // (aⁿ)'' = n(n − 1)aⁿ⁻²
            Op::PowI(a, n) => vec![(a, a, f64::from(n) * f64::from(n - 1) * v(a).powi(n - 2))],
            Op::PowF(a, p) => vec![(a, a, p * (p - 1.0) * v(a).powf(p - 2.0))],
            // (eᵃ)'' = eᵃ
            Op::Exp(a) => vec![(a, a, out)],
            // (ln a)'' = −1/a²
            Op::Ln(a) => vec![(a, a, -1.0 / (v(a) * v(a)))],
            // (tanh a)'' = −2 tanh a (1 − tanh² a)
            Op::Tanh(a) => vec![(a, a, -2.0 * out * (1.0 - out * out))],
            // σ'' = σ(1 − σ)(1 − 2σ)
            Op::Sigmoid(a) => vec![(a, a, out * (1.0 - out) * (1.0 - 2.0 * out))],
        }
    }

    /// [`Op::value`] as a WGSL expression; `None` for a leaf.
    pub fn wgsl_value(self, v: impl Fn(usize) -> String) -> Option<String> {
        Some(match self {
            Op::Leaf { .. } => return None,
            Op::Add(a, b) => format!("{} + {}", v(a), v(b)),
            Op::Sub(a, b) => format!("{} - {}", v(a), v(b)),
            Op::Mul(a, b) => format!("{} * {}", v(a), v(b)),
            Op::Div(a, b) => format!("{} / {}", v(a), v(b)),
            Op::Neg(a) => format!("-{}", v(a)),
            Op::PowI(a, n) => format!("powi({}, {n})", v(a)),
            Op::PowF(a, p) => format!("pow({}, {})", v(a), wgsl_float(p)),
            Op::Exp(a) => format!("exp({})", v(a)),
            Op::Ln(a) => format!("log({})", v(a)),
            Op::Tanh(a) => format!("tanh({})", v(a)),
            Op::Sigmoid(a) => format!("sigmoid({})", v(a)),
            Op::Relu(a) => format!("max({}, 0.0)", v(a)),
        })
    }

    /// [`Op::partials`] as WGSL expressions.
    pub fn wgsl_partials(self, v: impl Fn(usize) -> String, out: &str) -> Vec<(usize, String)> {
        match self {
            Op::Leaf { .. } => vec![],
            Op::Add(a, b) => vec![(a, "1.0".into()), (b, "1.0".into())],
            Op::Sub(a, b) => vec![(a, "1.0".into()), (b, "-1.0".into())],
            Op::Mul(a, b) => vec![(a, v(b)), (b, v(a))],
            Op::Div(a, b) => vec![
                (a, format!("1.0 / {}", v(b))),
                (b, format!("-{} / ({} * {})", v(a), v(b), v(b))),
            ],
            Op::Neg(a) => vec![(a, "-1.0".into())],
            Op::PowI(a, n) => vec![(a, format!("{n}.0 * powi({}, {})", v(a), n - 1))],
            Op::PowF(a, p) => vec![(
                a,
                format!("{} * pow({}, {})", wgsl_float(p), v(a), wgsl_float(p - 1.0)),
            )],
            Op::Exp(a) => vec![(a, out.to_string())],
            Op::Ln(a) => vec![(a, format!("1.0 / {}", v(a)))],
            Op::Tanh(a) => vec![(a, format!("(1.0 - {out} * {out})"))],
            Op::Sigmoid(a) => vec![(a, format!("{out} * (1.0 - {out})"))],
            Op::Relu(a) => vec![(a, format!("select(0.0, 1.0, {} > 0.0)", v(a)))],
        }
    }

    /// [`Op::second_partials`] as WGSL expressions.
    pub fn wgsl_second_partials(
        self,
        v: impl Fn(usize) -> String,
        out: &str,
    ) -> Vec<(usize, usize, String)> {
        match self {
            Op::Leaf { .. } | Op::Add(..) | Op::Sub(..) | Op::Neg(_) | Op::Relu(_) => vec![],
            Op::Mul(a, b) => vec![(a, b, "1.0".into())],
            Op::Div(a, b) => vec![
                (a, b, format!("-1.0 / ({} * {})", v(b), v(b))),
                (
                    b,
                    b,
                    format!("2.0 * {} / ({} * {} * {})", v(a), v(b), v(b), v(b)),
                ),
            ],
            Op::PowI(a, n) => vec![(
                a,
                a,
                format!("{}.0 * powi({}, {})", n * (n - 1), v(a), n - 2),
            )],
            Op::PowF(a, p) => vec![(
                a,
                a,
                format!(
                    "{} * pow({}, {})",
                    wgsl_float(p * (p - 1.0)),
                    v(a),
                    wgsl_float(p - 2.0)
                ),
            )],
            Op::Exp(a) => vec![(a, a, out.to_string())],
            Op::Ln(a) => vec![(a, a, format!("-1.0 / ({} * {})", v(a), v(a)))],
            Op::Tanh(a) => vec![(a, a, format!("-2.0 * {out} * (1.0 - {out} * {out})"))],
            Op::Sigmoid(a) => vec![(a, a, format!("{out} * (1.0 - {out}) * (1.0 - 2.0 * {out})"))],
        }
    }

    /// The operands, in order.
    pub fn operands(&self) -> Vec<usize> {
        match *self {
            Op::Leaf { .. } => vec![],
            Op::Add(a, b) | Op::Sub(a, b) | Op::Mul(a, b) | Op::Div(a, b) => vec![a, b],
            Op::Neg(a)
            | Op::PowI(a, _)
            | Op::PowF(a, _)
            | Op::Exp(a)
            | Op::Ln(a)
            | Op::Tanh(a)
            | Op::Sigmoid(a)
            | Op::Relu(a) => {
                vec![a]
            }
        }
    }

    /// The symbol drawn for the operation.
    pub fn symbol(&self) -> String {
        match *self {
            Op::Leaf { .. } => String::new(),
            Op::Add(..) => "+".into(),
            Op::Sub(..) => "-".into(),
            Op::Mul(..) => "*".into(),
            Op::Div(..) => "/".into(),
            Op::Neg(_) => "neg".into(),
            Op::PowI(_, n) => format!("**{n}"),
            Op::PowF(_, p) => format!("**{p}"),
            Op::Exp(_) => "exp".into(),
            Op::Ln(_) => "ln".into(),
            Op::Tanh(_) => "tanh".into(),
            Op::Sigmoid(_) => "sigmoid".into(),
            Op::Relu(_) => "relu".into(),
        }
    }
}

/// One recorded value.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub value: f64,
    pub grad: f64,
    pub label: Option<String>,
}

/// The arena of recorded values.
#[derive(Debug, Default)]
pub struct Tape {
    nodes: RefCell<Vec<Node>>,
}

/// A value on a tape: its index, and the tape to record operations on.
#[derive(Clone, Copy)]
pub struct Var<'t> {
    tape: &'t Tape,
    id: usize,
}

impl std::fmt::Debug for Var<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({}: {})", self.id, self.value())
    }
}

impl Tape {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, op: Op, value: f64) -> Var<'_> {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node {
            op,
            value,
            grad: 0.0,
            label: None,
        });
        Var {
            tape: self,
            id: nodes.len() - 1,
        }
    }

    /// An input value.
    pub fn var(&self, value: f64) -> Var<'_> {
        self.push(Op::Leaf { constant: false }, value)
    }

    /// A constant (drawn, but not an input to differentiate by).
    pub fn constant(&self, value: f64) -> Var<'_> {
        self.push(Op::Leaf { constant: true }, value)
    }

    /// The nodes recorded so far.
    pub fn nodes(&self) -> Vec<Node> {
        self.nodes.borrow().clone()
    }

    /// Clears every gradient, sets ∂out/∂out = 1, and applies each node's local derivative
    /// from `out` back to the first node.
    pub fn backward(&self, out: Var<'_>) {
        let mut nodes = self.nodes.borrow_mut();
        for n in nodes.iter_mut() {
            n.grad = 0.0;
        }
        nodes[out.id].grad = 1.0;
        for i in (0..=out.id).rev() {
            let (op, value, g) = (nodes[i].op, nodes[i].value, nodes[i].grad);
            let local = op.partials(|j| nodes[j].value, value);
            for (j, d) in local {
                nodes[j].grad += g * d;
            }
        }
    }

    /// The graph that produced `out` in Graphviz DOT, as the teaching notes draw it: left to
    /// right, one record per value (label | data | grad), one small node per operation.
    pub fn to_dot(&self, out: Var<'_>) -> String {
        let nodes = self.nodes.borrow();
        let mut used = vec![false; out.id + 1];
        used[out.id] = true;
        for i in (0..=out.id).rev() {
            if used[i] {
                for j in nodes[i].op.operands() {
                    used[j] = true;
                }
            }
        }
        let mut dot = String::from("digraph {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
        for (i, n) in nodes.iter().enumerate().take(out.id + 1) {
            if !used[i] {
                continue;
            }
            let label = n
                .label
                .clone()
                .unwrap_or_default()
                .replace(['{', '}', '|', '<', '>', '"'], "_");
            let _ = writeln!(
                dot,
                "  v{i} [shape=record, label=\"{{ {label} | data {:.4} | grad {:.4} }}\"];",
                n.value, n.grad
            );
            if !matches!(n.op, Op::Leaf { .. }) {
                let _ = writeln!(dot, "  op{i} [shape=circle, label=\"{}\"];", n.op.symbol());
                let _ = writeln!(dot, "  op{i} -> v{i};");
                for j in n.op.operands() {
                    let _ = writeln!(dot, "  v{j} -> op{i};");
                }
            }
        }
        dot.push_str("}\n");
        dot
    }
}

impl<'t> Var<'t> {
    pub fn value(&self) -> f64 {
        self.tape.nodes.borrow()[self.id].value
    }

    /// ∂out/∂self after [`Tape::backward`].
    pub fn grad(&self) -> f64 {
        self.tape.nodes.borrow()[self.id].grad
    }

    /// The index of this value on its tape.
    pub fn id(&self) -> usize {
        self.id
    }

    /// A constant on the same tape.
    pub fn constant(&self, value: f64) -> Self {
        self.tape.constant(value)
    }

    /// Names the value in pictures; returns it for chaining.
    pub fn label(self, label: &str) -> Self {
        self.tape.nodes.borrow_mut()[self.id].label = Some(label.to_string());
        self
    }

    /// Records `op`, its value from the op table.
    fn record(self, op: Op) -> Self {
        let value = {
            let nodes = self.tape.nodes.borrow();
            op.value(|j| nodes[j].value)
                .expect("an operation, not a leaf")
        };
        self.tape.push(op, value)
    }

    pub fn powi(self, n: i32) -> Self {
        self.record(Op::PowI(self.id, n))
    }

    pub fn powf(self, p: f64) -> Self {
        self.record(Op::PowF(self.id, p))
    }

    pub fn exp(self) -> Self {
        self.record(Op::Exp(self.id))
    }

    pub fn ln(self) -> Self {
        self.record(Op::Ln(self.id))
    }

    pub fn tanh(self) -> Self {
        self.record(Op::Tanh(self.id))
    }

    pub fn sigmoid(self) -> Self {
        self.record(Op::Sigmoid(self.id))
    }

    pub fn relu(self) -> Self {
        self.record(Op::Relu(self.id))
    }
}

macro_rules! binary {
    ($trait:ident, $method:ident, $op:ident) => {
        impl<'t> ops::$trait for Var<'t> {
            type Output = Var<'t>;
            fn $method(self, rhs: Var<'t>) -> Var<'t> {
                self.record(Op::$op(self.id, rhs.id))
            }
        }
        impl<'t> ops::$trait<f64> for Var<'t> {
            type Output = Var<'t>;
            fn $method(self, rhs: f64) -> Var<'t> {
                let rhs = self.tape.constant(rhs);
                ops::$trait::$method(self, rhs)
            }
        }
        impl<'t> ops::$trait<Var<'t>> for f64 {
            type Output = Var<'t>;
            fn $method(self, rhs: Var<'t>) -> Var<'t> {
                let lhs = rhs.tape.constant(self);
                ops::$trait::$method(lhs, rhs)
            }
        }
    };
}

binary!(Add, add, Add);
binary!(Sub, sub, Sub);
binary!(Mul, mul, Mul);
binary!(Div, div, Div);

impl<'t> ops::Neg for Var<'t> {
    type Output = Var<'t>;
    fn neg(self) -> Var<'t> {
        self.record(Op::Neg(self.id))
    }
}

/// A WGSL float literal.
pub(crate) fn wgsl_float(v: f64) -> String {
    let s = format!("{:?}", v as f32);
    if s.contains(['.', 'e']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// Central differences (f(x + h eᵢ) − f(x − h eᵢ)) / 2h for each coordinate of x: a check
/// on analytic gradients, with error O(h²).
pub fn central_difference(mut f: impl FnMut(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let mut up = x.to_vec();
            let mut down = x.to_vec();
            up[i] += h;
            down[i] -= h;
            (f(&up) - f(&down)) / (2.0 * h)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_accumulate_over_reuse() {
        let tape = Tape::new();
        let a = tape.var(3.0);
        let b = a + a;
        tape.backward(b);
        assert_eq!((b.value(), a.grad()), (6.0, 2.0));
        let c = a * a * a;
        tape.backward(c);
        assert_eq!(a.grad(), 27.0);
    }

    /// Each op's second partials against central differences of its first partials.
    #[test]
    fn every_second_partial_matches_central_differences_of_the_first() {
        let ops = [
            Op::Add(0, 1),
            Op::Sub(0, 1),
            Op::Mul(0, 1),
            Op::Div(0, 1),
            Op::Neg(0),
            Op::PowI(0, 3),
            Op::PowI(0, -2),
            Op::PowF(0, 1.5),
            Op::Exp(0),
            Op::Ln(0),
            Op::Tanh(0),
            Op::Sigmoid(0),
            Op::Relu(0),
        ];
        let x = [0.7, 1.3];
        let h = 1e-6;
        for op in ops {
            let partial = |x: &[f64], of: usize| -> f64 {
                let out = op.value(|j| x[j]).unwrap();
                let partials = op.partials(|j| x[j], out);
                partials
                    .iter()
                    .filter(|(j, _)| *j == of)
                    .map(|(_, d)| d)
                    .sum()
            };
            let out = op.value(|j| x[j]).unwrap();
            let mut exact = [[0.0; 2]; 2];
            for (i, j, d) in op.second_partials(|j| x[j], out) {
                exact[i][j] += d;
                if i != j {
                    exact[j][i] += d;
                }
            }
            for (i, row) in exact.iter().enumerate() {
                for (j, &e) in row.iter().enumerate() {
                    let (mut up, mut down) = (x, x);
                    up[j] += h;
                    down[j] -= h;
                    let numeric = (partial(&up, i) - partial(&down, i)) / (2.0 * h);
                    assert!(
                        (e - numeric).abs() < 1e-6,
                        "{op:?} ∂²/∂{i}∂{j}: {e} vs {numeric}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_operation_matches_central_differences() {
        type Function = Box<dyn Fn(&Tape, Var<'_>, Var<'_>) -> f64>;
        let fs: Vec<(&str, Function)> = vec![
            (
                "arith",
                Box::new(|t, a, b| {
                    let o = (a * b - a / b + 2.0 * a - (-b)).powi(3) / 10.0;
                    t.backward(o);
                    o.value()
                }),
            ),
            (
                "funcs",
                Box::new(|t, a, b| {
                    let o = (a.exp() + b.powf(1.5)).ln() * a.tanh()
                        + (a * b).sigmoid()
                        + (a - b).relu();
                    t.backward(o);
                    o.value()
                }),
            ),
        ];
        for (name, f) in &fs {
            let x = [0.7, 1.3];
            let tape = Tape::new();
            let (a, b) = (tape.var(x[0]), tape.var(x[1]));
            f(&tape, a, b);
            let analytic = [a.grad(), b.grad()];
            let numeric = central_difference(
                |p| {
                    let t = Tape::new();
                    let (a, b) = (t.var(p[0]), t.var(p[1]));
                    f(&t, a, b)
                },
                &x,
                1e-6,
            );
            for (g, n) in analytic.iter().zip(numeric) {
                assert!((g - n).abs() < 1e-7, "{name}: {g} vs {n}");
            }
        }
    }
}
