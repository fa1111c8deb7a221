//! The CPU's tile products (softmax from 8 classes on: Z = X_t·W + b and G += Δᵀ·X_t as
//! matrix products) against the f64 reference: every CPU level, class counts either side
//! of the switch, rows not a multiple of the tile, wide rows, sample weights and a
//! held-out split, rows in a shuffled order (copied together before the products), a
//! custom loss; and the same bits on a rerun.

mod common;

use common::assert_gradients_close;
use downhill::backend::cpu::{Cpu, Simd};
use downhill::backend::{Backend, Data};

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
        // On AMX tiles (from 128 classes, where the CPU has them): edges of every tile.
        (1001, 37, 130),
        (300, 2049, 129),
    ];
    common::for_each_softmax_case(&shapes, |what, data, objective, params, expected| {
        for (level, cpu) in cpus() {
            let what = format!("{what}, {level}");
            let mut session = cpu.open(Data::Host(data), objective).unwrap();
            session.set_params(params).unwrap();
            let got = session.gradient().unwrap();
            assert_gradients_close(&what, &got, expected, 1e-4);
            common::assert_same_bits(&what, &got, &session.gradient().unwrap());
        }
    });
}

/// Mini-batches visit rows in a shuffled order, which the products copy together first;
/// a held-out split and a custom loss go through the same tiles.
#[test]
fn shuffled_batches_held_out_rows_and_custom_losses_take_the_products_too() {
    let cpus = cpus();
    let backends: Vec<(String, &dyn Backend)> = cpus
        .iter()
        .map(|(level, cpu)| (level.clone(), cpu as &dyn Backend))
        .collect();
    common::check_shuffled_softmax_fits(40, 1500, &backends);
    // And on AMX tiles, where the CPU has them.
    common::check_shuffled_softmax_fits(150, 1500, &backends);
}
