//! Which vector instructions the CPU loops run with (the CPU backend's passes, synthetic
//! rows' generation): detected once, or capped by `DOWNHILL_CPU_SIMD`. A leaf below both.

use crate::error::{Error, Result};

/// The environment variable that caps the vector instructions of the default [`Cpu`](crate::backend::cpu::Cpu)
/// backend: `avx512`, `avx2` or `portable` (or `amx`, the widest there is). The loops add in
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
    /// AVX-512 with Intel's AMX tiles (bfloat16 products): the passes of
    /// [`Avx512`](Simd::Avx512), with the matrix products of many classes on the tiles,
    /// each f32 split into three bfloat16 parts so that they are as exact as f32 products.
    Amx,
}

impl Simd {
    /// Every level, narrowest first.
    pub const ALL: [Simd; 4] = [Simd::Portable, Simd::Avx2, Simd::Avx512, Simd::Amx];

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
            .ok_or_else(|| {
                Error::option(SIMD_VAR, &value, "expected portable, avx2, avx512 or amx")
            })
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
            #[cfg(target_arch = "x86_64")]
            Simd::Amx => {
                Simd::Avx512.available()
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && tiles_usable()
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
            Simd::Amx => "amx",
        }
    }
}

/// Whether this CPU has AMX tiles with bfloat16 products and the kernel lets this process
/// use them (asked for once).
#[cfg(target_arch = "x86_64")]
fn tiles_usable() -> bool {
    use std::arch::x86_64::{__cpuid_count, _xgetbv};
    static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USABLE.get_or_init(|| {
        // SAFETY: CPUID is on every x86-64 CPU; leaf 7 is read only when the highest leaf
        // covers it; XGETBV only when OSXSAVE (leaf 1, ECX bit 27) says the OS enabled it.
        unsafe {
            if __cpuid_count(0, 0).eax < 7 || __cpuid_count(1, 0).ecx & (1 << 27) == 0 {
                return false;
            }
            let edx = __cpuid_count(7, 0).edx;
            let (bf16, tile) = (edx & (1 << 22) != 0, edx & (1 << 24) != 0);
            // XCR0 bits 17 and 18: the OS saves the tiles' configuration and data.
            if !bf16 || !tile || _xgetbv(0) & (3 << 17) != 3 << 17 {
                return false;
            }
        }
        request_tiles()
    })
}

/// Linux's `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: permission for this
/// process to use the tiles' registers; false where it is refused, or on another OS.
#[cfg(target_arch = "x86_64")]
fn request_tiles() -> bool {
    #[cfg(target_os = "linux")]
    {
        const ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let result: i64;
        // SAFETY: a system call that changes only the process's permissions; it clobbers
        // rcx and r11, as every `syscall` does.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") ARCH_PRCTL => result,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        result == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
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
            $crate::simd::Simd::Avx512 | $crate::simd::Simd::Amx => $avx512,
            #[cfg(target_arch = "x86_64")]
            $crate::simd::Simd::Avx2 => $avx2,
            _ => $portable,
        }
    };
}
pub(crate) use dispatch;
