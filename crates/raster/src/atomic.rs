//! Outputs appear whole or not at all: every file changedet writes goes first to a hidden file
//! beside its target (the same folder, so that the rename is atomic), which is renamed onto the
//! target once complete. A crash or an error leaves nothing under the target's name, and the
//! hidden file is removed when dropped.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::TempPath;

/// Staged files not yet committed, so that an interrupted process (Ctrl-C, SIGTERM: no
/// destructor runs) can remove them with [`remove_unfinished`].
static STAGED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn staged_files() -> std::sync::MutexGuard<'static, Option<HashSet<PathBuf>>> {
    STAGED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes the staged files this process has not committed (a signal handler's work before the
/// process ends) and returns those that existed.
pub fn remove_unfinished() -> Vec<PathBuf> {
    let paths: Vec<PathBuf> = staged_files().take().unwrap_or_default().into_iter().collect();
    paths.into_iter().filter(|p| std::fs::remove_file(p).is_ok()).collect()
}

/// An empty hidden file `.NAME.RANDOM.SUFFIX` beside `target` (rw-r--r--: outputs are for
/// sharing, unlike the private default of temporary files), deleted when dropped unless
/// [`commit`]ted. Writers that open files by name (GDAL) write to its path.
pub fn staged_path(target: &Path, suffix: &str) -> io::Result<TempPath> {
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("output");
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(&format!(".{suffix}"))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map(|f| f.into_temp_path())
        .inspect(|path| {
            staged_files().get_or_insert_with(HashSet::new).insert(path.to_path_buf());
        })
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create a file in {}: {e}", dir.display())))
}

/// Removes files [`staged_path`] made for `target` that a killed process left behind (a
/// SIGKILL gives no chance to drop them); returns how many.
pub fn remove_abandoned(target: &Path) -> io::Result<usize> {
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let prefix = format!(".{}.", target.file_name().and_then(|n| n.to_str()).unwrap_or("output"));
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with(&prefix) && name.ends_with(".part") && path.is_file() {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Renames a staged file onto `target`.
pub fn commit(staged: TempPath, target: &Path) -> io::Result<()> {
    if let Some(set) = staged_files().as_mut() {
        set.remove(&staged.to_path_buf());
    }
    staged.persist(target).map_err(|e| io::Error::new(e.error.kind(), format!("cannot rename into place: {}", e.error)))
}

/// Writes `target` by `write` into a staged file, then renames it into place.
pub fn write_with<E: From<io::Error>>(target: &Path, write: impl FnOnce(&mut File) -> Result<(), E>) -> Result<(), E> {
    let staged = staged_path(target, "part")?;
    let mut file = File::options().write(true).open(&staged)?;
    write(&mut file)?;
    drop(file);
    commit(staged, target)?;
    Ok(())
}

/// The one rule of every command that writes outputs: an existing output is replaced only when
/// the user asked for it (`--overwrite`); otherwise the command stops before any work, naming
/// the first one that exists.
pub fn check_replaceable<P: AsRef<Path>>(targets: impl IntoIterator<Item = P>, overwrite: bool) -> Result<(), String> {
    match targets.into_iter().find(|t| t.as_ref().exists()) {
        Some(existing) if !overwrite => Err(format!("{} exists; pass --overwrite to replace it", existing.as_ref().display())),
        _ => Ok(()),
    }
}

/// [`write_with`] for bytes already in memory.
pub fn write_bytes(target: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(target, |file| io::Write::write_all(file, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_nothing_and_a_finished_one_replaces_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.json");
        std::fs::write(&target, "old").unwrap();
        let failed = write_with(&target, |file| {
            io::Write::write_all(file, b"partial")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the staged file was not removed");
        write_bytes(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn files_abandoned_by_a_killed_writer_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("last.safetensors");
        // What a SIGKILL leaves: the staged file, never dropped.
        staged_path(&target, "part").unwrap().keep().unwrap();
        let others = [".best.safetensors.x1.part", "last.safetensors", ".last.safetensors.notes"];
        for name in others {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        assert_eq!(remove_abandoned(&target).unwrap(), 1);
        let mut left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [".best.safetensors.x1.part", ".last.safetensors.notes", "last.safetensors"]);
    }
}
