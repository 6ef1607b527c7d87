//! Importing a directory: its files and links, recursively; never following a link.

use super::Importer;
use crate::StorageError;
use std::path::{Path, PathBuf};

/// The permission bits of a file (`0o644` where the platform has none).
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    }
    #[cfg(not(unix))]
    {
        if meta.permissions().readonly() {
            0o444
        } else {
            0o644
        }
    }
}

/// What a non-file, non-directory, non-link entry is, for the skip report.
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device file";
        }
    }
    let _ = meta;
    "not a regular file, directory or link"
}

/// A name as UTF-8, or `ImportRefused`.
fn utf8_name(rel: &Path) -> Result<String, StorageError> {
    rel.to_str().map(str::to_owned).ok_or_else(|| {
        StorageError::refused(
            Some(&rel.to_string_lossy()),
            "a name that is not UTF-8 (stored paths are UTF-8)",
        )
    })
}

/// Feeds every entry under `root` to `importer`, directories in name order, depth first.
pub(crate) async fn walk_dir(importer: &mut Importer, root: &Path) -> Result<(), StorageError> {
    let meta = tokio::fs::metadata(root).await?;
    if !meta.is_dir() {
        return Err(StorageError::invalid(
            "import directory",
            format!("{} is not a directory", root.display()),
        ));
    }
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel_dir) = pending.pop() {
        let mut names = Vec::new();
        let mut rd = tokio::fs::read_dir(root.join(&rel_dir)).await?;
        while let Some(entry) = rd.next_entry().await? {
            names.push(entry.file_name());
        }
        names.sort();
        let mut subdirs = Vec::new();
        for name in names {
            let rel = rel_dir.join(&name);
            let full = root.join(&rel);
            let meta = tokio::fs::symlink_metadata(&full).await?;
            let ft = meta.file_type();
            if ft.is_dir() {
                subdirs.push(rel);
            } else if ft.is_symlink() {
                let path = utf8_name(&rel)?;
                let target = tokio::fs::read_link(&full).await?;
                let target = target.to_str().ok_or_else(|| {
                    StorageError::refused(Some(&path), "a link target that is not UTF-8")
                })?;
                importer.add_symlink(&path, target).await?;
            } else if ft.is_file() {
                let path = utf8_name(&rel)?;
                let mut file = tokio::fs::File::open(&full).await?;
                importer.add_file(&path, mode_of(&meta), &mut file).await?;
            } else {
                importer.skip(&rel.to_string_lossy(), special_kind(&meta));
            }
        }
        // Depth first, in name order: the stack pops the first name first.
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(())
}
