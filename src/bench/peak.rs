//! The CPU's FMA peak, measured: every thread runs independent chains of fused
//! multiply-adds at the widest vector level this CPU has ([`Simd::detected`]). It is to a
//! compute-bound epoch (softmax with many classes: two matrix products) what one streaming
//! read of X is to a memory-bound one: the floor its time is held to.

use std::time::Instant;

use crate::simd::Simd;

/// Independent accumulators per thread: enough to cover an FMA's latency (4 cycles) on
/// two ports twice over, and few enough to stay in registers (AVX2 has 16).
const CHAINS: usize = 12;

/// FMA rounds per thread per measurement: each a vector FMA on every chain (about 50 ms
/// of AVX-512 at 2 GHz).
const ROUNDS: u64 = 1 << 23;

/// The CPU's FMA peak in GFLOP/s over `threads` threads (each FMA two operations), the
/// best of three measurements, and the vector level it ran at.
pub fn fma_peak(threads: usize) -> (f64, Simd) {
    // AMX multiplies only bfloat16: the f32 peak is AVX-512's.
    let simd = Simd::detected().min(Simd::Avx512);
    let lanes = match simd {
        Simd::Avx512 | Simd::Amx => 16.0,
        Simd::Avx2 => 8.0,
        Simd::Portable => 1.0,
    };
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..threads.max(1) {
                    scope.spawn(move || std::hint::black_box(chains(simd, ROUNDS)));
                }
            });
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let flops = 2.0 * lanes * (CHAINS as f64) * (ROUNDS as f64) * threads.max(1) as f64;
    (flops / best / 1e9, simd)
}

/// `rounds` FMAs on each of [`CHAINS`] accumulators at `simd`; returns their sum so that
/// none is optimized away.
fn chains(simd: Simd, rounds: u64) -> f32 {
    #[cfg(target_arch = "x86_64")]
    match simd {
        // SAFETY: the level is one this CPU has (`Simd::detected`).
        Simd::Avx512 | Simd::Amx => return unsafe { x86::chains512(rounds) },
        // SAFETY: as above.
        Simd::Avx2 => return unsafe { x86::chains256(rounds) },
        Simd::Portable => {}
    }
    let _ = simd;
    let mut acc = [0.0f32; CHAINS];
    for _ in 0..rounds {
        for a in &mut acc {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m256, __m512, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_storeu_ps, _mm512_fmadd_ps,
        _mm512_reduce_add_ps, _mm512_set1_ps,
    };

    use super::CHAINS;

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn chains512(rounds: u64) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc: [__m512; CHAINS] = [_mm512_set1_ps(0.0); CHAINS];
        for _ in 0..rounds {
            for v in &mut acc {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn chains256(rounds: u64) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc: [__m256; CHAINS] = [_mm256_set1_ps(0.0); CHAINS];
        for _ in 0..rounds {
            for v in &mut acc {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut total = 0.0;
        for v in acc {
            let mut lanes = [0.0f32; 8];
            // SAFETY: `lanes` holds eight floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            total += lanes.iter().sum::<f32>();
        }
        total
    }
}
