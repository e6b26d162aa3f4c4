//! File plumbing for the PKI: private directories, bounded reads into
//! zeroized buffers, the ssh-style mode check on secret files, atomic
//! replaces (temp + rename) and atomic no-clobber creates and moves
//! (temp + hard link), so a reader in another process never sees half a file.
use super::error::PkiError;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use zeroize::Zeroizing;

/// Longest key file read: 64 hex characters, a newline and slack.
const MAX_FILE: usize = 256;

/// Creates `dir` and its missing parents, mode 0700 on unix.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), PkiError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| PkiError::io(dir, e))
}

/// Reads a small file into a buffer zeroized on drop; `None` if it does not
/// exist. With `private`, refuses a file that group or others may access.
pub(crate) fn read_small(
    path: &Path,
    private: bool,
) -> Result<Option<Zeroizing<Vec<u8>>>, PkiError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PkiError::io(path, e)),
    };
    if private {
        check_private(path, &f)?;
    }
    let mut buf = Zeroizing::new(vec![0u8; MAX_FILE + 1]);
    let mut len = 0;
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(PkiError::io(path, e)),
        }
    }
    if len > MAX_FILE {
        return Err(PkiError::bad_file(path));
    }
    buf.truncate(len);
    Ok(Some(buf))
}

/// Decodes a file's 64 hex characters (surrounding whitespace allowed).
pub(crate) fn decode_hex32(path: &Path, text: &[u8]) -> Result<Zeroizing<[u8; 32]>, PkiError> {
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim_ascii(), out.as_mut_slice())
        .map_err(|_| PkiError::bad_file(path))?;
    Ok(out)
}

#[cfg(unix)]
fn check_private(path: &Path, f: &File) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = f
        .metadata()
        .map_err(|e| PkiError::io(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(PkiError::TooOpen {
            path: path.display().to_string(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _f: &File) -> Result<(), PkiError> {
    Ok(())
}

/// A temporary name beside `path`. It holds a `~`, which no valid id does,
/// so listings skip it and it never collides with a key file.
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!("{name}~{}~{n}.tmp", std::process::id()))
}

/// Writes `data` to a fresh temporary file beside `path` (mode `mode`), synced.
fn write_temp(path: &Path, data: &[u8], mode: u32) -> Result<PathBuf, PkiError> {
    let tmp = temp_path(path);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(PkiError::io(path, e))
        }
    }
}

/// Replaces `path` with `data` atomically (temp file + rename).
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    let tmp = write_temp(path, data, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::io(path, e));
    }
    sync_parent(path);
    Ok(())
}

/// Creates `path` holding `data`, atomically and only if it does not exist.
/// Returns false (and changes nothing) if it already exists.
pub(crate) fn create_new(path: &Path, data: &[u8], mode: u32) -> Result<bool, PkiError> {
    let tmp = write_temp(path, data, mode)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_parent(path);
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(PkiError::io(path, e)),
    }
}

/// Moves `from` to `to` only if `to` does not exist (hard link, then unlink):
/// the file is never absent from both. Returns false if `to` exists.
pub(crate) fn move_new(from: &Path, to: &Path) -> Result<bool, PkiError> {
    match fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(PkiError::io(from, e)),
    }
    remove(from)?;
    sync_parent(to);
    Ok(true)
}

/// Removes a file; true if it existed.
pub(crate) fn remove(path: &Path) -> Result<bool, PkiError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(PkiError::io(path, e)),
    }
}

/// Best effort: makes a rename or link durable. Failure only costs durability.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::testdir::TestDir;

    #[test]
    fn create_new_never_clobbers_and_leaves_no_temp() {
        let d = TestDir::new("fs-create");
        let p = d.path().join("a");
        assert!(create_new(&p, b"one", 0o644).unwrap());
        assert!(!create_new(&p, b"two", 0o644).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"three", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn move_new_refuses_an_existing_target() {
        let d = TestDir::new("fs-move");
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::write(&a, "A").unwrap();
        fs::write(&b, "B").unwrap();
        assert!(!move_new(&a, &b).unwrap());
        assert_eq!(fs::read(&b).unwrap(), b"B");
        fs::remove_file(&b).unwrap();
        assert!(move_new(&a, &b).unwrap());
        assert!(!a.exists() && fs::read(&b).unwrap() == b"A");
    }

    #[test]
    fn reads_are_bounded() {
        let d = TestDir::new("fs-read");
        let p = d.path().join("big");
        fs::write(&p, vec![b'a'; MAX_FILE + 1]).unwrap();
        assert!(matches!(
            read_small(&p, false),
            Err(PkiError::BadKeyFile { .. })
        ));
        assert!(read_small(&d.path().join("none"), false).unwrap().is_none());
    }
}
