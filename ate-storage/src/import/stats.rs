//! Statistics gathered while a snapshot is imported.

use super::FileClass;
use crate::projects::{
    DirectoryStats, LanguageStats, MAX_DIRECTORIES_LISTED, MAX_SKIPPED_LISTED, SnapshotStats,
};
use std::collections::HashMap;

/// Adds up files as they are imported.
#[derive(Debug, Default)]
pub(crate) struct StatsBuilder {
    languages: HashMap<String, LanguageStats>,
    /// Every directory's subtree: (files, bytes).
    directories: HashMap<String, (u64, u64)>,
    stats: SnapshotStats,
}

impl StatsBuilder {
    /// Counts a file of `size` bytes at `path`.
    pub(crate) fn file(&mut self, path: &str, size: u64, class: &FileClass) {
        if let Some(language) = &class.language {
            let entry = self
                .languages
                .entry(language.clone())
                .or_insert_with(|| LanguageStats {
                    language: language.clone(),
                    ..LanguageStats::default()
                });
            entry.files += 1;
            entry.bytes += size;
            if let Some(lines) = class.lines {
                entry.code += lines.code;
                entry.comments += lines.comments;
                entry.blanks += lines.blanks;
            }
        }
        self.stats.vendored_files += u64::from(class.vendored);
        self.stats.generated_files += u64::from(class.generated);
        self.stats.binary_files += u64::from(class.binary);
        self.directory_sizes(path, size);
    }

    fn directory_sizes(&mut self, path: &str, size: u64) {
        let mut dir = path;
        while let Some((parent, _)) = dir.rsplit_once('/') {
            let e = self.directories.entry(parent.to_owned()).or_default();
            e.0 += 1;
            e.1 += size;
            dir = parent;
        }
        let root = self.directories.entry(String::new()).or_default();
        root.0 += 1;
        root.1 += size;
    }

    /// Counts a symbolic link.
    pub(crate) fn symlink(&mut self, path: &str, size: u64) {
        self.stats.symlinks += 1;
        self.directory_sizes(path, size);
    }

    /// Records an entry that was skipped.
    pub(crate) fn skipped(&mut self, path: &str, why: &str) {
        self.stats.skipped += 1;
        if self.stats.skipped_paths.len() < MAX_SKIPPED_LISTED {
            self.stats.skipped_paths.push(format!("{path}: {why}"));
        }
    }

    /// The statistics.
    pub(crate) fn finish(&self) -> SnapshotStats {
        let mut stats = self.stats.clone();
        let mut languages: Vec<LanguageStats> = self.languages.values().cloned().collect();
        languages.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.language.cmp(&b.language)));
        stats.languages = languages;
        let mut dirs: Vec<DirectoryStats> = self
            .directories
            .iter()
            .map(|(path, (files, bytes))| DirectoryStats {
                path: path.clone(),
                files: *files,
                bytes: *bytes,
            })
            .collect();
        dirs.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path)));
        dirs.truncate(MAX_DIRECTORIES_LISTED);
        stats.largest_directories = dirs;
        stats
    }
}
