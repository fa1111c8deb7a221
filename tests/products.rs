//! The CPU's tile products (softmax from 8 classes on: Z = X_t·W + b and G += Δᵀ·X_t as
//! matrix products) against the f64 reference: every CPU level, class counts either side
//! of the switch, rows not a multiple of the tile, wide rows, sample weights and a
//! held-out split, rows in a shuffled order (copied together before the products), a
//! custom loss; and the same bits on a rerun.

mod common;

use common::{assert_close, assert_gradients_close, problem, random_params};
use downhill::backend::cpu::{Cpu, Simd};
use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data};
use downhill::custom::{CustomLoss, LossKind};
use downhill::{Model, Objective, Trainer};

fn cpus() -> Vec<(String, Cpu)> {
    Simd::ALL
        .into_iter()
        .filter_map(|simd| {
            Cpu::with_simd(simd)
                .ok()
                .map(|c| (simd.name().to_string(), c))
        })
        .collect()
}

#[test]
fn tile_products_equal_the_reference_on_every_cpu_level() {
    // (rows, features, classes): one row; rows past a tile of 256; chunks of several
    // tiles (a chunk is an eighth of the rows), past the move into f64 every four; wide
    // rows; the accumulating path's last class count and the products' first.
    let shapes = [
        (1, 5, 16),
        (1001, 5, 33),
        (5000, 8, 20),
        (12_000, 6, 17),
        (300, 1, 1000),
        (257, 4097, 33),
        (700, 64, 7),
        (700, 64, 8),
    ];
    for (rows, d, k) in shapes {
        let objective = Objective::softmax(k).unwrap();
        let plain = problem(rows, d, objective, (rows + d + k) as u64);
        let weights: Vec<f32> = (0..rows).map(|i| 0.25 + (i % 7) as f32 * 0.3).collect();
        let weighted = plain.clone().with_weights(weights).unwrap();
        let params = random_params(d, k, 1.0 / (d as f64).sqrt(), 3);
        for (what_data, data) in [("unweighted", &plain), ("weighted", &weighted)] {
            let mut reference = Reference.open(Data::Host(data), objective).unwrap();
            reference.set_params(&params).unwrap();
            let expected = reference.gradient().unwrap();
            for (level, cpu) in cpus() {
                let what = format!("{rows} × {d}, {k} classes, {what_data}, {level}");
                let mut session = cpu.open(Data::Host(data), objective).unwrap();
                session.set_params(&params).unwrap();
                let got = session.gradient().unwrap();
                assert_gradients_close(&what, &got, &expected, 1e-4);
                let again = session.gradient().unwrap();
                assert_eq!(got.weights, again.weights, "{what}: rerun");
                assert_eq!(got.loss.to_bits(), again.loss.to_bits(), "{what}: rerun");
            }
        }
    }
}

/// Mini-batches visit rows in a shuffled order, which the products copy together first;
/// a held-out split and a custom loss go through the same tiles.
#[test]
fn shuffled_batches_held_out_rows_and_custom_losses_take_the_products_too() {
    let focal = CustomLoss::parse("-t * (1 - p)^2 * ln(p)", LossKind::Class)
        .unwrap()
        .register();
    let k = 40;
    for objective in [
        Objective::softmax(k).unwrap(),
        Objective::new(Model::Softmax, Some(focal), k).unwrap(),
    ] {
        let data = problem(1500, 24, Objective::softmax(k).unwrap(), 11);
        let trainer = Trainer::new()
            .lr(0.5)
            .epochs(3)
            .batch_size(200)
            .seed(5)
            .validation_fraction(0.2);
        let expected = downhill::fit(&Reference, &data, objective, &trainer).unwrap();
        for (level, cpu) in cpus() {
            let what = format!("{objective}, {level}");
            let fit = downhill::fit(&cpu, &data, objective, &trainer).unwrap();
            assert_close(&what, fit.params.weights(), expected.params.weights(), 1e-4);
            assert_close(&what, fit.params.bias(), expected.params.bias(), 1e-4);
            let again = downhill::fit(&cpu, &data, objective, &trainer).unwrap();
            assert_eq!(fit.params, again.params, "{what}: rerun");
        }
    }
}
