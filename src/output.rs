//! Writing output files without losing what the user had.
//!
//! A path that is (or will be) a regular file is replaced atomically: the bytes go to a new
//! temporary file beside it, which is flushed and renamed over it, so that a reader or a
//! crash never sees half a file. A symbolic link is followed: its target is replaced and
//! the link kept. A path that exists and is not a regular file (a FIFO, a character device
//! such as `/dev/stdout` or `/dev/full`) is written directly, as `cat > path` would.
//! [`same_file`] tells when an output would land on one of a command's inputs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Links followed before giving up, as Linux's `ELOOP` limit.
const MAX_LINKS: usize = 40;

/// Writes `bytes` to `path`: atomically for a regular file (through its symbolic links),
/// directly for a FIFO or a device.
pub fn write(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    write_with(path, |tmp| {
        let written = File::create_new(tmp).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
        written.map_err(|e| {
            let what = format!(
                "writing a temporary file in {} to move into its place",
                dir_of(tmp)
            );
            write_error(path, what, e)
        })
    })
}

/// Writes the file at `path` with `draw`, which is given a path to create (a new temporary
/// file with the same extension as `path`, for writers that choose the format by it), then
/// moves it into place as [`write`] does. Nothing is left behind when `draw` fails.
pub fn write_with(path: impl AsRef<Path>, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let path = path.as_ref();
    let existing = existing(path)?;
    let direct = existing.as_ref().is_some_and(|m| !m.is_file());
    let target = if direct {
        path.to_path_buf()
    } else {
        resolve(path)?
    };
    // A FIFO's or a device's directory is no place for a temporary file.
    let tmp = if direct {
        temporary_beside(&std::env::temp_dir().join(target.file_name().unwrap_or_default()))
    } else {
        temporary_beside(&target)
    };
    if let Err(e) = draw(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if direct {
        // Its readers expect the bytes, not a new file.
        let copied = std::fs::read(&tmp).and_then(|bytes| {
            let mut out = OpenOptions::new().write(true).open(path)?;
            out.write_all(&bytes)?;
            out.flush()
        });
        let _ = std::fs::remove_file(&tmp);
        return copied.map_err(|e| write_error(path, "writing to it", e));
    }
    if let Some(m) = &existing {
        // Keep the replaced file's permissions.
        let _ = std::fs::set_permissions(&tmp, m.permissions());
    }
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_error(path, format!("moving {} into its place", tmp.display()), e)
    })
}

/// Where writing `path` lands: the end of its chain of symbolic links (which need not
/// exist yet), or `path` itself.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&at).map_err(|e| Error::io(&at, e))?;
                at = match at.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(at),
        }
    }
    Err(write_error(
        path,
        format!("following more than {MAX_LINKS} symbolic links"),
        std::io::Error::other("too many levels of symbolic links"),
    ))
}

/// A fresh name beside `target`, hidden, ending in `target`'s extension.
fn temporary_beside(target: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let extension = target
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    let unique = format!(
        ".{name}.downhill-{}-{}.tmp{extension}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    target.with_file_name(unique)
}

/// Checks, before any work, that `path` can be written: a FIFO or a device as it is; else
/// a temporary file can be made (and is removed at once) where [`write`] will make its own.
pub fn check_writable(path: &Path) -> Result<()> {
    if existing(path)?.is_some_and(|m| !m.is_file()) {
        return Ok(());
    }
    let tmp = temporary_beside(&resolve(path)?);
    match File::create_new(&tmp) {
        Ok(_) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) => Err(write_error(
            path,
            format!("cannot create a file in {}", dir_of(&tmp)),
            e,
        )),
    }
}

/// What is at `path` through its links, as the kernel follows them (`/dev/stdout`
/// included): nothing, or something other than a directory, which no output replaces.
fn existing(path: &Path) -> Result<Option<std::fs::Metadata>> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(write_error(
            path,
            "it is a directory",
            std::io::Error::from(std::io::ErrorKind::IsADirectory),
        )),
        found => Ok(found.ok()),
    }
}

/// The directory `file` sits in, for messages (`.` for a bare name).
fn dir_of(file: &Path) -> String {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.display().to_string(),
        _ => ".".into(),
    }
}

fn write_error(path: &Path, what: impl Into<String>, source: std::io::Error) -> Error {
    Error::Write {
        path: path.into(),
        what: what.into(),
        source,
    }
}

/// Whether `a` and `b` name one existing file (through links, hard links included).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = (&ma, &mb);
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
    }
}

/// Refuses any output that cannot be written ([`check_writable`]) or that is the same file
/// as an input or as another output, naming both.
/// `outputs` and `inputs` pair each path with its option's name (`"--out"`); `allowed` lists
/// (output, input) option pairs that may share a file (a checkpoint resumed and rewritten).
pub fn check_outputs(
    outputs: &[(&'static str, &Path)],
    inputs: &[(&'static str, &Path)],
    allowed: &[(&'static str, &'static str)],
) -> Result<()> {
    for (_, out) in outputs {
        check_writable(out)?;
    }
    for (i, (out_name, out)) in outputs.iter().enumerate() {
        let clash = inputs
            .iter()
            .filter(|(name, _)| !allowed.contains(&(*out_name, *name)))
            .map(|(name, p)| (name, p, "input"))
            .chain(outputs[..i].iter().map(|(name, p)| (name, p, "output")))
            .find(|(_, p, _)| same_file(out, p) || (!out.exists() && *out == **p));
        if let Some((name, p, role)) = clash {
            return Err(Error::OutputClash {
                output: format!("{out_name} {}", out.display()),
                other: format!("{name} {}", p.display()),
                role,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("downhill-output-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_is_replaced_and_no_temporary_file_is_left() {
        let dir = scratch("regular");
        let path = dir.join("m.json");
        std::fs::write(&path, "old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_kept_and_its_target_written() {
        let dir = scratch("link");
        let target = dir.join("real.json");
        std::fs::write(&target, "old").unwrap();
        let link = dir.join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        // A dangling link: its target is created.
        let dangling = dir.join("dangling.json");
        std::os::unix::fs::symlink("later.json", &dangling).unwrap();
        write(&dangling, b"made").unwrap();
        assert_eq!(std::fs::read(dir.join("later.json")).unwrap(), b"made");
        assert!(same_file(&link, &target));
        assert!(!same_file(&link, &dangling));
    }

    #[test]
    fn outputs_onto_inputs_are_refused_naming_both() {
        let dir = scratch("clash");
        let data = dir.join("data.csv");
        std::fs::write(&data, "x,y\n1,2\n").unwrap();
        let e = check_outputs(&[("--out", &data)], &[("--data", &data)], &[]).unwrap_err();
        let message = e.to_string();
        assert!(
            message.contains("--out") && message.contains("--data"),
            "{message}"
        );
        let fresh = dir.join("fresh.json");
        check_outputs(&[("--out", &fresh)], &[("--data", &data)], &[]).unwrap();
        let e = check_outputs(&[("--out", &fresh), ("--checkpoint", &fresh)], &[], &[]);
        assert!(e.is_err());
        check_outputs(
            &[("--checkpoint", &data)],
            &[("--resume", &data)],
            &[("--checkpoint", "--resume")],
        )
        .unwrap();
    }
}
