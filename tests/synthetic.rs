//! Synthetic problems: the GPU generates, in device memory, the same bits as the CPU.

mod common;

use downhill::backend::Data;
use downhill::gpu::GpuOptions;
use downhill::{Loss, Model, Objective, Synthetic};

#[test]
fn device_generated_rows_equal_cpu_generated_rows_bit_for_bit() {
    let cases = [
        (Objective::linear(), 5000, 3, 1u64),
        (Objective::linear(), 700, 300, 2),
        (Objective::logistic(), 4000, 33, 3),
        (
            Objective::new(Model::Logistic, Some(Loss::Mse), 1).unwrap(),
            100,
            1,
            u64::MAX,
        ),
        (Objective::softmax(5).unwrap(), 3000, 17, 5),
        (Objective::softmax(2).unwrap(), 500, 260, 1 << 40),
    ];
    for (tuning, gpu) in common::gpu_tunings() {
        // Small shards, so that rows are generated at several offsets.
        let sharded = gpu.with_options(GpuOptions {
            max_shard_bytes: Some(256 * 1024),
            ..gpu.options()
        });
        for &(objective, rows, features, seed) in &cases {
            let problem = Synthetic::new(rows, features, objective, seed).unwrap();
            let expected = problem.generate().unwrap();
            let mut session = sharded
                .session(Data::Synthetic(problem), objective)
                .unwrap();
            let got = session.read_rows().unwrap();
            let what = format!("{tuning}, {objective}, {rows}×{features}, seed {seed}");
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(got.x()), bits(expected.x()), "X: {what}");
            assert_eq!(bits(got.y()), bits(expected.y()), "y: {what}");
        }
    }
}

#[test]
fn the_device_rounds_64_bit_integers_like_rust() {
    let Some(gpu) = common::gpu() else { return };
    let p24 = 1i64 << 24;
    let mut values = vec![
        0,
        1,
        -1,
        p24 - 1,
        p24,
        p24 + 1,
        p24 + 2,
        p24 + 3,
        -(p24 + 1),
        -(p24 + 3),
    ];
    // Ties to even at every scale, and the carry into the next power of two.
    for s in 1..39 {
        let base = p24 << s;
        let half = 1i64 << (s - 1);
        values.extend([
            base + half,
            base + 3 * half,
            base + half + 1,
            base - 1,
            (base << 1) - 1,
        ]);
        values.extend([-(base + half), -(base + 3 * half)]);
    }
    values.extend([
        i64::MAX,
        i64::MIN + 1,
        i64::MIN,
        1 << 62,
        -(1 << 62) - 12345,
    ]);
    // And a spread of arbitrary ones.
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        h = h
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        values.push((h as i64) >> (h % 40));
    }
    let got = downhill::gpu::session::oracle::convert_i64_on_device(gpu, &values).unwrap();
    for (v, g) in values.iter().zip(&got) {
        assert_eq!(
            g.to_bits(),
            (*v as f32).to_bits(),
            "{v}: device {g}, Rust {}",
            *v as f32
        );
    }
}
