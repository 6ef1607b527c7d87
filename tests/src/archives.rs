//! Archive imports: tar, tar.gz, tar.zst and zip through
//! [`ate_storage::projects::SnapshotStore::import_archive`], every hostile case of issue 12
//! as a case here (each a typed refusal or a documented safe outcome, nothing half-written),
//! and the tar export read back.

use crate::assert_kind;
use crate::snapshots::{SnapEnv, noise, owner, rows_where, tenant_with_project};
use ate_core::{ErrorKind, ProjectId};
use ate_storage::StorageError;
use ate_storage::import::{ArchiveFormat, CaseCollisions, ImportLimits, ImportOptions};
use ate_storage::projects::{FileKind, FileQuery, Snapshot, SnapshotStore};
use std::io::Write;

/// One raw tar entry: a GNU header whose name and link name are copied byte for byte (the
/// `tar` crate's builder refuses hostile names, which is the point here), then the data.
pub fn raw_entry(name: &[u8], kind: tar::EntryType, data: &[u8], link: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        gnu.linkname[..link.len()].copy_from_slice(link);
        gnu.realsize.copy_from_slice(b"00000000000\0");
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A tar of `entries`, closed by the two zero blocks.
pub fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = entries.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    raw_entry(name.as_bytes(), tar::EntryType::Regular, data, b"")
}

/// A file entry with a name of any length (GNU long-name blocks), built by the `tar` crate.
fn long_file(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut h, name, data).unwrap();
    std::mem::take(b.get_mut())
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zst(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// A zip of (name, content) files.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (name, content) in files {
        w.start_file(*name, opts).unwrap();
        w.write_all(content).unwrap();
    }
    w.finish().unwrap().into_inner()
}

async fn import(
    s: &SnapEnv,
    p: ProjectId,
    t: ate_core::TenantId,
    bytes: Vec<u8>,
    format: Option<ArchiveFormat>,
    options: ImportOptions,
) -> Result<Snapshot, StorageError> {
    s.snapshots
        .import_archive(
            &owner(t),
            t,
            p,
            Box::new(std::io::Cursor::new(bytes)),
            format,
            options,
        )
        .await
}

async fn paths(s: &SnapEnv, t: ate_core::TenantId, snap: &Snapshot) -> Vec<String> {
    s.snapshots
        .list_files(&owner(t), t, snap.id, &FileQuery::new().limit(1000))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.path)
        .collect()
}

/// The same codebase as tar, tar.gz, tar.zst and zip (detected or named) imports to the
/// same files; an unknown format is `InvalidInput`.
pub async fn every_format_imports(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let big = noise(700_000, 4);
    let files: [(&str, &[u8]); 3] = [
        ("src/lib.rs", b"pub fn f() {}\n"),
        ("./docs//guide.md", b"# Guide\n"),
        ("data.bin", &big),
    ];
    let tar: Vec<u8> = tar_of(&files.iter().map(|(n, d)| file(n, d)).collect::<Vec<_>>());
    let want = vec!["data.bin", "docs/guide.md", "src/lib.rs"];
    for (bytes, format, name) in [
        (tar.clone(), None, "tar"),
        (gz(&tar), None, "tar.gz"),
        (zst(&tar), Some(ArchiveFormat::TarZst), "tar.zst"),
        (zip_of(&files), None, "zip"),
    ] {
        let snap = import(&s, p, t, bytes, format, ImportOptions::new())
            .await
            .unwrap();
        assert_eq!(snap.source, name);
        assert_eq!(paths(&s, t, &snap).await, want, "{name}");
        let back = s
            .snapshots
            .read_file(&owner(t), t, snap.id, "data.bin", None)
            .await
            .unwrap();
        assert!(back == big, "{name}");
    }
    assert_kind(
        import(
            &s,
            p,
            t,
            b"not an archive at all".to_vec(),
            None,
            ImportOptions::new(),
        )
        .await,
        ErrorKind::InvalidInput,
    );
    assert_eq!(
        ArchiveFormat::from_name("x.TGZ"),
        Some(ArchiveFormat::TarGz)
    );
    assert_eq!(ArchiveFormat::from_name("x.rar"), None);
}

/// What each hostile case must be refused for.
fn reason_of(case: &str) -> &'static str {
    match case {
        "dotdot" => "`..` component",
        "absolute" => "absolute path",
        "drive" => "drive letter",
        "backslash" => "backslash",
        "non-utf8" => "not UTF-8",
        "duplicate" => "a second entry",
        "case" => "only by case",
        "hardlink outside" => "outside the codebase",
        "hardlink forward" => "did not hold before",
        "sparse" => "sparse file",
        "deep" => "deeper than 128",
        "tar.gz bomb" | "zip bomb" => "inflates more than 200 times",
        "entries" => "more than 2 entries",
        "file size" => "a file over 200000 bytes",
        "total size" => "more than 500000 bytes in all",
        "zip size" => "an archive over 50000 bytes",
        "truncated" | "bad checksum" => "truncated or corrupt",
        "zip headers disagree" => "central directory and local headers disagree",
        _ => "(no reason listed)",
    }
}

/// Every hostile archive is refused with `ImportRefused` for its own reason, and nothing of
/// it stays.
pub async fn hostile_archives_are_refused(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let ok = file("ok.rs", &noise(300_000, 1));
    let deep = vec!["d"; 200].join("/") + "/f";
    let zeros = vec![0u8; 24 << 20];
    let mut truncated = gz(&tar_of(&[ok.clone(), file("b", &noise(300_000, 2))]));
    truncated.truncate(truncated.len() / 2);
    let mut bad_checksum = tar_of(std::slice::from_ref(&ok));
    bad_checksum[148] ^= 0x11;
    let mut disagreeing = zip_of(&[("a.rs", b"fn a() {}"), ("b.rs", b"fn b() {}")]);
    // Rename the first local header's file ("a.rs" → "z.rs"): the central directory
    // still says "a.rs".
    assert_eq!(&disagreeing[30..34], b"a.rs");
    disagreeing[30] = b'z';
    let cases: Vec<(&str, Vec<u8>, ImportOptions)> = vec![
        (
            "dotdot",
            tar_of(&[ok.clone(), file("../../etc/cron.d/x", b"x")]),
            ImportOptions::new(),
        ),
        (
            "absolute",
            tar_of(&[ok.clone(), file("/etc/passwd", b"x")]),
            ImportOptions::new(),
        ),
        (
            "drive",
            tar_of(&[ok.clone(), file("C:/Windows/x", b"x")]),
            ImportOptions::new(),
        ),
        (
            "backslash",
            tar_of(&[ok.clone(), file("..\\..\\x", b"x")]),
            ImportOptions::new(),
        ),
        (
            "non-utf8",
            tar_of(&[
                ok.clone(),
                raw_entry(b"bad\xff\xfe", tar::EntryType::Regular, b"x", b""),
            ]),
            ImportOptions::new(),
        ),
        (
            "duplicate",
            tar_of(&[ok.clone(), file("./ok.rs", b"again")]),
            ImportOptions::new(),
        ),
        (
            "case",
            tar_of(&[ok.clone(), file("OK.rs", b"x")]),
            ImportOptions::new().case_collisions(CaseCollisions::Refuse),
        ),
        (
            "hardlink outside",
            tar_of(&[
                ok.clone(),
                raw_entry(b"h", tar::EntryType::Link, b"", b"../../etc/shadow"),
            ]),
            ImportOptions::new(),
        ),
        (
            "hardlink forward",
            tar_of(&[
                raw_entry(b"h", tar::EntryType::Link, b"", b"later"),
                file("later", b"x"),
            ]),
            ImportOptions::new(),
        ),
        (
            "sparse",
            tar_of(&[
                ok.clone(),
                raw_entry(b"s", tar::EntryType::GNUSparse, b"", b""),
            ]),
            ImportOptions::new(),
        ),
        (
            "deep",
            tar_of(&[ok.clone(), long_file(&deep, b"x")]),
            ImportOptions::new(),
        ),
        (
            "tar.gz bomb",
            gz(&tar_of(&[file("zeros", &zeros)])),
            ImportOptions::new(),
        ),
        (
            "zip bomb",
            zip_of(&[("zeros", &zeros)]),
            ImportOptions::new(),
        ),
        (
            "entries",
            tar_of(&[ok.clone(), file("b", b"b"), file("c", b"c")]),
            ImportOptions::new().limits(ImportLimits::default().max_entries(2)),
        ),
        (
            "file size",
            zip_of(&[("big", &noise(300_000, 3))]),
            ImportOptions::new().limits(ImportLimits::default().max_file_bytes(200_000)),
        ),
        (
            "total size",
            tar_of(&[ok.clone(), file("b", &noise(300_000, 5))]),
            ImportOptions::new().limits(ImportLimits::default().max_total_bytes(500_000)),
        ),
        (
            "zip size",
            zip_of(&[("a", &noise(100_000, 6))]),
            ImportOptions::new().limits(ImportLimits::default().max_archive_bytes(50_000)),
        ),
        ("truncated", truncated, ImportOptions::new()),
        ("bad checksum", bad_checksum, ImportOptions::new()),
        ("zip headers disagree", disagreeing, ImportOptions::new()),
    ];
    for (name, bytes, options) in cases {
        let got = import(&s, p, t, bytes, None, options).await;
        match got {
            Err(e @ StorageError::ImportRefused { .. }) => {
                let text = e.to_string();
                assert!(text.contains(reason_of(name)), "{name}: refused as {text}");
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
        assert_eq!(
            rows_where(&s, "snapshots", "project_id", p.as_uuid()).await,
            0,
            "{name}"
        );
        assert_eq!(
            rows_where(&s, "packs", "project_id", p.as_uuid()).await,
            0,
            "{name}"
        );
    }
}

/// The documented safe outcomes: links stored (never followed), hard links copied, device
/// files and FIFOs skipped and listed, case collisions kept by default, directory entries
/// implied.
pub async fn archive_entries_have_safe_outcomes(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let archive = tar_of(&[
        raw_entry(b"src/", tar::EntryType::Directory, b"", b""),
        file("src/main.rs", b"fn main() {}\n"),
        raw_entry(b"evil", tar::EntryType::Symlink, b"", b"/etc/passwd"),
        raw_entry(b"up", tar::EntryType::Symlink, b"", b"../../../x"),
        raw_entry(b"copy.rs", tar::EntryType::Link, b"", b"src/main.rs"),
        raw_entry(b"dev/null", tar::EntryType::Char, b"", b""),
        raw_entry(b"pipe", tar::EntryType::Fifo, b"", b""),
        file("README", b"a"),
        file("readme", b"b"),
    ]);
    let snap = import(&s, p, t, archive, None, ImportOptions::new())
        .await
        .unwrap();
    assert_eq!(
        paths(&s, t, &snap).await,
        vec!["README", "copy.rs", "evil", "readme", "src/main.rs", "up"]
    );
    assert_eq!(snap.stats.skipped, 2, "{:?}", snap.stats.skipped_paths);
    assert_eq!(snap.stats.symlinks, 2);
    let o = owner(t);
    let evil = s.snapshots.file(&o, t, snap.id, "evil").await.unwrap();
    assert_eq!(evil.kind, FileKind::Symlink);
    assert_eq!(
        s.snapshots
            .read_file(&o, t, snap.id, "evil", None)
            .await
            .unwrap(),
        b"/etc/passwd"
    );
    let copy = s.snapshots.file(&o, t, snap.id, "copy.rs").await.unwrap();
    let main = s
        .snapshots
        .file(&o, t, snap.id, "src/main.rs")
        .await
        .unwrap();
    assert_eq!(
        (copy.sha256, copy.language.as_deref()),
        (main.sha256, Some("Rust"))
    );
    assert_eq!(
        s.snapshots
            .read_file(&o, t, snap.id, "copy.rs", None)
            .await
            .unwrap(),
        b"fn main() {}\n"
    );
}

/// A snapshot exported as tar imports back to the same files (long paths included).
pub async fn exports_round_trip(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let dir = tempfile::tempdir().unwrap();
    crate::snapshots::sample_tree(dir.path());
    let long = format!("{}/long.rs", vec!["segment"; 30].join("/"));
    crate::snapshots::write_tree(dir.path(), &[(long.as_str(), b"fn long() {}\n")]);
    let o = owner(t);
    let first = s
        .snapshots
        .import_dir(&o, t, p, dir.path(), Default::default())
        .await
        .unwrap();
    let mut tar = Vec::new();
    let n = s
        .snapshots
        .export_tar(&o, t, first.id, &mut tar)
        .await
        .unwrap();
    assert_eq!(n, tar.len() as u64);
    assert_eq!(tar.len() % 512, 0);
    let second = import(&s, p, t, tar, None, ImportOptions::new())
        .await
        .unwrap();
    assert_eq!(second.source, "tar");
    assert_eq!(second.new_bytes, 0, "the same content is stored once");
    let diff = s.snapshots.diff(&o, t, first.id, second.id).await.unwrap();
    assert!(
        diff.added.is_empty() && diff.removed.is_empty() && diff.changed.is_empty(),
        "{diff:?}"
    );
    assert_eq!(second.files, first.files);
    assert_eq!(
        rows_where(&s, "snapshots", "project_id", p.as_uuid()).await,
        2
    );
}

/// A tar stream made on the fly: one file of `size` pseudo-random bytes (never held whole).
struct GeneratedTar {
    header: Vec<u8>,
    size: u64,
    at: u64,
    x: u64,
}

impl tokio::io::AsyncRead for GeneratedTar {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let total = 512 + self.size + 1024;
        if self.at >= total {
            return std::task::Poll::Ready(Ok(()));
        }
        let n = (buf.remaining() as u64).min(total - self.at).min(65_536) as usize;
        let mut out = Vec::with_capacity(n);
        let mut pos = self.at;
        while out.len() < n {
            if pos < 512 {
                out.push(self.header[pos as usize]);
                pos += 1;
            } else if pos < 512 + self.size
                && pos.is_multiple_of(8)
                && out.len() + 8 <= n
                && pos + 8 <= 512 + self.size
            {
                self.x ^= self.x << 13;
                self.x ^= self.x >> 7;
                self.x ^= self.x << 17;
                out.extend_from_slice(&self.x.to_le_bytes());
                pos += 8;
            } else if pos < 512 + self.size {
                out.push(0x5a);
                pos += 1;
            } else {
                out.push(0);
                pos += 1;
            }
        }
        self.at = pos;
        buf.put_slice(&out);
        std::task::Poll::Ready(Ok(()))
    }
}

/// The peak resident memory of this process so far, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A 256 MiB archive streams through the import without the process's peak memory
/// growing by anything like its size. Run alone in its process (`tests/bounded_memory.rs`).
pub async fn large_archives_stream_in_bounded_memory(s: SnapEnv) {
    let (t, p) = tenant_with_project(&s, "acme").await;
    let size: u64 = 256 << 20;
    let mut h = tar::Header::new_gnu();
    h.set_path("big/noise.bin").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let source = GeneratedTar {
        header: h.as_bytes().to_vec(),
        size,
        at: 0,
        x: 0x2545_F491_4F6C_DD1D,
    };
    let before = peak_rss();
    let snap = s
        .snapshots
        .import_archive(
            &owner(t),
            t,
            p,
            Box::new(source),
            Some(ArchiveFormat::Tar),
            ImportOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(snap.logical_bytes, size);
    if let (Some(a), Some(b)) = (before, peak_rss()) {
        let grew = b.saturating_sub(a);
        eprintln!("peak memory grew by {} MiB", grew >> 20);
        assert!(grew < 96 << 20, "peak memory grew by {} MiB", grew >> 20);
    }
    let tail = s
        .snapshots
        .read_file(
            &owner(t),
            t,
            snap.id,
            "big/noise.bin",
            Some(size - 10..size),
        )
        .await
        .unwrap();
    assert_eq!(tail.len(), 10);
}
