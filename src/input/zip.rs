//! Just enough of the zip format to read NumPy's `.npz` archives: the central directory
//! (zip64 included, as NumPy writes it for large arrays), and each member read stored or
//! deflated, its length and CRC-32 checked as it is read. Nothing is written; encrypted
//! members and other compressions are refused by name.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

const END: &[u8; 4] = b"PK\x05\x06";
const END64_LOCATOR: &[u8; 4] = b"PK\x06\x07";
const END64: &[u8; 4] = b"PK\x06\x06";
const CENTRAL: &[u8; 4] = b"PK\x01\x02";
const LOCAL: &[u8; 4] = b"PK\x03\x04";
/// The end record's fixed length, and the most a comment adds to it.
const END_LEN: u64 = 22;
const MAX_COMMENT: u64 = 0xFFFF;

/// One member of an archive, as its central directory describes it.
#[derive(Clone, Debug)]
pub(super) struct Member {
    pub(super) name: String,
    method: u16,
    encrypted: bool,
    crc: u32,
    compressed: u64,
    pub(super) size: u64,
    local: u64,
}

fn fail(path: &Path, message: impl Into<String>) -> Error {
    Error::Format {
        path: path.into(),
        message: message.into(),
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads `len` bytes at `offset` of a source `total` bytes long, refusing a range past its
/// end (named `what`) before allocating.
fn bytes_at<R: Read + Seek>(
    source: &mut R,
    total: u64,
    offset: u64,
    len: u64,
    what: &str,
    path: &Path,
) -> Result<Vec<u8>> {
    if offset.checked_add(len).is_none_or(|end| end > total) {
        return Err(fail(
            path,
            format!(
                "its {what} ({len} bytes at byte {offset}) lies past the end of the {total}-byte \
                 file: it is truncated or not a zip archive"
            ),
        ));
    }
    let mut bytes = vec![0u8; len as usize];
    source
        .seek(SeekFrom::Start(offset))
        .and_then(|_| source.read_exact(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// The members of the archive `source` (`total` bytes), from its central directory.
pub(super) fn members<R: Read + Seek>(
    source: &mut R,
    total: u64,
    path: &Path,
) -> Result<Vec<Member>> {
    let tail_len = total.min(END_LEN + MAX_COMMENT);
    let tail = bytes_at(source, total, total - tail_len, tail_len, "end", path)?;
    let end = (0..tail.len().saturating_sub(END_LEN as usize - 1))
        .rev()
        .find(|&i| &tail[i..i + 4] == END)
        .ok_or_else(|| {
            fail(
                path,
                "no zip end record in its last 64 KiB: the file is truncated, or not an .npz \
                 (zip) archive",
            )
        })?;
    let record = &tail[end..];
    let mut count = u64::from(u16_at(record, 10));
    let mut directory_len = u64::from(u32_at(record, 12));
    let mut directory_at = u64::from(u32_at(record, 16));
    if count == 0xFFFF || directory_len == 0xFFFF_FFFF || directory_at == 0xFFFF_FFFF {
        // Zip64: a locator just before the end record points at the zip64 end record.
        let locator_at = (total - tail_len + end as u64)
            .checked_sub(20)
            .ok_or_else(|| fail(path, "a zip64 archive without its zip64 locator"))?;
        let locator = bytes_at(source, total, locator_at, 20, "zip64 locator", path)?;
        if &locator[..4] != END64_LOCATOR {
            return Err(fail(path, "a zip64 archive without its zip64 locator"));
        }
        let record = bytes_at(source, total, u64_at(&locator, 8), 56, "zip64 end", path)?;
        if &record[..4] != END64 {
            return Err(fail(
                path,
                "its zip64 locator points at no zip64 end record",
            ));
        }
        count = u64_at(&record, 32);
        directory_len = u64_at(&record, 40);
        directory_at = u64_at(&record, 48);
    }
    let directory = bytes_at(
        source,
        total,
        directory_at,
        directory_len,
        "central directory",
        path,
    )?;
    let mut members = Vec::new();
    let mut at = 0usize;
    for index in 0..count {
        let broken = || fail(path, format!("zip directory entry {index} is cut short"));
        let fixed = directory.get(at..at + 46).ok_or_else(broken)?;
        if &fixed[..4] != CENTRAL {
            return Err(fail(
                path,
                format!("zip directory entry {index} has no entry signature"),
            ));
        }
        let (name_len, extra_len, comment_len) = (
            usize::from(u16_at(fixed, 28)),
            usize::from(u16_at(fixed, 30)),
            usize::from(u16_at(fixed, 32)),
        );
        let name = directory
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(broken)?;
        let extra = directory
            .get(at + 46 + name_len..at + 46 + name_len + extra_len)
            .ok_or_else(broken)?;
        let mut member = Member {
            name: String::from_utf8_lossy(name).into_owned(),
            method: u16_at(fixed, 10),
            encrypted: u16_at(fixed, 8) & 1 != 0,
            crc: u32_at(fixed, 16),
            compressed: u64::from(u32_at(fixed, 20)),
            size: u64::from(u32_at(fixed, 24)),
            local: u64::from(u32_at(fixed, 42)),
        };
        zip64_sizes(&mut member, extra).ok_or_else(broken)?;
        members.push(member);
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(members)
}

/// Replaces the sizes and offset saturated at 2³² − 1 with the zip64 extra field's,
/// which lists those (and only those) in this order. `None`: the field is cut short.
fn zip64_sizes(member: &mut Member, mut extra: &[u8]) -> Option<()> {
    while extra.len() >= 4 {
        let (id, len) = (u16_at(extra, 0), usize::from(u16_at(extra, 2)));
        let body = extra.get(4..4 + len)?;
        if id == 1 {
            let mut fields = body.chunks_exact(8).map(|b| u64_at(b, 0));
            for slot in [&mut member.size, &mut member.compressed, &mut member.local] {
                if *slot == 0xFFFF_FFFF {
                    *slot = fields.next()?;
                }
            }
        }
        extra = &extra[4 + len..];
    }
    Some(())
}

/// A reader of `member`'s uncompressed bytes (exactly `member.size` of them), which fails
/// if they are fewer or their CRC-32 is not the directory's.
pub(super) fn open<'a, R: Read + Seek>(
    source: &'a mut R,
    total: u64,
    member: &Member,
    path: &Path,
) -> Result<impl Read + 'a> {
    let name = &member.name;
    if member.encrypted {
        return Err(fail(path, format!("{name} is encrypted")));
    }
    let local = bytes_at(source, total, member.local, 30, "member header", path)?;
    if &local[..4] != LOCAL {
        return Err(fail(
            path,
            format!("{name}: no member header where the directory says"),
        ));
    }
    let start = member.local + 30 + u64::from(u16_at(&local, 26)) + u64::from(u16_at(&local, 28));
    if start
        .checked_add(member.compressed)
        .is_none_or(|end| end > total)
    {
        return Err(fail(
            path,
            format!(
                "{name}'s {} compressed bytes run past the end of the {total}-byte file: it is \
                 truncated",
                member.compressed
            ),
        ));
    }
    source
        .seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(path, e))?;
    let raw = source.take(member.compressed);
    let inner: Box<dyn Read + 'a> = match member.method {
        0 => Box::new(raw),
        8 => Box::new(flate2::read::DeflateDecoder::new(raw)),
        m => {
            return Err(fail(
                path,
                format!(
                    "{name} uses zip compression method {m}; only stored (0) and deflated (8) \
                     members are read, as NumPy writes them"
                ),
            ));
        }
    };
    Ok(Checked {
        inner,
        left: member.size,
        crc: member.crc,
        hasher: crc32fast::Hasher::new(),
        name: name.clone(),
    })
}

/// A member's bytes, counted and summed as they pass.
struct Checked<R> {
    inner: R,
    left: u64,
    crc: u32,
    hasher: crc32fast::Hasher,
    name: String,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.inner.read(&mut buf[..want])?;
        if got == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} ends {} bytes early", self.name, self.left),
            ));
        }
        self.hasher.update(&buf[..got]);
        self.left -= got as u64;
        if self.left == 0 {
            let sum = std::mem::take(&mut self.hasher).finalize();
            if sum != self.crc {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}'s CRC-32 is {sum:08x}, not the {:08x} the archive records: it is \
                         damaged",
                        self.name, self.crc
                    ),
                ));
            }
        }
        Ok(got)
    }
}
