//! The teaching notes' worked numbers, from the example programs themselves (each is
//! included here and its numbers asserted).

#[allow(dead_code)]
#[path = "../examples/notes_derivative.rs"]
mod derivative;
#[allow(dead_code)]
#[path = "../examples/notes_descent.rs"]
mod descent;
#[allow(dead_code)]
#[path = "../examples/notes_expression.rs"]
mod expression;
#[allow(dead_code)]
#[path = "../examples/notes_neuron.rs"]
mod neuron;
#[allow(dead_code)]
#[path = "../examples/notes_two_variables.rs"]
mod two_variables;

#[test]
fn derivative_of_3x2_minus_4x_plus_5_at_3() {
    let (value, difference, slope) = derivative::numbers();
    assert_eq!(value, 20.0);
    assert!((difference - 14.0003).abs() < 1e-6, "{difference}");
    assert_eq!(slope, 14.0);
    // The notes' samples: f(−5) = 100 first, f(4.75) = 53.6875 last, 40 of them.
    let samples = derivative::samples();
    assert_eq!(samples.len(), 40);
    assert_eq!((samples[0], samples[39]), ((-5.0, 100.0), (4.75, 53.6875)));
    let path = std::env::temp_dir().join(format!("downhill-notes-{}.png", std::process::id()));
    derivative::plot(&path).unwrap();
    let image = image::open(&path).expect("the plot decodes");
    assert_eq!(
        (image.width(), image.height()),
        downhill::plot::LOSS_PLOT_SIZE
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn d_is_ab_plus_c() {
    assert_eq!(expression::expression(), (4.0, [-3.0, 2.0, 1.0]));
}

#[test]
fn the_graph_of_l() {
    let (l, grads, dot) = expression::graph();
    assert_eq!(l, -8.0);
    // a, b, c, e, d, f, L
    assert_eq!(grads, [6.0, -4.0, -2.0, -2.0, -2.0, 4.0, 1.0]);
    assert!(dot.contains("{ f | data -2.0000 | grad 4.0000 }"), "{dot}");
}

#[test]
fn the_tanh_neuron() {
    let (o, g) = neuron::numbers();
    assert!((o - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12, "{o}");
    for (got, want) in g.iter().zip([-1.5, 1.0, 0.5, 0.0, 0.5]) {
        assert!((got - want).abs() < 1e-6, "{g:?}");
    }
}

#[test]
fn the_bowl_and_the_linear_unit() {
    assert_eq!(two_variables::bowl(), (75.0, [-15.0, 15.0]));
    assert_eq!(two_variables::linear_unit(1.5, -2.0), [1.5, -2.0, 1.0]);
    assert_eq!(two_variables::linear_unit(-4.0, 0.25), [-4.0, 0.25, 1.0]);
}

#[test]
fn descent_on_j_of_b() {
    let path = descent::path(100);
    assert!((path[0] - 9.0).abs() < 1e-12, "{}", path[0]);
    assert!((path[99] - 7.5).abs() < 1e-12, "{}", path[99]);
}

/// The graph's DOT: the notes' shape, and `dot -Tsvg` renders it when graphviz is installed.
#[test]
fn the_graph_draws_in_the_notes_style() {
    let (_, _, dot) = expression::graph();
    assert!(dot.starts_with("digraph {\n  rankdir=LR;"));
    assert_eq!(dot.matches("shape=record").count(), 7, "{dot}");
    assert_eq!(dot.matches("shape=circle").count(), 3, "{dot}");
    assert!(dot.contains("{ a | data 2.0000 | grad 6.0000 }"), "{dot}");
    assert!(dot.contains("{ L | data -8.0000 | grad 1.0000 }"), "{dot}");
    assert_eq!(
        dot.matches(" -> ").count(),
        9,
        "each op: two inputs and one output"
    );
    if std::process::Command::new("dot").arg("-V").output().is_ok() {
        use std::io::Write;
        let mut child = std::process::Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "dot rejected the graph");
        assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
    } else {
        println!("graphviz not installed: checked the DOT's structure only");
    }
}
