//! The GPU's tiled products for many classes (`shaders/products.wgsl`: Z = X·W + b and
//! G = Xᵀ·Δ as tiled matrix products wherever the fused gradient splits its classes)
//! against the f64 reference, under both kernel tunings: class counts either side of a
//! 64-class tile, rows not a multiple of a 16-row block or a 64-row block, wide rows (where
//! z falls back to the fused kernel's own and only Xᵀδ is tiled), sample weights, the same
//! bits on a rerun; and shuffled mini-batches with a held-out split and a custom loss
//! through three epochs.

mod common;

use common::{assert_gradients_close, problem, random_params};
use downhill::Objective;
use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data, Session};
use downhill::gpu::Gpu;
use downhill::gpu::kernels::{Products, Tuning};

/// The shared GPU under each tuning, its products tiled from `products_from` classes
/// (0: wherever the classes are split; `u32::MAX`: never).
fn tunings(products_from: u32) -> Vec<(&'static str, Gpu)> {
    common::gpu_tunings_with(|base| Tuning {
        products_from,
        ..base
    })
}

#[test]
fn tiled_products_equal_the_reference_under_both_tunings() {
    // (rows, features, classes): one row; a block and a bit; a tile's classes and one
    // more; rows past a 64-row block, 1 000 classes; rows wider than one slab of W.
    let shapes = [
        (1, 5, 33),
        (17, 1, 64),
        (70, 5, 65),
        (131, 64, 1000),
        (67, 4097, 33),
        (40, 2048, 200),
    ];
    common::for_each_softmax_case(&shapes, |what, data, objective, params, expected| {
        for (tuning, gpu) in tunings(0) {
            let what = format!("{what}, {tuning}");
            let mut session = gpu.session(Data::Host(data), objective).unwrap();
            let c = session.constants();
            if c.splits_classes() {
                assert!(c.products.tiled(), "{what}: not tiled");
            }
            session.set_params(params).unwrap();
            let got = session.gradient().unwrap();
            assert_gradients_close(&what, &got, expected, 1e-4);
            common::assert_same_bits(&what, &got, &session.gradient().unwrap());
        }
    });
}

/// Rows so wide that one 64-row block of `logits_tiles` would run past lavapipe's loop
/// limit: z comes from the fused kernel, Xᵀδ still from the tiled product. On a device
/// without a loop limit both are tiled; either way the reference's gradient.
#[test]
fn wide_rows_tile_the_gradient_product_alone_where_z_would_overrun_the_loop_limit() {
    let (rows, d, k) = (21, 9_001, 33);
    let objective = Objective::softmax(k).unwrap();
    let data = problem(rows, d, objective, 9);
    let params = random_params(d, k, 1.0 / (d as f64).sqrt(), 4);
    let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
    reference.set_params(&params).unwrap();
    let expected = reference.gradient().unwrap();
    for (tuning, gpu) in tunings(0) {
        let what = format!("{rows} × {d}, {k} classes, {tuning}");
        let mut session = gpu.session(Data::Host(&data), objective).unwrap();
        let c = session.constants();
        let limited = gpu.context().loop_limit().unwrap().is_some();
        if c.splits_classes() && limited {
            assert_eq!(c.products, Products::TiledXt, "{what}");
        }
        session.set_params(&params).unwrap();
        assert_gradients_close(&what, &session.gradient().unwrap(), &expected, 1e-4);
    }
}

/// Shuffled mini-batches (rows of the batch gathered from anywhere in the shard), a
/// held-out split (its rows' sums beside the gradient, their deltas zero) and a custom
/// loss go through the same tiles: three epochs land where the reference's do, on the
/// same bits on a rerun; so do the untiled kernels'.
#[test]
fn shuffled_batches_held_out_rows_and_custom_losses_take_the_tiled_products() {
    let (tiled, untiled) = (tunings(0), tunings(u32::MAX));
    let backends: Vec<(String, &dyn Backend)> = tiled
        .iter()
        .map(|(tuning, gpu)| (format!("{tuning}, tiled"), gpu as &dyn Backend))
        .chain(
            untiled
                .iter()
                .map(|(tuning, gpu)| (format!("{tuning}, untiled"), gpu as &dyn Backend)),
        )
        .collect();
    common::check_shuffled_softmax_fits(70, 900, &backends);
}
