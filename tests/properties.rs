//! Property tests (proptest): random shapes and values. Every fast backend's gradient
//! matches the f64 reference; extreme logits never give NaN; wrong labels, shapes and
//! parameter files are errors, never panics. The case counts are printed in the note of
//! each property (`PROPTEST_CASES` overrides them).

mod common;

use proptest::prelude::*;

use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data};
use downhill::{Dataset, Model, Objective, Params, Trainer};

/// A model and its k.
fn objectives() -> impl Strategy<Value = Objective> {
    prop_oneof![
        Just(Objective::linear()),
        Just(Objective::logistic()),
        Just(Objective::new(Model::Logistic, Some(downhill::Loss::Mse), 1).unwrap()),
        (2usize..7).prop_map(|k| Objective::softmax(k).unwrap()),
    ]
}

/// Rows of features in [−4, 4) with valid labels for `objective`, and parameters in
/// [−scale, scale).
fn problem(objective: Objective, scale: f64) -> impl Strategy<Value = (Dataset, Params)> {
    (1usize..300, 1usize..20).prop_flat_map(move |(rows, d)| {
        let k = objective.outputs();
        (
            proptest::collection::vec(-4.0f32..4.0, rows * d),
            proptest::collection::vec(0u32..1000, rows),
            proptest::collection::vec(-scale..scale, (d + 1) * k),
        )
            .prop_map(move |(x, labels, theta)| {
                let y = labels
                    .iter()
                    .map(|&l| match objective.model() {
                        Model::Linear => l as f32 / 100.0 - 5.0,
                        Model::Logistic => (l % 2) as f32,
                        Model::Softmax => (l as usize % k) as f32,
                    })
                    .collect();
                let data = Dataset::new(x, y, d).unwrap();
                let params =
                    Params::new(d, k, theta[..d * k].to_vec(), theta[d * k..].to_vec()).unwrap();
                (data, params)
            })
    })
}

fn gradient(backend: &dyn Backend, data: &Dataset, o: Objective, p: &Params) -> downhill::Gradient {
    downhill::gradient(backend, data, o, Some(p)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The CPU and GPU gradients (every kernel tuning) equal the f64 reference's within
    /// f32 rounding, whatever the shape.
    #[test]
    fn fast_gradients_match_the_reference(
        (objective, (data, params)) in objectives().prop_flat_map(|o| (Just(o), problem(o, 1.0)))
    ) {
        let expected = gradient(&Reference, &data, objective, &params);
        for (name, backend) in common::fast_backends() {
            let got = gradient(backend.as_ref(), &data, objective, &params);
            common::assert_gradients_close(&format!("{name}, {objective}"), &got, &expected, 2e-4);
        }
    }
}

proptest! {
    // Every case opens a session per backend and compiles kernels for its shape.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// |z| up to 10⁴: losses and gradients stay finite (no log 0, no exp overflow) on every
    /// backend, and a step keeps the parameters finite.
    #[test]
    fn extreme_logits_never_give_nan(
        (objective, (data, params)) in prop_oneof![
            Just(Objective::logistic()),
            (2usize..5).prop_map(|k| Objective::softmax(k).unwrap()),
        ].prop_flat_map(|o| (Just(o), problem(o, 700.0)))
    ) {
        for (name, backend) in common::all_backends() {
            let g = gradient(backend.as_ref(), &data, objective, &params);
            prop_assert!(g.loss.is_finite(), "{name}: loss {}", g.loss);
            prop_assert!(
                g.weights.iter().chain(&g.bias).all(|v| v.is_finite()),
                "{name}: {g:?}"
            );
            let mut session = backend.open(Data::Host(&data), objective).unwrap();
            let fit = Trainer::new().init(params.clone()).epochs(1).lr(1e-6).fit(session.as_mut());
            let fit = fit.unwrap();
            prop_assert!(fit.params.is_finite(), "{name}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Labels a model cannot take are refused with the row and what was expected.
    #[test]
    fn wrong_labels_are_errors(
        labels in proptest::collection::vec(-3.0f32..5.0, 1..50),
        k in 2usize..6,
    ) {
        let rows = labels.len();
        let data = Dataset::new(vec![0.5; rows], labels.clone(), 1).unwrap();
        for objective in [Objective::logistic(), Objective::softmax(k).unwrap()] {
            let bad = labels.iter().position(|&y| objective.check_label(y).is_err());
            match (data.check_labels(&objective), bad) {
                (Ok(()), None) => {}
                (Err(e), Some(i)) => {
                    let text = e.to_string();
                    prop_assert!(text.contains(&format!("y[{i}]")), "{text}");
                    prop_assert!(downhill::fit(&Reference, &data, objective, &Trainer::new()).is_err());
                }
                (result, bad) => prop_assert!(false, "{objective}: {result:?} with bad row {bad:?}"),
            }
        }
    }

    /// Shapes that do not agree are errors from the constructors, never panics.
    #[test]
    fn wrong_shapes_are_errors(
        x_len in 0usize..40,
        y_len in 0usize..10,
        features in 0usize..6,
        weights in 0usize..12,
        bias in 0usize..4,
    ) {
        let made = Dataset::new(vec![1.0; x_len], vec![0.0; y_len], features);
        prop_assert_eq!(made.is_ok(), features > 0 && y_len > 0 && x_len == y_len * features);
        for k in 1..4 {
            let params = Params::new(features, k, vec![0.0; weights], vec![0.0; bias]);
            prop_assert_eq!(params.is_ok(), features > 0 && weights == features * k && bias == k);
        }
    }

    /// Any text given as a parameter file is read or refused; a file that is read has the
    /// shape asked for.
    #[test]
    fn parameter_files_are_read_or_refused(
        text in "\\{[ \"a-z:,\\[\\]0-9.eE+-]{0,60}\\}|[ -~]{0,40}",
        d in 1usize..4,
    ) {
        let path = common::cli::scratch("properties").join(format!("p{}.json", d));
        std::fs::write(&path, &text).unwrap();
        for model in Model::ALL {
            if let Ok(p) = downhill::params_file::read(&path, model, d, None) {
                prop_assert_eq!(p.features(), d);
            }
        }
    }
}
