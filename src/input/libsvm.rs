//! libsvm / svmlight text (`.svm`, `.svmlight`, `.libsvm`): one row a line,
//! `label [qid:N] index:value index:value … [# comment]`. Read in chunks of 32 MiB, each
//! split at line breaks and parsed on all cores, straight into the CSR arrays (so the peak
//! is the growing arrays and one chunk of text). Indices are zero- or one-based: `auto`
//! decides as scikit-learn's `load_svmlight_file(zero_based="auto")` does (one-based
//! unless some index is 0). Rows listing their columns out of order or one twice are put
//! in order and the twice-listed values added, as scipy's `sum_duplicates` does
//! ([`SparseDataset::from_csr`]). Every malformed line is reported with its file, line
//! and column.

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;

use crate::data::{LineOf, Origin};
use crate::error::{Error, Result};
use crate::sparse::SparseDataset;

/// Bytes of text parsed at a time.
const CHUNK_BYTES: usize = 32 << 20;

/// How the file numbers its columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IndexBase {
    /// One-based unless some index is 0 (scikit-learn's `zero_based="auto"`).
    #[default]
    Auto,
    Zero,
    One,
}

/// What the reader is told beyond the text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LibsvmOptions {
    pub base: IndexBase,
    /// The number of features (`--num-features`); default: the largest index + 1.
    pub features: Option<usize>,
}

/// Whether `path`'s extension names libsvm text.
pub fn is_libsvm(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str());
    let ext = ext.map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("svm" | "svmlight" | "libsvm"))
}

/// Reads a libsvm file.
pub fn read(path: &Path, options: &LibsvmOptions) -> Result<SparseDataset> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let dataset = read_from(file, path, options)?;
    Ok(dataset.with_origin(Origin::Csv {
        path: path.into(),
        target_name: "label".into(),
        target_column: 1,
        line_of: LineOf(row_line),
    }))
}

/// Reads libsvm text from `reader`; messages call it `name`.
pub fn read_from(
    mut reader: impl Read,
    name: impl AsRef<Path>,
    options: &LibsvmOptions,
) -> Result<SparseDataset> {
    let name = name.as_ref();
    let mut csr = Csr::default();
    let mut text: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
    // The file offset of text[0], and the lines before it.
    let (mut start, mut lines) = (0u64, 0u64);
    loop {
        let held = text.len();
        text.resize(held + CHUNK_BYTES, 0);
        let got = read_fully(&mut reader, &mut text[held..]).map_err(|e| Error::io(name, e))?;
        text.truncate(held + got);
        let at_end = got == 0;
        let cut = if at_end {
            text.len()
        } else {
            match text.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => continue,
            }
        };
        parse_chunk(&text[..cut], start, &mut csr)
            .map_err(|e| e.locate(name, &text, start, lines))?;
        lines += count_lines(&text[..cut]);
        text.drain(..cut);
        start += cut as u64;
        if at_end {
            break;
        }
    }
    csr.finish(name, options)
}

/// Reads until `buf` is full or the reader is at its end; the bytes read.
fn read_fully(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The arrays as they grow, with what the index base and the width are decided from.
#[derive(Default)]
struct Csr {
    offsets: Vec<u64>,
    indices: Vec<u32>,
    /// Empty while every value so far is 1 (binary rows keep no values).
    values: Values,
    y: Vec<f32>,
    /// The smallest and largest index read, each with the file offset of its first
    /// occurrence.
    min: Option<(u64, u64)>,
    max: Option<(u64, u64)>,
}

/// A problem at a byte of the file, before its line and column are known.
struct At {
    byte: u64,
    message: String,
}

impl At {
    fn new(byte: u64, message: impl Into<String>) -> Self {
        At {
            byte,
            message: message.into(),
        }
    }

    /// The error, with its line and column counted in `text`, whose first byte is at file
    /// offset `start` after `lines` whole lines; a byte outside `text` is found in the
    /// file `name` read again (line 0 when it cannot be).
    fn locate(self, name: &Path, text: &[u8], start: u64, lines: u64) -> Error {
        match self.byte.checked_sub(start) {
            Some(rel) if (rel as usize) <= text.len() => {
                let before = &text[..rel as usize];
                let line_start = before
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let line = lines + count_lines(before) + 1;
                libsvm_error(name, line, rel as usize - line_start + 1, self.message)
            }
            _ => match std::fs::read(name) {
                Ok(all) if (self.byte as usize) <= all.len() => self.locate(name, &all, 0, 0),
                _ => {
                    let message = format!("{} (at byte {})", self.message, self.byte);
                    libsvm_error(name, 0, 0, message)
                }
            },
        }
    }
}

fn libsvm_error(name: &Path, line: u64, column: usize, message: String) -> Error {
    Error::Libsvm {
        path: name.into(),
        line,
        column,
        message,
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Values as they are read: none kept while every one is 1.
#[derive(Default)]
struct Values {
    kept: Vec<f32>,
    /// Whether a value other than 1 was read (`kept` then has one per index).
    any: bool,
}

impl Values {
    /// Appends `v`, the value of index number `at` (those before it all read already).
    fn push(&mut self, at: usize, v: f32) {
        if !self.any && v != 1.0 {
            self.any = true;
            self.kept = vec![1.0; at];
        }
        if self.any {
            self.kept.push(v);
        }
    }

    /// Appends `other`'s values, which follow this one's `at` values and number `len`.
    fn append(&mut self, at: usize, other: Values, len: usize) {
        match (self.any, other.any) {
            (false, false) => {}
            (true, false) => self.kept.resize(at + len, 1.0),
            (false, true) => {
                self.any = true;
                self.kept = vec![1.0; at];
                self.kept.extend_from_slice(&other.kept);
            }
            (true, true) => self.kept.extend_from_slice(&other.kept),
        }
    }
}

/// One piece of a chunk, parsed: its rows' lengths and entries, and its index extremes.
#[derive(Default)]
struct Piece {
    lengths: Vec<u32>,
    indices: Vec<u32>,
    values: Values,
    y: Vec<f32>,
    min: Option<(u64, u64)>,
    max: Option<(u64, u64)>,
}

/// Parses whole lines `text` (file offset `start`) on all cores and appends their rows.
fn parse_chunk(text: &[u8], start: u64, csr: &mut Csr) -> std::result::Result<(), At> {
    let pieces = (rayon::current_num_threads() * 4).max(1);
    let mut bounds = vec![0];
    for p in 1..pieces {
        let from = (text.len() * p / pieces).max(*bounds.last().unwrap());
        let end = text[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| from + i + 1);
        bounds.push(end);
    }
    bounds.push(text.len());
    bounds.dedup();
    let parsed: Vec<std::result::Result<Piece, At>> = bounds
        .par_windows(2)
        .map(|w| parse_piece(&text[w[0]..w[1]], start + w[0] as u64))
        .collect();
    for piece in parsed {
        let piece = piece?;
        if csr.offsets.is_empty() {
            csr.offsets.push(0);
        }
        let mut end = *csr.offsets.last().unwrap();
        for len in piece.lengths {
            end += u64::from(len);
            csr.offsets.push(end);
        }
        let (at, len) = (csr.indices.len(), piece.indices.len());
        csr.indices.extend_from_slice(&piece.indices);
        csr.values.append(at, piece.values, len);
        csr.y.extend_from_slice(&piece.y);
        csr.min = extreme(csr.min, piece.min, |a, b| a < b);
        csr.max = extreme(csr.max, piece.max, |a, b| a > b);
    }
    Ok(())
}

/// The first of two (index, byte) extremes by `better`, the earlier one on a tie.
fn extreme(
    a: Option<(u64, u64)>,
    b: Option<(u64, u64)>,
    better: impl Fn(u64, u64) -> bool,
) -> Option<(u64, u64)> {
    match (a, b) {
        (Some(x), Some(y)) if better(y.0, x.0) => Some(y),
        (Some(x), _) => Some(x),
        (None, y) => y,
    }
}

/// Parses whole lines `text` starting at file offset `start`.
fn parse_piece(text: &[u8], start: u64) -> std::result::Result<Piece, At> {
    let mut piece = Piece::default();
    let mut pos = 0;
    let mut row: Vec<(u64, f32)> = Vec::new();
    while pos < text.len() {
        let end = text[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| pos + i);
        let line = &text[pos..end];
        let line = &line[..line.iter().position(|&b| b == b'#').unwrap_or(line.len())];
        parse_line(line, start + pos as u64, &mut row, &mut piece)?;
        pos = end + 1;
    }
    Ok(piece)
}

/// The tokens of a line, split at spaces and tabs, each with its offset in the line.
fn tokens(line: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < line.len() && matches!(line[pos], b' ' | b'\t' | b'\r') {
            pos += 1;
        }
        if pos == line.len() {
            return None;
        }
        let from = pos;
        while pos < line.len() && !matches!(line[pos], b' ' | b'\t' | b'\r') {
            pos += 1;
        }
        Some((from, &line[from..pos]))
    })
}

/// One line (comment removed) at file offset `at`: nothing when it is blank, else a row.
fn parse_line(
    line: &[u8],
    at: u64,
    row: &mut Vec<(u64, f32)>,
    piece: &mut Piece,
) -> std::result::Result<(), At> {
    let mut tokens = tokens(line);
    let Some((offset, label)) = tokens.next() else {
        return Ok(());
    };
    let shown = |t: &[u8]| String::from_utf8_lossy(t).into_owned();
    if label.contains(&b':') {
        return Err(At::new(
            at + offset as u64,
            format!("expected a label first, found {:?}", shown(label)),
        ));
    }
    let y = number(label).ok_or_else(|| {
        At::new(
            at + offset as u64,
            format!("the label {:?} is not a finite number", shown(label)),
        )
    })?;
    row.clear();
    for (offset, token) in tokens {
        let byte = at + offset as u64;
        let Some(colon) = token.iter().position(|&b| b == b':') else {
            return Err(At::new(
                byte,
                format!("expected index:value, found {:?}", shown(token)),
            ));
        };
        let (index, value) = (&token[..colon], &token[colon + 1..]);
        if index == b"qid" {
            continue;
        }
        let index = integer(index).ok_or_else(|| {
            At::new(
                byte,
                format!(
                    "the index of {:?} is not a non-negative integer (below 10¹⁸)",
                    shown(token)
                ),
            )
        })?;
        if index > u64::from(u32::MAX) {
            return Err(At::new(
                byte,
                format!("index {index} is beyond the 2³² columns of u32 column indices"),
            ));
        }
        if value.is_empty() {
            return Err(At::new(
                byte,
                format!("{:?} has no value after the colon", shown(token)),
            ));
        }
        let value = number(value).ok_or_else(|| {
            At::new(
                byte + colon as u64 + 1,
                format!("the value of {:?} is not a finite number", shown(token)),
            )
        })?;
        piece.min = extreme(piece.min, Some((index, byte)), |a, b| a < b);
        piece.max = extreme(piece.max, Some((index, byte)), |a, b| a > b);
        row.push((index, value));
    }
    // Column order, and a column listed twice summed (scipy's sum_duplicates), here
    // where the row is small, so that no pass over the whole arrays has to do it.
    crate::sparse::in_column_order(row);
    piece.y.push(y);
    piece.lengths.push(row.len() as u32);
    for &(j, v) in row.iter() {
        piece.values.push(piece.indices.len(), v);
        piece.indices.push(j as u32);
    }
    Ok(())
}

/// A finite f32 from ASCII text.
fn number(text: &[u8]) -> Option<f32> {
    let v: f32 = std::str::from_utf8(text).ok()?.parse().ok()?;
    v.is_finite().then_some(v)
}

/// A non-negative decimal integer below 2⁶³.
fn integer(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 18 {
        return None;
    }
    text.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

impl Csr {
    /// Decides the index base and the width, checks every index against them, and makes
    /// the dataset.
    fn finish(self, name: &Path, options: &LibsvmOptions) -> Result<SparseDataset> {
        let locate_in_file =
            |byte: u64, message: String| At::new(byte, message).locate(name, &[], u64::MAX, 0);
        if self.y.is_empty() {
            return Err(Error::EmptyFile { path: name.into() });
        }
        let one_based = match options.base {
            IndexBase::Zero => false,
            IndexBase::One => {
                if let Some((0, byte)) = self.min {
                    return Err(locate_in_file(
                        byte,
                        "index 0 in a file read as one-based (--one-based); read it with \
                         --zero-based, or leave the base to be detected"
                            .into(),
                    ));
                }
                true
            }
            IndexBase::Auto => self.min.is_some_and(|(min, _)| min > 0),
        };
        let shift = u64::from(one_based);
        let widest = self.max.map_or(0, |(max, _)| max - shift + 1);
        let features = options.features.unwrap_or(widest.max(1) as usize);
        if let Some((max, byte)) = self.max
            && max - shift >= features as u64
        {
            return Err(locate_in_file(
                byte,
                format!(
                    "index {max} is beyond the {features} features of --num-features ({} \
                     indices)",
                    if one_based {
                        format!("one-based: 1 to {features}")
                    } else {
                        format!("zero-based: 0 to {}", features - 1)
                    }
                ),
            ));
        }
        if features as u64 > u64::from(u32::MAX) + 1 {
            return Err(Error::option(
                "features",
                features,
                "libsvm rows take at most 2³² features (u32 column indices)",
            ));
        }
        let mut indices = self.indices;
        if one_based {
            indices.iter_mut().for_each(|j| *j -= 1);
        }
        let values = self.values.any.then_some(self.values.kept);
        let dataset = SparseDataset::from_csr(self.offsets, indices, values, self.y, features)?;
        Ok(dataset.with_one_based(one_based))
    }
}

/// The line (from 1) of row `row` of a libsvm file: rows are its lines that hold more
/// than blanks and a comment. 0 when the file cannot be read again.
fn row_line(path: &Path, row: usize) -> u64 {
    let Ok(all) = std::fs::read(path) else {
        return 0;
    };
    let mut seen = 0;
    for (number, line) in all.split(|&b| b == b'\n').enumerate() {
        let line = &line[..line.iter().position(|&b| b == b'#').unwrap_or(line.len())];
        if tokens(line).next().is_some() {
            if seen == row {
                return number as u64 + 1;
            }
            seen += 1;
        }
    }
    0
}
