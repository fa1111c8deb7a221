//! X's storage: a float buffer whose first element sits on a 64-byte cache-line boundary,
//! so that a 64-feature row is four whole lines and a vector load never straddles two
//! (the allocator aligns large blocks to 16 bytes only), and whose large blocks are backed
//! by 2 MiB pages where the system allows it, so that a pass over X does not walk the page
//! tables every 4 KiB. Or, on Linux, floats mapped from a file (a float32 `.npy`): the
//! kernel reads them in as they are used and may drop them again, so X can be larger than
//! host memory. Or floats another owner holds (a NumPy array, for the Python package), read
//! in place and copied only if something writes to them.

use std::fmt;
use std::ops::{Deref, DerefMut};

/// Floats per cache line.
const LINE: usize = 16;

/// Buffers from this size up ask for huge pages.
const HUGE_FROM: usize = 8 << 20;

/// `len` floats from float `start` of the storage.
pub struct Floats {
    storage: Storage,
    start: usize,
    len: usize,
}

enum Storage {
    /// Starting at a cache-line boundary.
    Heap(Vec<f32>),
    #[cfg(target_os = "linux")]
    Mapped(Mapping),
    /// Read through the owner, wherever its floats start; never written (a write copies).
    Shared(Box<dyn AsRef<[f32]> + Send + Sync>),
}

impl Floats {
    /// `len` zeros for `what` (named in the error when the memory cannot be had). Large
    /// buffers are given huge pages before their first touch (that is when the kernel
    /// chooses the page size).
    pub fn zeroed(len: usize, what: impl Fn() -> String) -> crate::error::Result<Self> {
        let buf = crate::memory::filled(len.saturating_add(LINE - 1), 0.0f32, what)?;
        advise_huge_pages(&buf);
        let start = line_offset(&buf);
        Ok(Floats {
            storage: Storage::Heap(buf),
            start,
            len,
        })
    }

    /// A line-aligned copy of `values`.
    pub fn copy_of(values: &[f32]) -> crate::error::Result<Self> {
        let mut copy = Floats::zeroed(values.len(), || {
            format!("a copy of X ({} floats)", values.len())
        })?;
        copy.copy_from_slice(values);
        Ok(copy)
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
            return Floats {
                storage: Storage::Heap(v),
                start,
                len,
            };
        }
        Floats {
            storage: Storage::Heap(v),
            start: 0,
            len,
        }
    }

    /// `len` little-endian floats of `file` from byte `offset` (a multiple of 4), mapped
    /// privately: the file is never written, and a write through the floats changes only
    /// this process's copy of the page. `None` where mapping is not available.
    pub fn map(file: &std::fs::File, offset: usize, len: usize) -> std::io::Result<Option<Self>> {
        #[cfg(target_os = "linux")]
        if cfg!(target_endian = "little") && offset.is_multiple_of(4) {
            let bytes = offset + 4 * len;
            if file.metadata()?.len() < bytes as u64 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file is shorter than its floats",
                ));
            }
            return Ok(Some(Floats {
                storage: Storage::Mapped(Mapping::new(file, bytes)?),
                start: offset / 4,
                len,
            }));
        }
        let _ = (file, offset, len);
        Ok(None)
    }

    /// The floats `owner` holds, read in place: nothing is copied, and the owner is kept
    /// until these floats are dropped. Their start need not be on a cache line (vector
    /// loads then straddle lines, which costs a little). A write through the floats
    /// (`DerefMut`) first copies them into storage of their own, so the owner's values
    /// are never changed.
    pub fn shared(owner: impl AsRef<[f32]> + Send + Sync + 'static) -> Self {
        let len = owner.as_ref().len();
        Floats {
            storage: Storage::Shared(Box::new(owner)),
            start: 0,
            len,
        }
    }

    /// Whether the floats are mapped from a file.
    pub fn is_mapped(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Storage::Mapped(_) = self.storage {
            return true;
        }
        false
    }

    /// Whether the floats are read in place from another owner ([`Floats::shared`]).
    pub fn is_shared(&self) -> bool {
        matches!(self.storage, Storage::Shared(_))
    }
}

/// A private, read-write mapping of a file's first `bytes` bytes.
#[cfg(target_os = "linux")]
struct Mapping {
    at: *mut f32,
    bytes: usize,
}

// SAFETY: the mapping is owned by one `Floats` and reached only through its `&`/`&mut`
// borrows, as a `Vec` would be.
#[cfg(target_os = "linux")]
unsafe impl Send for Mapping {}
#[cfg(target_os = "linux")]
unsafe impl Sync for Mapping {}

#[cfg(target_os = "linux")]
impl Mapping {
    fn new(file: &std::fs::File, bytes: usize) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        if bytes == 0 {
            return Ok(Mapping {
                at: std::ptr::NonNull::dangling().as_ptr(),
                bytes,
            });
        }
        // SAFETY: a fresh private mapping of an open file; the result is checked below.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: [at, at + bytes) is the mapping just made; the advice is only a hint
        // (read ahead, and the pages behind may be dropped).
        let _ = unsafe { libc::madvise(at, bytes, libc::MADV_SEQUENTIAL) };
        Ok(Mapping {
            at: at.cast(),
            bytes,
        })
    }
}

#[cfg(target_os = "linux")]
impl Drop for Mapping {
    fn drop(&mut self) {
        if self.bytes > 0 {
            // SAFETY: unmaps exactly the mapping `new` made; no borrow of it outlives self.
            let _ = unsafe { libc::munmap(self.at.cast(), self.bytes) };
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

impl Default for Floats {
    /// No floats.
    fn default() -> Self {
        Floats::from_vec(Vec::new())
    }
}

impl Deref for Floats {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match &self.storage {
            Storage::Heap(buf) => &buf[self.start..self.start + self.len],
            // SAFETY: `map` checked that the file holds floats start..start + len, all
            // within the mapping, which lives as long as self.
            #[cfg(target_os = "linux")]
            Storage::Mapped(m) => unsafe {
                std::slice::from_raw_parts(m.at.add(self.start), self.len)
            },
            Storage::Shared(owner) => &(**owner).as_ref()[self.start..self.start + self.len],
        }
    }
}

impl DerefMut for Floats {
    fn deref_mut(&mut self) -> &mut [f32] {
        if self.is_shared() {
            *self = self.clone();
        }
        match &mut self.storage {
            Storage::Heap(buf) => &mut buf[self.start..self.start + self.len],
            // SAFETY: as in `deref`; the mapping is writable and private.
            #[cfg(target_os = "linux")]
            Storage::Mapped(m) => unsafe {
                std::slice::from_raw_parts_mut(m.at.add(self.start), self.len)
            },
            Storage::Shared(_) => unreachable!("shared floats were copied above"),
        }
    }
}

impl Clone for Floats {
    /// An infallible copy (as `Vec`'s); readers and backends size theirs with
    /// [`Floats::copy_of`], which reports memory it cannot have.
    fn clone(&self) -> Self {
        let mut buf = vec![0.0f32; self.len + LINE - 1];
        let start = line_offset(&buf);
        buf[start..start + self.len].copy_from_slice(self);
        Floats {
            storage: Storage::Heap(buf),
            start,
            len: self.len,
        }
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
            let zeros = Floats::zeroed(len, String::new).unwrap();
            assert_eq!(zeros.as_ptr() as usize % 64, 0);
            assert!(zeros.iter().all(|&v| v == 0.0) && zeros.len() == len);
            assert_eq!(floats.clone(), floats);
        }
    }

    #[test]
    fn shared_floats_are_read_in_place_and_copied_before_a_write() {
        let owner: std::sync::Arc<[f32]> = (0..100).map(|i| i as f32).collect();
        let mut floats = Floats::shared(owner.clone());
        assert!(floats.is_shared() && !floats.is_mapped());
        assert_eq!(floats.as_ptr(), owner.as_ptr());
        assert_eq!(&*floats, &*owner);
        floats[3] = -1.0;
        assert!(!floats.is_shared());
        assert_eq!(owner[3], 3.0);
        assert_eq!((floats[3], floats[4], floats.len()), (-1.0, 4.0, 100));
    }
}
