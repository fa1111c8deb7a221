//! X's storage: a float buffer whose first element sits on a 64-byte cache-line boundary,
//! so that a 64-feature row is four whole lines and a vector load never straddles two
//! (the allocator aligns large blocks to 16 bytes only), and whose large blocks are backed
//! by 2 MiB pages where the system allows it, so that a pass over X does not walk the page
//! tables every 4 KiB.

use std::fmt;
use std::ops::{Deref, DerefMut};

/// Floats per cache line.
const LINE: usize = 16;

/// Buffers from this size up ask for huge pages.
const HUGE_FROM: usize = 8 << 20;

/// `len` floats starting at a cache-line boundary of `buf`.
pub struct Floats {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Floats {
    /// `len` zeros. Large buffers are given huge pages before their first touch (that is
    /// when the kernel chooses the page size).
    pub fn zeroed(len: usize) -> Self {
        let buf = vec![0.0f32; len + LINE - 1];
        advise_huge_pages(&buf);
        let start = line_offset(&buf);
        Floats { buf, start, len }
    }

    /// Takes `v` over, moving its values up to the first line boundary in place (the
    /// allocation grows by at most 15 floats; nothing is copied to a second buffer).
    pub fn from_vec(mut v: Vec<f32>) -> Self {
        let len = v.len();
        if line_offset(&v) != 0 {
            v.reserve_exact(LINE - 1);
            let start = line_offset(&v);
            v.resize(len + start, 0.0);
            v.copy_within(0..len, start);
            return Floats { buf: v, start, len };
        }
        Floats {
            buf: v,
            start: 0,
            len,
        }
    }
}

/// Floats from the start of `v` to its first 64-byte boundary.
fn line_offset(v: &[f32]) -> usize {
    let misaligned = v.as_ptr() as usize % (4 * LINE);
    if misaligned == 0 {
        0
    } else {
        (4 * LINE - misaligned) / 4
    }
}

/// Asks the kernel to back the 2 MiB-aligned interior of a large buffer with huge pages.
/// Only a hint: when the system refuses, the buffer keeps its small pages.
fn advise_huge_pages(buf: &[f32]) {
    #[cfg(target_os = "linux")]
    if 4 * buf.len() >= HUGE_FROM {
        const HUGE: usize = 2 << 20;
        let begin = (buf.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (buf.as_ptr() as usize + 4 * buf.len()) / HUGE * HUGE;
        if end > begin {
            // SAFETY: [begin, end) lies within `buf`'s allocation, and MADV_HUGEPAGE
            // changes neither its contents nor its mapping's validity.
            let _ = unsafe {
                libc::madvise(begin as *mut libc::c_void, end - begin, libc::MADV_HUGEPAGE)
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (buf, HUGE_FROM);
}

impl Deref for Floats {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl DerefMut for Floats {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

impl Clone for Floats {
    fn clone(&self) -> Self {
        let mut copy = Floats::zeroed(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

impl PartialEq for Floats {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Floats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl From<Vec<f32>> for Floats {
    fn from(v: Vec<f32>) -> Self {
        Floats::from_vec(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_start_on_a_line_and_survive_the_move() {
        for len in [0, 1, 15, 16, 1000, 3 << 20] {
            let values: Vec<f32> = (0..len).map(|i| i as f32).collect();
            // A vector that starts 4 bytes past a line, whatever the allocator does.
            let mut shifted = Vec::with_capacity(len + 1);
            shifted.push(-1.0);
            shifted.extend_from_slice(&values);
            let v = shifted.split_off(1);
            let floats = Floats::from_vec(v);
            assert_eq!(floats.as_ptr() as usize % 64, 0, "len {len}");
            assert_eq!(&*floats, &values[..]);
            let zeros = Floats::zeroed(len);
            assert_eq!(zeros.as_ptr() as usize % 64, 0);
            assert!(zeros.iter().all(|&v| v == 0.0) && zeros.len() == len);
            assert_eq!(floats.clone(), floats);
        }
    }
}
