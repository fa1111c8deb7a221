//! CSV with hashed categorical columns (`--hash-features COLS --hash-bits B`): the named
//! columns' cells are hashed into 2^B columns ([`crate::hashing`]), every other column but
//! the target and the weights is a number and comes first, in file order. The rows are
//! sparse. The file is read in chunks of 32 MiB, each cut at a line break outside quotes,
//! split into parts of about 1 MiB parsed on all cores (quoted fields included), straight
//! into the CSR arrays.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use rayon::prelude::*;

use super::columns::{Target, column_index};
use crate::data::{LineOf, Origin};
use crate::error::{Error, Result};
use crate::hashing::Hashing;
use crate::sparse::{SparseDataset, in_column_order};

/// Bytes of text read at a time, and parsed by one core.
const CHUNK_BYTES: usize = 32 << 20;
const PART_BYTES: usize = 1 << 20;

/// What to read: the labels, the weights, the hashed columns and (when a model says) the
/// numeric ones.
#[derive(Clone, Debug)]
pub struct HashedColumns {
    /// The label column, or [`Target::None`] (labels 0, for predicting).
    pub target: Target,
    pub weights: Option<String>,
    pub hashed: Vec<String>,
    pub bits: u32,
    /// The numeric columns by name (a model's); `None`: every column that is not hashed,
    /// the target or the weights, in file order.
    pub numeric: Option<Vec<String>>,
}

/// Where each column of the file goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Numeric(u32),
    Hashed,
    Target,
    Weight,
    Skip,
}

/// The rows of one part, CSR with offsets from 0.
#[derive(Default)]
struct Part {
    offsets: Vec<u64>,
    indices: Vec<u32>,
    values: Vec<f32>,
    y: Vec<f32>,
    weights: Vec<f32>,
}

/// Reads `path` with the columns `spec` names: sparse rows with the [`Hashing`] they used
/// (kept by a model fitted to them).
pub fn read(path: &Path, spec: &HashedColumns) -> Result<SparseDataset> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut first = Vec::new();
    reader
        .read_until(b'\n', &mut first)
        .map_err(|e| Error::io(path, e))?;
    let header = header(&first, path)?;
    let (roles, hashing) = layout(&header, spec, path)?;
    let mut all = Part {
        offsets: vec![0],
        ..Part::default()
    };
    let mut text: Vec<u8> = Vec::new();
    let mut line = 2u64;
    loop {
        crate::memory::reserve(&mut text, CHUNK_BYTES, || {
            format!("{}: the text at line {line}", path.display())
        })?;
        let got = (&mut reader)
            .take(CHUNK_BYTES as u64)
            .read_to_end(&mut text)
            .map_err(|e| Error::io(path, e))?;
        let at_end = got == 0;
        let cut = if at_end {
            text.len()
        } else {
            match last_record_end(&text) {
                Some(cut) => cut,
                None => continue,
            }
        };
        let chunk = &text[..cut];
        let parts = split(chunk);
        let mut starts = Vec::with_capacity(parts.len());
        for part in &parts {
            starts.push(line);
            line += part.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        let parsed: Vec<Result<Part>> = parts
            .par_iter()
            .zip(&starts)
            .map(|(part, &start)| parse(part, start, &header, &roles, &hashing, path))
            .collect();
        for part in parsed {
            append(&mut all, part?, path)?;
        }
        text.drain(..cut);
        if at_end {
            break;
        }
    }
    if all.y.is_empty() {
        return Err(Error::HeaderOnly { path: path.into() });
    }
    let features = hashing.features();
    let values = all.values.iter().any(|&v| v != 1.0).then_some(all.values);
    let weighted = roles.contains(&Role::Weight);
    let mut dataset = SparseDataset::from_csr(all.offsets, all.indices, values, all.y, features)?;
    if weighted {
        dataset = dataset.with_weights(all.weights)?;
    }
    let origin = match roles.iter().position(|r| *r == Role::Target) {
        Some(t) => Origin::Csv {
            path: path.into(),
            target_name: header[t].clone(),
            target_column: t + 1,
            line_of: LineOf(super::csv::row_line),
        },
        None => Origin::Memory,
    };
    Ok(dataset.with_origin(origin).with_hashing(hashing))
}

/// The header's names (quotes allowed), a byte-order mark dropped.
fn header(first: &[u8], path: &Path) -> Result<Vec<String>> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(first);
    let mut record = csv::StringRecord::new();
    let read = csv.read_record(&mut record).map_err(|e| Error::Csv {
        path: path.into(),
        line: 1,
        message: format!("the header: {e}"),
    })?;
    if !read || record.iter().all(|h| h.trim().is_empty()) {
        return Err(Error::EmptyFile { path: path.into() });
    }
    Ok(record
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect())
}

/// Each column's role, and the hashing (with the numeric columns' names).
fn layout(header: &[String], spec: &HashedColumns, path: &Path) -> Result<(Vec<Role>, Hashing)> {
    let column = |name: &str| column_index(path, header, name);
    let mut roles = vec![Role::Skip; header.len()];
    let claim = |roles: &mut [Role], at: usize, role: Role| -> Result<()> {
        if roles[at] != Role::Skip {
            return Err(Error::option(
                "hash-features",
                &header[at],
                "is named twice among the target, the weights and the hashed columns",
            ));
        }
        roles[at] = role;
        Ok(())
    };
    match &spec.target {
        Target::Column(name) => claim(&mut roles, column(name)?, Role::Target)?,
        Target::None => {}
        other => {
            return Err(Error::option(
                "target",
                format!("{other:?}"),
                "hashed CSV columns take their labels from a column: --target NAME",
            ));
        }
    };
    if let Some(w) = &spec.weights {
        claim(&mut roles, column(w)?, Role::Weight)?;
    }
    for name in &spec.hashed {
        claim(&mut roles, column(name)?, Role::Hashed)?;
    }
    let numeric: Vec<String> = match &spec.numeric {
        Some(names) => names.clone(),
        None => header
            .iter()
            .zip(&roles)
            .filter(|(_, r)| **r == Role::Skip)
            .map(|(h, _)| h.clone())
            .collect(),
    };
    for (slot, name) in numeric.iter().enumerate() {
        claim(&mut roles, column(name)?, Role::Numeric(slot as u32))?;
    }
    let hashing = Hashing::new(spec.hashed.clone(), spec.bits, numeric)?;
    Ok((roles, hashing))
}

/// Where the last complete record of `text` ends: after its last line break outside
/// quotes (`None`: there is none yet).
fn last_record_end(text: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut end = None;
    for (i, &b) in text.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => end = Some(i + 1),
            _ => {}
        }
    }
    end
}

/// `chunk` (whole records) in parts of about [`PART_BYTES`], each ending after a line
/// break outside quotes.
fn split(chunk: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = chunk;
    while !rest.is_empty() {
        let end = if rest.len() <= 2 * PART_BYTES {
            rest.len()
        } else {
            last_record_end(&rest[..PART_BYTES])
                .unwrap_or_else(|| last_record_end(rest).map_or(rest.len(), |e| e.max(PART_BYTES)))
        };
        let (part, more) = rest.split_at(end);
        parts.push(part);
        rest = more;
    }
    parts
}

/// Parses the records of `part` (its first line is line `start`).
fn parse(
    part: &[u8],
    start: u64,
    header: &[String],
    roles: &[Role],
    hashing: &Hashing,
    path: &Path,
) -> Result<Part> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(part);
    let mut record = csv::ByteRecord::new();
    let mut out = Part {
        offsets: vec![0],
        ..Part::default()
    };
    let mut row: Vec<(u32, f32)> = Vec::new();
    loop {
        let read = csv.read_byte_record(&mut record);
        let line = |byte: u64| start + line_in(part, byte as usize);
        let at = record.position().map_or(0, |p| p.byte());
        match read {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let byte = e.position().map_or(at, |p| p.byte());
                return Err(Error::Csv {
                    path: path.into(),
                    line: line(byte),
                    message: e.to_string(),
                });
            }
        }
        if record.len() != header.len() {
            if record.len() == 1 && record[0].trim_ascii().is_empty() {
                continue;
            }
            return Err(Error::RaggedRow {
                path: path.into(),
                line: line(at),
                expected: header.len(),
                found: record.len(),
            });
        }
        let bad = |column: usize, cell: &[u8], problem: &'static str| Error::BadCell {
            path: path.into(),
            line: line(at),
            column: column + 1,
            name: header[column].clone(),
            value: String::from_utf8_lossy(cell).into_owned(),
            problem,
        };
        let number = |column: usize, cell: &[u8]| -> Result<f32> {
            let text = std::str::from_utf8(cell).map_err(|_| bad(column, cell, "not UTF-8"))?;
            super::csv::parse_cell(text).map_err(|problem| bad(column, cell, problem))
        };
        row.clear();
        let (mut label, mut weight) = (0.0, 1.0);
        for (column, (cell, role)) in record.iter().zip(roles).enumerate() {
            match *role {
                Role::Numeric(slot) => {
                    let v = number(column, cell)?;
                    if v != 0.0 {
                        row.push((slot, v));
                    }
                }
                Role::Hashed => row.push((hashing.feature_of(&header[column], cell), 1.0)),
                Role::Target => label = number(column, cell)?,
                Role::Weight => {
                    weight = number(column, cell)?;
                    if weight < 0.0 {
                        return Err(bad(column, cell, "negative sample weight"));
                    }
                }
                Role::Skip => {}
            }
        }
        in_column_order(&mut row);
        out.indices.extend(row.iter().map(|&(j, _)| j));
        out.values.extend(row.iter().map(|&(_, v)| v));
        out.offsets.push(out.indices.len() as u64);
        out.y.push(label);
        out.weights.push(weight);
    }
    Ok(out)
}

/// The line (from 0) of the record at byte `at` of `part`: the line breaks before it,
/// and those it starts with (the csv crate may place a record at the break before it).
fn line_in(part: &[u8], at: usize) -> u64 {
    let at = at.min(part.len());
    let mut lines = part[..at].iter().filter(|&&b| b == b'\n').count() as u64;
    for &b in &part[at..] {
        match b {
            b'\n' => lines += 1,
            b'\r' => {}
            _ => break,
        }
    }
    lines
}

/// Appends `part`'s rows to `all`, its offsets moved past what `all` holds; the memory
/// is asked for first.
fn append(all: &mut Part, part: Part, path: &Path) -> Result<()> {
    let base = all.indices.len() as u64;
    let what = || format!("{}: the sparse rows read so far", path.display());
    crate::memory::reserve(&mut all.indices, part.indices.len(), what)?;
    crate::memory::reserve(&mut all.values, part.values.len(), what)?;
    all.indices.extend(part.indices);
    all.values.extend(part.values);
    all.offsets
        .extend(part.offsets[1..].iter().map(|o| o + base));
    all.y.extend(part.y);
    all.weights.extend(part.weights);
    Ok(())
}
