//! CSV with a header row. Files without quotes (the usual numeric export) are read in
//! chunks of 32 MiB, each split at line breaks and parsed on all cores, so only the chunk's
//! text and the growing X are in memory; files with quoted fields go through the `csv`
//! crate, one record at a time. Either way every bad cell is reported with its file, line,
//! column number and column name.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use rayon::prelude::*;

use super::columns::{Columns, Layout, Target, read_all};
use crate::data::{Dataset, LineOf, Origin};
use crate::error::{Error, Result};

/// Bytes of text parsed at a time.
const CHUNK_BYTES: u64 = 32 << 20;

/// What a column of the file is to the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Feature(usize),
    Target,
    Weight,
    Skip,
}

fn roles(layout: &Layout, columns: usize) -> Vec<Role> {
    let mut roles = vec![Role::Skip; columns];
    for (slot, &c) in layout.features.iter().enumerate() {
        roles[c] = Role::Feature(slot);
    }
    if let Some(t) = layout.target {
        roles[t] = Role::Target;
    }
    if let Some(w) = layout.weights {
        roles[w] = Role::Weight;
    }
    roles
}

/// Where the text comes from: a file, opened again for each pass over it (the scan for
/// quotes, the rows, an error's line number), or bytes in memory. `name` is what messages
/// call it.
#[derive(Clone, Copy)]
enum Source<'a> {
    File(&'a Path),
    Bytes { name: &'a Path, bytes: &'a [u8] },
}

impl<'a> Source<'a> {
    fn name(self) -> &'a Path {
        match self {
            Source::File(path) => path,
            Source::Bytes { name, .. } => name,
        }
    }

    fn open(self) -> Result<Box<dyn BufRead + 'a>> {
        Ok(match self {
            Source::File(path) => {
                let file = File::open(path).map_err(|e| Error::io(path, e))?;
                Box::new(BufReader::with_capacity(1 << 20, file))
            }
            Source::Bytes { bytes, .. } => Box::new(bytes),
        })
    }
}

/// Reads a CSV file with the columns `spec` chooses.
pub fn read(path: &Path, spec: &Columns) -> Result<Dataset> {
    read_source(Source::File(path), spec)
}

/// Reads CSV text from `reader` with the columns `spec` chooses; messages call it `name`
/// (`-` for standard input, say). The text is held in memory while it is parsed, and
/// errors about a label name its row rather than its line.
pub fn read_from(reader: impl Read, name: impl AsRef<Path>, spec: &Columns) -> Result<Dataset> {
    let name = name.as_ref();
    let bytes = read_all(reader, name)?;
    read_source(
        Source::Bytes {
            name,
            bytes: &bytes,
        },
        spec,
    )
}

fn read_source(source: Source, spec: &Columns) -> Result<Dataset> {
    let path = source.name();
    if let Target::File(_) = spec.target {
        return Err(Error::option(
            "target",
            path.display(),
            "a label file goes with .npy data; name a column",
        ));
    }
    if has_quotes(source)? {
        read_quoted(source, spec)
    } else {
        read_plain(source, spec)
    }
}

fn has_quotes(source: Source) -> Result<bool> {
    let (path, mut file) = (source.name(), source.open()?);
    loop {
        let buf = file.fill_buf().map_err(|e| Error::io(path, e))?;
        if buf.is_empty() {
            return Ok(false);
        }
        if buf.contains(&b'"') {
            return Ok(true);
        }
        let n = buf.len();
        file.consume(n);
    }
}

/// The rows read so far.
#[derive(Default)]
struct Columnar {
    x: Vec<f32>,
    y: Vec<f32>,
    weights: Vec<f32>,
}

impl Columnar {
    fn finish(
        self,
        source: Source,
        header: &[String],
        layout: &Layout,
        spec: &Columns,
    ) -> Result<Dataset> {
        let path = source.name();
        if self.y.is_empty() {
            return Err(Error::HeaderOnly { path: path.into() });
        }
        let origin = match (&spec.target, layout.target) {
            (Target::None, _) | (_, None) => Origin::Memory,
            (_, Some(t)) => match source {
                Source::File(path) => Origin::Csv {
                    path: path.into(),
                    target_name: header[t].clone(),
                    target_column: t + 1,
                    line_of: LineOf(row_line),
                },
                Source::Bytes { name, .. } => Origin::Table {
                    path: name.into(),
                    target: header[t].clone(),
                },
            },
        };
        let weights = layout.weights.map(|_| self.weights);
        Ok(Dataset::assemble(
            self.x,
            self.y,
            layout.features.len(),
            weights,
            layout.names(header),
            origin,
        ))
    }
}

/// One cell parsed: a finite number, or what is wrong with it.
pub(super) fn parse_cell(text: &str) -> Result<f32, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty cell");
    }
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("NaN or infinite value"),
        Err(_) => Err("not a number"),
    }
}

/// Reads one row's cells into `out`, given each column's role.
fn take_row<'c>(
    cells: impl Iterator<Item = &'c str>,
    roles: &[Role],
    row: &mut [f32],
    out: &mut Columnar,
    fail: &dyn Fn(usize, &str, &'static str) -> Error,
) -> Result<()> {
    let (mut label, mut weight) = (0.0, 1.0);
    for (column, (cell, role)) in cells.zip(roles).enumerate() {
        if *role == Role::Skip {
            continue;
        }
        let value = parse_cell(cell).map_err(|problem| fail(column, cell, problem))?;
        match *role {
            Role::Feature(slot) => row[slot] = value,
            Role::Target => label = value,
            Role::Weight if value < 0.0 => {
                return Err(fail(column, cell, "negative sample weight"));
            }
            Role::Weight => weight = value,
            Role::Skip => {}
        }
    }
    if out.x.capacity() - out.x.len() < row.len() {
        // Grown as a Vec would be, but refused with an error rather than an abort.
        let more = out.x.len().max(1024 * row.len());
        crate::memory::reserve(&mut out.x, more, || "X of the rows read so far".into())?;
    }
    out.x.extend_from_slice(row);
    out.y.push(label);
    out.weights.push(weight);
    Ok(())
}

fn split_header(line: &str) -> Vec<String> {
    line.trim_end_matches(['\r', '\n'])
        .split(',')
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                h
            };
            h.trim().to_string()
        })
        .collect()
}

/// The fast path: no quotes, so a record is a line and a field is what lies between commas.
fn read_plain(source: Source, spec: &Columns) -> Result<Dataset> {
    let (path, mut reader) = (source.name(), source.open()?);
    let mut first = Vec::new();
    reader
        .read_until(b'\n', &mut first)
        .map_err(|e| Error::io(path, e))?;
    let first = String::from_utf8(first).map_err(|e| Error::Csv {
        path: path.into(),
        line: 1,
        message: format!("the header is not valid UTF-8 ({e})"),
    })?;
    if first.trim().is_empty() {
        return Err(Error::EmptyFile { path: path.into() });
    }
    let header = split_header(&first);
    let layout = Layout::new(path, &header, spec)?;
    let roles = roles(&layout, header.len());
    let mut out = Columnar::default();
    let mut carry = Vec::new();
    let mut line = 2u64;
    loop {
        let mut chunk = std::mem::take(&mut carry);
        // A very long line grows the chunk: refused with an error, not an abort.
        crate::memory::reserve(&mut chunk, CHUNK_BYTES as usize, || {
            format!("{}: the line at line {line}", path.display())
        })?;
        let before = chunk.len();
        (&mut reader)
            .take(CHUNK_BYTES)
            .read_to_end(&mut chunk)
            .map_err(|e| Error::io(path, e))?;
        let eof = chunk.len() == before;
        let end = if eof {
            chunk.len()
        } else {
            match chunk.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                // A line longer than a chunk: read more of it first.
                None => {
                    carry = chunk;
                    continue;
                }
            }
        };
        carry = chunk.split_off(end);
        line = parse_lines(
            &chunk,
            line,
            path,
            &header,
            &roles,
            layout.features.len(),
            &mut out,
        )?;
        if eof {
            break;
        }
    }
    out.finish(source, &header, &layout, spec)
}

/// Parses whole lines (the first is line `first_line`) on all cores, appending their rows
/// in order. Returns the number of the line after them.
fn parse_lines(
    text: &[u8],
    first_line: u64,
    path: &Path,
    header: &[String],
    roles: &[Role],
    features: usize,
    out: &mut Columnar,
) -> Result<u64> {
    // Parts of about 1 MiB, each ending at a line break.
    let mut bounds = vec![0];
    while *bounds.last().expect("starts with 0") < text.len() {
        let from = (bounds.last().expect("non-empty") + (1 << 20)).min(text.len());
        let end = text[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| from + i + 1);
        bounds.push(end);
    }
    let parts: Vec<&[u8]> = bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect();
    let mut starts = Vec::with_capacity(parts.len());
    let mut next = first_line;
    for part in &parts {
        starts.push(next);
        next += part.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let parsed: Vec<Result<Columnar>> = parts
        .par_iter()
        .zip(&starts)
        .map(|(part, &start)| parse_part(part, start, path, header, roles, features))
        .collect();
    for part in parsed {
        let part = part?;
        let what = || format!("{}: X of the rows up to line {next}", path.display());
        crate::memory::reserve(&mut out.x, part.x.len(), what)?;
        out.x.extend(part.x);
        out.y.extend(part.y);
        out.weights.extend(part.weights);
    }
    Ok(next)
}

fn parse_part(
    part: &[u8],
    start: u64,
    path: &Path,
    header: &[String],
    roles: &[Role],
    features: usize,
) -> Result<Columnar> {
    let mut out = Columnar::default();
    let mut row = vec![0.0f32; features];
    let lines = part
        .strip_suffix(b"\n")
        .unwrap_or(part)
        .split(|&b| b == b'\n');
    for (i, raw) in lines.enumerate() {
        let line = start + i as u64;
        let text = std::str::from_utf8(raw).map_err(|e| Error::Csv {
            path: path.into(),
            line,
            message: format!("not valid UTF-8 ({e})"),
        })?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.trim().is_empty() {
            continue;
        }
        let found = text.split(',').count();
        if found != header.len() {
            return Err(Error::RaggedRow {
                path: path.into(),
                line,
                expected: header.len(),
                found,
            });
        }
        let fail = |column: usize, value: &str, problem: &'static str| Error::BadCell {
            path: path.into(),
            line,
            column: column + 1,
            name: header[column].clone(),
            value: value.to_string(),
            problem,
        };
        take_row(text.split(','), roles, &mut row, &mut out, &fail)?;
    }
    Ok(out)
}

/// The general path, for files with quoted fields: the `csv` crate, one record at a time.
fn read_quoted(source: Source, spec: &Columns) -> Result<Dataset> {
    let path = source.name();
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(source.open()?);
    let mut record = csv::StringRecord::new();
    if !csv
        .read_record(&mut record)
        .map_err(|e| csv_error(source, e))?
    {
        return Err(Error::EmptyFile { path: path.into() });
    }
    let joined: Vec<&str> = record.iter().collect();
    let header = split_header(&joined.join(","));
    if header.len() == 1 && header[0].is_empty() {
        return Err(Error::EmptyFile { path: path.into() });
    }
    // Quoted headers may hold commas: take the record's own fields.
    let header: Vec<String> = if header.len() == record.len() {
        header
    } else {
        record.iter().map(|h| h.trim().to_string()).collect()
    };
    let layout = Layout::new(path, &header, spec)?;
    let roles = roles(&layout, header.len());
    let mut out = Columnar::default();
    let mut row = vec![0.0f32; layout.features.len()];
    while csv
        .read_record(&mut record)
        .map_err(|e| csv_error(source, e))?
    {
        let line = || record.position().map_or(0, |p| line_at(source, p.byte()));
        if record.len() != header.len() {
            // A trailing blank line reads as one empty field: skip it rather than complain.
            if record.len() == 1 && record[0].trim().is_empty() {
                continue;
            }
            return Err(Error::RaggedRow {
                path: path.into(),
                line: line(),
                expected: header.len(),
                found: record.len(),
            });
        }
        let fail = |column: usize, value: &str, problem: &'static str| Error::BadCell {
            path: path.into(),
            line: line(),
            column: column + 1,
            name: header[column].clone(),
            value: value.to_string(),
            problem,
        };
        take_row(record.iter(), &roles, &mut row, &mut out, &fail)?;
    }
    out.finish(source, &header, &layout, spec)
}

/// The 1-based line of the record the csv crate places at byte `offset`. The crate's own
/// line numbers skip blank lines, and its offsets may point at the line break before the
/// record, so: count the newlines before the record's first byte that is not a line break.
/// Used for error messages only, so it reads the file again.
fn line_at(source: Source, offset: u64) -> u64 {
    let Ok(text) = source.open() else { return 0 };
    let mut newlines = 1;
    for (at, byte) in text.bytes().enumerate() {
        let Ok(byte) = byte else { return 0 };
        if at as u64 >= offset && byte != b'\r' && byte != b'\n' {
            break;
        }
        newlines += u64::from(byte == b'\n');
    }
    newlines
}

/// The line where data row `row` starts (row 0 follows the header).
pub(crate) fn row_line(path: &Path, row: usize) -> u64 {
    let Ok(file) = File::open(path) else { return 0 };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(BufReader::new(file));
    let mut record = csv::ByteRecord::new();
    for _ in 0..=row {
        if !matches!(csv.read_byte_record(&mut record), Ok(true)) {
            return 0;
        }
    }
    record
        .position()
        .map_or(0, |p| line_at(Source::File(path), p.byte()))
}

fn csv_error(source: Source, err: csv::Error) -> Error {
    let path = source.name();
    let line = err.position().map_or(0, |p| line_at(source, p.byte()));
    match err.into_kind() {
        csv::ErrorKind::Io(e) => Error::io(path, e),
        csv::ErrorKind::Utf8 { err, .. } => Error::Csv {
            path: path.into(),
            line,
            message: format!("not valid UTF-8 ({err})"),
        },
        kind => Error::Csv {
            path: path.into(),
            line,
            message: format!("{kind:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `text` as a file through both paths (as it is, and with a quoted header
    /// cell, which sends it through the csv crate), and each from memory too; all four
    /// must agree.
    fn read(text: &str, target: &str) -> Result<Dataset, String> {
        let dir = std::env::temp_dir().join(format!("downhill-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("t{}.csv", text.len()));
        let spec = Columns::target(target);
        let clean = |e: Error| e.to_string().replace(&path.display().to_string(), "t.csv");
        std::fs::write(&path, text).unwrap();
        let plain = super::read(&path, &spec).map_err(clean);
        let quoted_text = text.replacen(target, &format!("\"{target}\""), 1);
        std::fs::write(&path, &quoted_text).unwrap();
        let quoted = super::read(&path, &spec).map_err(clean);
        std::fs::remove_file(&path).unwrap();
        let memory =
            |text: &str| read_from(text.as_bytes(), "t.csv", &spec).map_err(|e| e.to_string());
        for other in [&quoted, &memory(text), &memory(&quoted_text)] {
            match (&plain, other) {
                (Ok(a), Ok(b)) => assert_eq!((a.x(), a.y()), (b.x(), b.y())),
                (Err(a), Err(b)) => assert_eq!(a, b),
                _ => panic!("the readers disagree: {plain:?} vs {other:?}"),
            }
        }
        plain
    }

    #[test]
    fn reads_features_in_file_order_without_the_target() {
        let d = read("a,y,b\n1,0,2\n3,1,4\n", "y").unwrap();
        assert_eq!((d.rows(), d.features()), (2, 2));
        assert_eq!(d.x(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(d.y(), &[0.0, 1.0]);
        assert_eq!(d.feature_names(), &["a", "b"]);
    }

    #[test]
    fn label_locations_follow_blank_lines() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("downhill-lines-{}.csv", std::process::id()));
        std::fs::write(&path, "a,y\r\n1,0\r\n\r\n2,5\r\n3,\"7\n\"\n4,4\n").unwrap();
        let d = super::read(&path, &Columns::target("y")).unwrap();
        let at = |row| {
            d.label_location(row)
                .replace(&path.display().to_string(), "t.csv")
        };
        assert_eq!(at(0), "t.csv, line 2, column 2 (y)");
        assert_eq!(at(1), "t.csv, line 4, column 2 (y)");
        assert_eq!(at(2), "t.csv, line 5, column 2 (y)");
        assert_eq!(at(3), "t.csv, line 7, column 2 (y)");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bad_cells_name_line_and_column() {
        let err = read("a,y\n1,0\n2,x\n", "y").unwrap_err();
        assert_eq!(err, "t.csv, line 3, column 2 (y): not a number: \"x\"");
        let err = read("a,y\n1,0\n\nNaN,1\n", "y").unwrap_err();
        assert!(
            err.contains("line 4, column 1 (a): NaN or infinite value"),
            "{err}"
        );
        let err = read("a,y\n1,0\n2\n", "y").unwrap_err();
        assert!(
            err.contains("line 3: expected 2 fields (as in the header), found 1"),
            "{err}"
        );
    }

    #[test]
    fn chunks_and_parts_keep_rows_and_lines_in_order() {
        // Over a megabyte of rows: several parts parsed in parallel.
        let mut text = String::from("i,y\n");
        for i in 0..200_000 {
            text.push_str(&format!("{i},{}\n", i % 2));
        }
        text.push_str("200000,x\n");
        let err = read(&text, "y").unwrap_err();
        assert_eq!(err, "t.csv, line 200002, column 2 (y): not a number: \"x\"");
        let ok = read(&text[..text.len() - 9], "y").unwrap();
        assert_eq!(ok.rows(), 200_000);
        assert!(ok.x().iter().enumerate().all(|(i, &v)| v == i as f32));
    }
}
