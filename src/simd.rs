//! Which vector instructions the CPU loops run with (the CPU backend's passes, synthetic
//! rows' generation): detected once, or capped by `DOWNHILL_CPU_SIMD`. A leaf below both.

use crate::error::{Error, Result};

/// The environment variable that caps the vector instructions of the default [`Cpu`](crate::backend::cpu::Cpu)
/// backend: `avx2` or `portable` (or `avx512`, the widest there is). The loops add in
/// different orders, so their last bits differ; the cap reproduces a narrower CPU's bits.
pub const SIMD_VAR: &str = "DOWNHILL_CPU_SIMD";

/// The vector instructions a CPU loop is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// Plain loops the compiler vectorizes for the baseline target.
    Portable,
    /// AVX2 with FMA, hand-written kernels for one output.
    Avx2,
    /// AVX-512F (with AVX2 and FMA), hand-written kernels for one output.
    Avx512,
}

impl Simd {
    /// Every level, narrowest first.
    pub const ALL: [Simd; 3] = [Simd::Portable, Simd::Avx2, Simd::Avx512];

    /// The widest level this CPU has, within `DOWNHILL_CPU_SIMD` when it is set; an
    /// unknown value of it is reported once on the log and ignored.
    pub fn detected() -> Simd {
        static FOUND: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
        *FOUND.get_or_init(|| {
            let widest = Simd::ALL
                .into_iter()
                .rfind(|s| s.available())
                .unwrap_or(Simd::Portable);
            match Simd::from_env() {
                Ok(Some(cap)) => cap.min(widest),
                Ok(None) => widest,
                Err(e) => {
                    log::warn!("{e}; using {}", widest.name());
                    widest
                }
            }
        })
    }

    /// The cap `DOWNHILL_CPU_SIMD` asks for, if it is set; an error names a value that is
    /// not a level.
    pub fn from_env() -> Result<Option<Simd>> {
        let Some(value) = std::env::var_os(SIMD_VAR) else {
            return Ok(None);
        };
        let value = value.to_string_lossy();
        Simd::ALL
            .into_iter()
            .find(|s| s.name() == value.trim())
            .map(Some)
            .ok_or_else(|| Error::option(SIMD_VAR, &value, "expected portable, avx2 or avx512"))
    }

    /// Whether this CPU can run the level.
    pub fn available(self) -> bool {
        match self {
            Simd::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => {
                Simd::Avx2.available() && std::arch::is_x86_feature_detected!("avx512f")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The level's name, as `DOWNHILL_CPU_SIMD` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Portable => "portable",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
        }
    }
}

/// Turns a vector level into code, in one place: `dispatch!(simd, avx512 => A, avx2 => B,
/// portable => C)` evaluates the arm of `simd`'s level, and `C` on other CPUs and levels.
/// The AVX arms are compiled on x86-64 only; each is an `unsafe` call of code compiled for
/// its level, sound because it runs only when `simd` is that level (and a `Simd` is only
/// ever a level the CPU has: [`Simd::detected`], or checked by [`Simd::available`]).
macro_rules! dispatch {
    ($simd:expr, avx512 => $avx512:expr, avx2 => $avx2:expr, portable => $portable:expr $(,)?) => {
        match $simd {
            #[cfg(target_arch = "x86_64")]
            $crate::simd::Simd::Avx512 => $avx512,
            #[cfg(target_arch = "x86_64")]
            $crate::simd::Simd::Avx2 => $avx2,
            _ => $portable,
        }
    };
}
pub(crate) use dispatch;
