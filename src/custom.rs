//! Custom losses: a per-row loss written with the tape's operations, differentiated by
//! walking the recorded graph backwards, and compiled twice: to a program the CPU backends
//! run per row, and to WGSL that the GPU's fused gradient kernel calls where a built-in
//! loss would be (so a custom loss runs at the kernels' speed).
//!
//! Two kinds:
//! - [`LossKind::Output`], for one output (linear, logistic): ℓ(z, y) of the linear output z
//!   and the label y (apply `sigmoid` yourself if the loss wants ŷ); δ = ∂ℓ/∂z.
//! - [`LossKind::Class`], for softmax: a term ℓ_c(p_c, t_c) of each class's probability
//!   p = softmax(z) and its one-hot target t_c = [c = y]; ℓ = Σ_c ℓ_c, and the kernels apply
//!   the softmax Jacobian: δ_c = p_c (g_c − Σ_j g_j p_j) with g_j = ∂ℓ_j/∂p_j.
//!
//! A loss is registered once per process ([`CustomLoss::register`], in `model.rs` beside
//! the [`Loss`](crate::model::Loss) it returns) and named by
//! [`Loss::Custom`](crate::model::Loss::Custom), which keeps `Loss` a plain value.

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use crate::autodiff::{Node, Op, Tape, Var, wgsl_float};
use crate::error::{Error, Result};

/// What a custom loss is a function of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// ℓ(z, y).
    Output,
    /// ℓ_c(p_c, t_c), summed over classes.
    Class,
}

impl LossKind {
    /// The names of the two inputs, as `--loss-expr` spells them.
    pub fn variables(self) -> [&'static str; 2] {
        match self {
            LossKind::Output => ["z", "y"],
            LossKind::Class => ["p", "t"],
        }
    }
}

/// A compiled custom loss.
#[derive(Clone, Debug)]
pub struct CustomLoss {
    name: String,
    kind: LossKind,
    /// The recorded graph: nodes 0 and 1 are the inputs, the last node is ℓ.
    nodes: Vec<Node>,
}

static REGISTRY: Mutex<Vec<Arc<CustomLoss>>> = Mutex::new(Vec::new());

impl CustomLoss {
    /// Records `f(a, b)` on a fresh tape: `a` is z (or p_c), `b` is y (or t_c).
    pub fn new(
        name: &str,
        kind: LossKind,
        f: impl for<'t> Fn(Var<'t>, Var<'t>) -> Var<'t>,
    ) -> Result<Self> {
        let tape = Tape::new();
        let [va, vb] = kind.variables();
        let a = tape.var(0.5).label(va);
        let b = tape.var(0.5).label(vb);
        let out = f(a, b);
        let nodes = tape.nodes();
        let loss = CustomLoss {
            name: name.to_string(),
            kind,
            nodes: nodes[..=out.id()].to_vec(),
        };
        loss.check()?;
        Ok(loss)
    }

    /// Parses `--loss-expr`: the variables of `kind`, numbers, + − * / ^ (a number as
    /// exponent), and exp, ln (log), sqrt, tanh, sigmoid, relu, abs.
    pub fn parse(expr: &str, kind: LossKind) -> Result<Self> {
        let ast = Parser::new(expr, kind).parse()?;
        Self::new(expr, kind, |a, b| ast.build(a, b))
    }

    fn check(&self) -> Result<()> {
        let fail = |reason: String| Error::option("custom loss", &self.name, reason);
        let out = self.nodes.len() - 1;
        if out < 2 {
            return Err(fail("is just an input, not a loss".into()));
        }
        let mut used = vec![false; self.nodes.len()];
        used[out] = true;
        for i in (0..=out).rev() {
            if used[i] {
                for j in self.nodes[i].op.operands() {
                    used[j] = true;
                }
            }
        }
        if !used[0] {
            let [a, _] = self.kind.variables();
            return Err(fail(format!(
                "does not depend on {a}, so its gradient is 0"
            )));
        }
        for n in &self.nodes {
            if let Op::Leaf { constant: true } = n.op
                && !(n.value.is_finite() && (n.value as f32).is_finite())
            {
                return Err(fail(format!(
                    "the constant {} is not a finite f32",
                    n.value
                )));
            }
            if let Op::PowI(_, e) = n.op
                && e.unsigned_abs() > 64
            {
                return Err(fail(format!("integer powers go up to 64, not {e}")));
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> LossKind {
        self.kind
    }

    /// Interns the loss for this process and returns its index in the registry, the same
    /// index for the same loss registered again. [`CustomLoss::register`] wraps it in a
    /// [`Loss`](crate::model::Loss).
    pub(crate) fn intern(self) -> u32 {
        let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = registry
            .iter()
            .position(|l| l.name == self.name && l.kind == self.kind)
        {
            return i as u32;
        }
        registry.push(Arc::new(self));
        registry.len() as u32 - 1
    }

    /// The loss a [`Loss::Custom`](crate::model::Loss::Custom) names.
    pub fn lookup(id: u32) -> Arc<CustomLoss> {
        let registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&registry[id as usize])
    }

    /// ℓ(a, b) and ∂ℓ/∂a, in f64: the graph run forward, then backward, by the op table.
    pub fn eval(&self, a: f64, b: f64) -> (f64, f64) {
        let n = self.nodes.len();
        let mut v = vec![0.0; n];
        let mut g = vec![0.0; n];
        for (i, node) in self.nodes.iter().enumerate() {
            v[i] = match node.op.value(|j| v[j]) {
                Some(value) => value,
                None if i == 0 => a,
                None if i == 1 => b,
                None => node.value,
            };
        }
        g[n - 1] = 1.0;
        for i in (0..n).rev() {
            for (j, d) in self.nodes[i].op.partials(|j| v[j], v[i]) {
                g[j] += g[i] * d;
            }
        }
        (v[n - 1], g[0])
    }

    /// (ℓ, ∂ℓ/∂a, ∂²ℓ/∂a²) at (a, b), in f64: forward mode twice over, each node's value,
    /// its derivative t and second derivative s along a, from the op table:
    /// t = Σⱼ ∂ⱼ tⱼ and s = Σⱼ ∂ⱼ sⱼ + Σⱼₖ ∂²ⱼₖ tⱼ tₖ.
    pub fn eval_curvature(&self, a: f64, b: f64) -> (f64, f64, f64) {
        let n = self.nodes.len();
        let (mut v, mut t, mut s) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for (i, node) in self.nodes.iter().enumerate() {
            v[i] = match node.op.value(|j| v[j]) {
                Some(value) => value,
                None if i == 0 => {
                    t[0] = 1.0;
                    a
                }
                None if i == 1 => b,
                None => node.value,
            };
            for (j, d) in node.op.partials(|j| v[j], v[i]) {
                t[i] += d * t[j];
                s[i] += d * s[j];
            }
            for (j, k, d) in node.op.second_partials(|j| v[j], v[i]) {
                let twice = if j == k { 1.0 } else { 2.0 };
                s[i] += twice * d * t[j] * t[k];
            }
        }
        (v[n - 1], t[n - 1], s[n - 1])
    }

    /// WGSL for `fn custom_loss(a: f32, b: f32) -> vec2<f32>`: (ℓ, ∂ℓ/∂a), straight-line
    /// code, forward then backward.
    pub fn wgsl(&self) -> String {
        let n = self.nodes.len();
        let mut s = format!(
            "// Custom loss {:?}, generated by src/custom.rs.\n",
            self.name
        );
        s.push_str("fn custom_loss(in0: f32, in1: f32) -> vec2<f32> {\n");
        let name = |j: usize| format!("v{j}");
        for i in 0..n {
            let _ = writeln!(s, "    let v{i}: f32 = {};", self.wgsl_value(i));
        }
        for i in 0..n {
            let _ = writeln!(
                s,
                "    var g{i}: f32 = {};",
                if i == n - 1 { "1.0" } else { "0.0" }
            );
        }
        for i in (0..n).rev() {
            for (j, d) in self.nodes[i].op.wgsl_partials(name, &format!("v{i}")) {
                let _ = writeln!(s, "    g{j} += g{i} * {d};");
            }
        }
        let _ = writeln!(s, "    return vec2<f32>(v{}, g0);\n}}", n - 1);
        s + &self.wgsl_curvature()
    }

    /// WGSL for `fn custom_curvature(a: f32, b: f32) -> f32`, ∂²ℓ/∂a²: straight-line code,
    /// [`CustomLoss::eval_curvature`]'s forward mode twice over.
    fn wgsl_curvature(&self) -> String {
        let n = self.nodes.len();
        let mut s = String::from("fn custom_curvature(in0: f32, in1: f32) -> f32 {\n");
        let name = |j: usize| format!("v{j}");
        for (i, node) in self.nodes.iter().enumerate() {
            let seed = if i == 0 { "1.0" } else { "0.0" };
            let _ = writeln!(s, "    let v{i}: f32 = {};", self.wgsl_value(i));
            let _ = writeln!(s, "    var t{i}: f32 = {seed};\n    var s{i}: f32 = 0.0;");
            for (j, d) in node.op.wgsl_partials(name, &format!("v{i}")) {
                let _ = writeln!(s, "    t{i} += {d} * t{j};\n    s{i} += {d} * s{j};");
            }
            for (j, k, d) in node.op.wgsl_second_partials(name, &format!("v{i}")) {
                let twice = if j == k { "" } else { "2.0 * " };
                let _ = writeln!(s, "    s{i} += {twice}{d} * t{j} * t{k};");
            }
        }
        let _ = writeln!(s, "    return s{};\n}}", n - 1);
        s
    }

    /// Node i's value as WGSL over the earlier nodes `v0`, `v1`, …: its op's, the inputs
    /// `in0` and `in1`, or a constant.
    fn wgsl_value(&self, i: usize) -> String {
        let node = &self.nodes[i];
        match node.op.wgsl_value(|j| format!("v{j}")) {
            Some(expr) => expr,
            None if i < 2 => format!("in{i}"),
            None => wgsl_float(node.value),
        }
    }
}

/// The stubs every shader carries when no custom loss is in use.
pub const WGSL_STUB: &str = "fn custom_loss(in0: f32, in1: f32) -> vec2<f32> {\n    return vec2<f32>(0.0, 0.0);\n}\n\
     fn custom_curvature(in0: f32, in1: f32) -> f32 {\n    return 0.0;\n}\n";

/// A parsed `--loss-expr`.
#[derive(Clone, Debug)]
enum Ast {
    Number(f64),
    Variable(usize),
    Unary(&'static str, Box<Ast>),
    Binary(char, Box<Ast>, Box<Ast>),
    Power(Box<Ast>, f64),
}

impl Ast {
    fn build<'t>(&self, a: Var<'t>, b: Var<'t>) -> Var<'t> {
        match self {
            Ast::Number(v) => a.constant(*v),
            Ast::Variable(0) => a,
            Ast::Variable(_) => b,
            Ast::Unary(f, x) => {
                let x = x.build(a, b);
                match *f {
                    "neg" => -x,
                    "exp" => x.exp(),
                    "ln" | "log" => x.ln(),
                    "sqrt" => x.powf(0.5),
                    "tanh" => x.tanh(),
                    "sigmoid" => x.sigmoid(),
                    "relu" => x.relu(),
                    "abs" => x.relu() + (-x).relu(),
                    other => unreachable!("function {other} passed the parser"),
                }
            }
            Ast::Binary(op, x, y) => {
                let (x, y) = (x.build(a, b), y.build(a, b));
                match op {
                    '+' => x + y,
                    '-' => x - y,
                    '*' => x * y,
                    _ => x / y,
                }
            }
            Ast::Power(x, p) => {
                let x = x.build(a, b);
                if p.fract() == 0.0 && p.abs() <= 64.0 {
                    x.powi(*p as i32)
                } else {
                    x.powf(*p)
                }
            }
        }
    }
}

const FUNCTIONS: [&str; 8] = ["exp", "ln", "log", "sqrt", "tanh", "sigmoid", "relu", "abs"];

struct Parser<'s> {
    text: &'s str,
    at: usize,
    kind: LossKind,
}

impl<'s> Parser<'s> {
    fn new(text: &'s str, kind: LossKind) -> Self {
        Parser { text, at: 0, kind }
    }

    fn fail(&self, at: usize, what: String) -> Error {
        Error::option(
            "--loss-expr",
            self.text,
            format!("column {}: {what}", at + 1),
        )
    }

    fn skip_space(&mut self) {
        while self.text[self.at..].starts_with(' ') {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.text[self.at..].chars().next()
    }

    fn parse(mut self) -> Result<Ast> {
        let ast = self.sum()?;
        match self.peek() {
            None => Ok(ast),
            Some(c) => Err(self.fail(self.at, format!("unexpected {c:?}"))),
        }
    }

    fn sum(&mut self) -> Result<Ast> {
        let mut left = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.at += 1;
            left = Ast::Binary(op, Box::new(left), Box::new(self.product()?));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Ast> {
        let mut left = self.unary()?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.at += 1;
            left = Ast::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Ast> {
        if self.peek() == Some('-') {
            self.at += 1;
            return Ok(Ast::Unary("neg", Box::new(self.unary()?)));
        }
        let base = self.atom()?;
        if self.peek() == Some('^') {
            self.at += 1;
            self.skip_space();
            let start = self.at;
            let exponent = match self.unary()? {
                Ast::Number(v) => v,
                Ast::Unary("neg", inner) => match *inner {
                    Ast::Number(v) => -v,
                    _ => return Err(self.fail(start, "the exponent must be a number".into())),
                },
                _ => return Err(self.fail(start, "the exponent must be a number".into())),
            };
            return Ok(Ast::Power(Box::new(base), exponent));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Ast> {
        let start = {
            self.skip_space();
            self.at
        };
        let rest = &self.text[start..];
        let Some(c) = rest.chars().next() else {
            return Err(self.fail(start, "the expression ends too early".into()));
        };
        if c == '(' {
            self.at += 1;
            let inner = self.sum()?;
            if self.peek() != Some(')') {
                return Err(self.fail(self.at, "expected ')'".into()));
            }
            self.at += 1;
            return Ok(inner);
        }
        if c.is_ascii_digit() || c == '.' {
            let len = rest
                .find(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == 'e' || ch == 'E'))
                .unwrap_or(rest.len());
            let token = &rest[..len];
            self.at += len;
            return token
                .parse::<f64>()
                .map(Ast::Number)
                .map_err(|_| self.fail(start, format!("{token:?} is not a number")));
        }
        if c.is_ascii_alphabetic() {
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..len];
            self.at += len;
            let variables = self.kind.variables();
            if let Some(i) = variables.iter().position(|v| *v == name) {
                return Ok(Ast::Variable(i));
            }
            if let Some(f) = FUNCTIONS.iter().find(|f| **f == name) {
                if self.peek() != Some('(') {
                    return Err(self.fail(self.at, format!("expected '(' after {name}")));
                }
                self.at += 1;
                let arg = self.sum()?;
                if self.peek() != Some(')') {
                    return Err(self.fail(self.at, "expected ')'".into()));
                }
                self.at += 1;
                return Ok(Ast::Unary(f, Box::new(arg)));
            }
            return Err(self.fail(
                start,
                format!(
                    "unknown name {name:?}; the variables are {} and {}, the functions {}",
                    variables[0],
                    variables[1],
                    FUNCTIONS.join(", ")
                ),
            ));
        }
        Err(self.fail(start, format!("unexpected {c:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_expressions_evaluate_and_differentiate() {
        let mse = CustomLoss::parse("(z - y)^2", LossKind::Output).unwrap();
        assert_eq!(mse.eval(3.0, 1.0), (4.0, 4.0));
        let e = CustomLoss::parse("-t * ln(p) + 0.5 * abs(p - t)^3", LossKind::Class).unwrap();
        let (l, g) = e.eval(0.25, 1.0);
        assert!((l - (4f64.ln() + 0.5 * 0.75f64.powi(3))).abs() < 1e-12);
        assert!((g - (-4.0 - 1.5 * 0.5625)).abs() < 1e-12);
    }

    #[test]
    fn bad_expressions_name_the_column() {
        let cases = [
            (
                "(z - x)^2",
                "column 6: unknown name \"x\"; the variables are z and y",
            ),
            ("(z - y", "column 7: expected ')'"),
            ("z ^ y", "column 5: the exponent must be a number"),
            ("y * 2", "does not depend on z"),
            ("exp z", "column 5: expected '(' after exp"),
            ("z + 1e400", "not a finite f32"),
            ("z $ 2", "column 3: unexpected '$'"),
        ];
        for (expr, message) in cases {
            let e = CustomLoss::parse(expr, LossKind::Output)
                .unwrap_err()
                .to_string();
            assert!(e.contains(message), "{expr}: {e}");
        }
    }
}
