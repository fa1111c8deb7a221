//! Host memory, asked for before it is taken: large buffers (X and its copies, synthetic
//! rows, predictions, per-chunk sums) are sized first and allocated fallibly, so that a
//! shape beyond the machine is an [`Error::OutOfMemory`] naming the bytes, not an abort.

use crate::error::{Error, Result};

/// Buffers below this size are taken without asking the system what is available.
const SMALL: u64 = 64 << 20;

/// Bytes the system can still give this process: Linux's `MemAvailable` plus free swap
/// (from `/proc/meminfo`); `None` where that is unknown.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(field("MemAvailable:")? + field("SwapFree:").unwrap_or(0))
}

/// Refuses `bytes` of host memory for `what` when the system has less available.
pub fn check(bytes: u64, what: impl FnOnce() -> String) -> Result<()> {
    if bytes < SMALL {
        return Ok(());
    }
    match available() {
        Some(free) if bytes > free => Err(Error::OutOfMemory {
            what: what(),
            bytes,
            available: Some(free),
        }),
        _ => Ok(()),
    }
}

/// The bytes of `count` values of `T`, saturating (a count past the address space asks
/// for more than any machine has).
pub fn bytes_of<T>(count: usize) -> u64 {
    (count as u64).saturating_mul(std::mem::size_of::<T>() as u64)
}

/// `len` copies of `value`, refused by [`check`] or by the allocator with an
/// [`Error::OutOfMemory`] instead of aborting.
pub fn filled<T: Clone>(len: usize, value: T, what: impl Fn() -> String) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// Makes room for `additional` more values in `v`, as [`filled`] does.
pub fn reserve<T>(v: &mut Vec<T>, additional: usize, what: impl Fn() -> String) -> Result<()> {
    let bytes = bytes_of::<T>(v.len().saturating_add(additional));
    check(bytes, &what)?;
    v.try_reserve_exact(additional)
        .map_err(|_| Error::OutOfMemory {
            what: what(),
            bytes,
            available: available(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_beyond_the_machine_is_an_error_naming_its_bytes() {
        let e = filled(usize::MAX / 8, 0.0f64, || "the test's buffer".into()).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("the test's buffer"), "{message}");
        assert!(
            message.contains(&(usize::MAX / 8 * 8).to_string()),
            "{message}"
        );
        let v = filled(10, 1u8, || unreachable!()).unwrap();
        assert_eq!(v, vec![1u8; 10]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn available_memory_is_read_on_linux() {
        let free = available().expect("/proc/meminfo has MemAvailable");
        assert!(free > 0);
        assert!(check(free + (1 << 30), || "more than there is".into()).is_err());
    }
}
