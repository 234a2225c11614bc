//! Files only their owner may read, in a directory only its owner may
//! enter: what `auth.json` (a token) and `config.json` (mesh secret keys)
//! are kept in.
//!
//! Writes are atomic: a temporary file in the same directory, created with
//! mode 0600, written and synced, then renamed over the old file, so a crash
//! never leaves half a file behind. A file found with a wider mode is warned
//! about and fixed.

use crate::base::output::Output;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Makes `dir` exist with mode 0700. The error is the reason, for the
/// caller to put in its own words ("Refusing to save …").
pub fn prepare_dir(dir: &Path) -> Result<(), String> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|err| err.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |dir: &Path| {
            fs::metadata(dir)
                .map(|meta| meta.permissions().mode() & 0o777)
                .map_err(|err| err.to_string())
        };
        if mode(dir)? != 0o700 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|err| err.to_string())?;
            let now = mode(dir)?;
            if now != 0o700 {
                return Err(format!("its mode stays {now:o}"));
            }
        }
    }
    Ok(())
}

/// How reading a private file went.
pub enum Read {
    Missing,
    /// Not UTF-8: damaged.
    NotText,
    Text(String),
}

/// Reads `path`, fixing (with a warning) a mode wider than 0600. Other I/O
/// errors (permission denied, a directory) are returned.
pub fn read(path: &Path, out: &Output) -> io::Result<Read> {
    match fs::read_to_string(path) {
        Ok(text) => {
            fix_mode(path, out);
            Ok(Read::Text(text))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Read::Missing),
        Err(err) if err.kind() == io::ErrorKind::InvalidData => Ok(Read::NotText),
        Err(err) => Err(err),
    }
}

/// Replaces `dir/name` with `bytes` (plus a final newline) atomically, mode
/// 0600. The directory must exist (see [`prepare_dir`]).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let path = dir.join(name);
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    let written = create_private(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&temp, &path)
    });
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    // Make the rename itself durable (best effort: not every platform lets
    // a directory be opened).
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(path)
}

/// Creates a new file readable by its owner only.
fn create_private(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Opens (creating it 0600 if needed) a lock file and takes an exclusive
/// lock on it, held until the returned file is dropped.
pub fn lock(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    file.lock()?;
    Ok(file)
}

/// Warns about and fixes a mode wider than 0600.
#[cfg(unix)]
pub fn fix_mode(path: &Path, out: &Output) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::metadata(path) else { return };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return;
    }
    match fs::set_permissions(path, fs::Permissions::from_mode(0o600)) {
        Ok(()) => out.warn(format!(
            "{} was readable by others (mode {mode:o}); fixed it to 600",
            path.display()
        )),
        Err(err) => out.warn(format!(
            "{} is readable by others (mode {mode:o}) and could not be fixed: {err}",
            path.display()
        )),
    }
}

#[cfg(not(unix))]
pub fn fix_mode(_path: &Path, _out: &Output) {}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn atomic_writes_are_private_and_leave_no_temporary_file() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("a").join("b");
        prepare_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let path = write_atomic(&dir, "f.json", b"one").unwrap();
        write_atomic(&dir, "f.json", b"two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["f.json"]);
    }

    #[test]
    fn an_open_directory_is_made_private_and_an_open_file_fixed_on_read() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("cm");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let path = dir.join("x");
        fs::write(&path, "text").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let read = read(&path, &Output::from_env(true)).unwrap();
        assert!(matches!(read, Read::Text(t) if t == "text"));
        assert_eq!(mode(&path), 0o600);
        assert!(matches!(
            super::read(&dir.join("none"), &Output::from_env(true)).unwrap(),
            Read::Missing
        ));
    }

    #[test]
    fn a_lock_is_exclusive_until_dropped() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("lock");
        let held = lock(&path).unwrap();
        let other = fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        assert!(other.try_lock().is_ok());
        assert_eq!(mode(&path), 0o600);
    }
}
