//! Archives as import sources: tar, tar.gz, tar.zst and zip, read as streams.
//!
//! The archive is parsed on a blocking thread (the `tar`, `flate2`, `zstd` and `zip` crates
//! read synchronously) that hands entries and their bytes to the importer through a small
//! bounded channel, so memory stays bounded whatever the archive's size. A zip keeps its
//! directory at its end, so a zip stream is first spooled to a temporary file (at most
//! [`ImportLimits::max_archive_bytes`]).
//!
//! What each hostile entry gets is in the [`crate::import`] docs.

use super::{ImportLimits, Importer};
use crate::StorageError;
use std::io::{Read, Seek};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;

/// The archive formats an import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveFormat {
    /// A tar archive (ustar, GNU or PAX).
    Tar,
    /// A gzip-compressed tar.
    TarGz,
    /// A zstd-compressed tar.
    TarZst,
    /// A zip archive (stored or deflated entries).
    Zip,
}

impl ArchiveFormat {
    /// The format by its first bytes (at least 262 for a plain tar), if they say.
    pub fn detect(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(ArchiveFormat::TarGz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(ArchiveFormat::TarZst)
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Some(ArchiveFormat::Zip)
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Some(ArchiveFormat::Tar)
        } else {
            None
        }
    }

    /// The format a file name's extension names (`.tar`, `.tar.gz`/`.tgz`,
    /// `.tar.zst`/`.tzst`, `.zip`), if it does.
    pub fn from_name(name: &str) -> Option<Self> {
        let n = name.to_ascii_lowercase();
        if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            Some(ArchiveFormat::TarGz)
        } else if n.ends_with(".tar.zst") || n.ends_with(".tzst") {
            Some(ArchiveFormat::TarZst)
        } else if n.ends_with(".tar") {
            Some(ArchiveFormat::Tar)
        } else if n.ends_with(".zip") {
            Some(ArchiveFormat::Zip)
        } else {
            None
        }
    }

    /// Its name, as recorded as a snapshot's source.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveFormat::Tar => "tar",
            ArchiveFormat::TarGz => "tar.gz",
            ArchiveFormat::TarZst => "tar.zst",
            ArchiveFormat::Zip => "zip",
        }
    }
}

/// What the parsing thread hands the importer.
enum Event {
    /// A file; `whole` holds all of a small file's bytes (then no `Data`/`End` follow).
    File {
        path: String,
        mode: u32,
        whole: Option<Vec<u8>>,
    },
    Data(Vec<u8>),
    End,
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    Skip {
        path: String,
        why: &'static str,
    },
}

fn refused(entry: Option<&str>, reason: impl Into<String>) -> StorageError {
    StorageError::refused(entry, reason)
}

fn corrupt(e: impl std::fmt::Display) -> StorageError {
    refused(None, format!("the archive is truncated or corrupt: {e}"))
}

fn utf8(raw: &[u8]) -> Result<String, StorageError> {
    String::from_utf8(raw.to_vec()).map_err(|_| {
        refused(
            Some(&String::from_utf8_lossy(raw)),
            "a name that is not UTF-8 (stored paths are UTF-8)",
        )
    })
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Refuses to inflate past `ratio` times the compressed bytes (once past 1 MiB).
struct RatioGuard<R> {
    inner: R,
    compressed: Arc<AtomicU64>,
    inflated: u64,
    ratio: u64,
}

impl<R: Read> Read for RatioGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.inflated += n as u64;
        let compressed = self.compressed.load(Ordering::Relaxed).max(1);
        if self.inflated > 1 << 20 && self.inflated / compressed > self.ratio {
            return Err(std::io::Error::other(RatioExceeded(self.ratio)));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct RatioExceeded(u64);

impl std::fmt::Display for RatioExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "it inflates more than {} times (a decompression bomb?)",
            self.0
        )
    }
}

impl std::error::Error for RatioExceeded {}

/// An I/O error while parsing: the ratio guard's own refusal, or a corrupt archive.
fn read_error(e: std::io::Error, entry: Option<&str>) -> StorageError {
    match e.get_ref().and_then(|i| i.downcast_ref::<RatioExceeded>()) {
        Some(r) => refused(entry, r.to_string()),
        None => match entry {
            Some(p) => refused(Some(p), format!("the archive is truncated or corrupt: {e}")),
            None => corrupt(e),
        },
    }
}

/// The sending half, with the importer gone meaning "stop".
struct Sink {
    tx: mpsc::Sender<Event>,
}

impl Sink {
    /// Sends `event`; `false` once the importer has stopped listening.
    fn send(&self, event: Event) -> bool {
        self.tx.blocking_send(event).is_ok()
    }

    /// Streams `content` as one file; `Ok(false)` once the importer stopped listening. A
    /// file of at most [`INLINE_BYTES`] goes in one message.
    fn file(
        &self,
        path: String,
        mode: u32,
        size_hint: u64,
        content: &mut dyn Read,
    ) -> Result<bool, StorageError> {
        if size_hint <= INLINE_BYTES {
            let mut whole = Vec::with_capacity(size_hint as usize);
            content
                .take(INLINE_BYTES + 1)
                .read_to_end(&mut whole)
                .map_err(|e| read_error(e, Some(&path)))?;
            if whole.len() as u64 <= INLINE_BYTES {
                return Ok(self.send(Event::File {
                    path,
                    mode,
                    whole: Some(whole),
                }));
            }
            // Longer than it said: stream the rest after what was read.
            if !self.send(Event::File {
                path: path.clone(),
                mode,
                whole: None,
            }) || !self.send(Event::Data(whole))
            {
                return Ok(false);
            }
        } else if !self.send(Event::File {
            path: path.clone(),
            mode,
            whole: None,
        }) {
            return Ok(false);
        }
        loop {
            let mut buf = vec![0u8; 256 * 1024];
            let n = content
                .read(&mut buf)
                .map_err(|e| read_error(e, Some(&path)))?;
            if n == 0 {
                return Ok(self.send(Event::End));
            }
            buf.truncate(n);
            if !self.send(Event::Data(buf)) {
                return Ok(false);
            }
        }
    }
}

/// Files up to this size go to the importer in one message.
const INLINE_BYTES: u64 = 256 * 1024;

/// Parses a tar stream, sending its entries.
fn parse_tar(input: &mut dyn Read, sink: &Sink, limits: &ImportLimits) -> Result<(), StorageError> {
    let mut archive = tar::Archive::new(input);
    let mut entries = 0u64;
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(|e| read_error(e, None))?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(refused(
                None,
                format!("more than {} entries", limits.max_entries),
            ));
        }
        let path = utf8(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let link = || -> Result<String, StorageError> {
            let raw = entry
                .link_name_bytes()
                .ok_or_else(|| refused(Some(&path), "a link without a target"))?;
            utf8(&raw)
        };
        let go_on = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                sink.file(path, mode, size, &mut entry)?
            }
            tar::EntryType::Symlink => {
                let target = link()?;
                sink.send(Event::Symlink { path, target })
            }
            tar::EntryType::Link => {
                let target = link()?;
                sink.send(Event::Hardlink { path, target })
            }
            tar::EntryType::Directory => true,
            tar::EntryType::Char | tar::EntryType::Block => sink.send(Event::Skip {
                path,
                why: "a device file",
            }),
            tar::EntryType::Fifo => sink.send(Event::Skip {
                path,
                why: "a FIFO",
            }),
            tar::EntryType::GNUSparse => {
                return Err(refused(Some(&path), "a sparse file (not supported)"));
            }
            // Extension headers are read by the `tar` crate itself; anything else is
            // an entry kind this import does not store.
            _ => sink.send(Event::Skip {
                path,
                why: "an entry kind that is not stored",
            }),
        };
        if !go_on {
            return Ok(());
        }
    }
    Ok(())
}

/// Parses a (spooled) zip, sending its entries.
fn parse_zip<R: Read + Seek>(
    input: R,
    sink: &Sink,
    limits: &ImportLimits,
) -> Result<(), StorageError> {
    let mut zip = zip::ZipArchive::new(input).map_err(corrupt)?;
    zip.validate_header_consistency().map_err(|e| {
        refused(
            None,
            format!("the zip's central directory and local headers disagree: {e}"),
        )
    })?;
    if zip.len() as u64 > limits.max_entries {
        return Err(refused(
            None,
            format!("more than {} entries", limits.max_entries),
        ));
    }
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| match e {
            zip::result::ZipError::UnsupportedArchive(why) => {
                refused(None, format!("an entry this import cannot read: {why}"))
            }
            other => corrupt(other),
        })?;
        let path = utf8(entry.name_raw())?;
        if entry.encrypted() {
            return Err(refused(Some(&path), "an encrypted entry"));
        }
        if entry.is_dir() {
            continue;
        }
        let compressed = Arc::new(AtomicU64::new(entry.compressed_size()));
        let mode = entry.unix_mode().unwrap_or(0o644) & 0o7777;
        let go_on = if entry.is_symlink() {
            let mut target = Vec::new();
            (&mut entry)
                .take(limits.max_path_bytes as u64 + 1)
                .read_to_end(&mut target)
                .map_err(|e| read_error(e, Some(&path)))?;
            let target = utf8(&target)?;
            sink.send(Event::Symlink { path, target })
        } else {
            let mut guarded = RatioGuard {
                inner: &mut entry,
                compressed,
                inflated: 0,
                ratio: limits.max_ratio,
            };
            let size = guarded.inner.size();
            sink.file(path, mode, size, &mut guarded)?
        };
        if !go_on {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads what the parsing thread sends for one file, as an [`AsyncRead`].
struct FileBytes<'a> {
    rx: &'a mut mpsc::Receiver<Event>,
    pending: Vec<u8>,
    at: usize,
    done: bool,
}

impl AsyncRead for FileBytes<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        loop {
            if self.at < self.pending.len() {
                let n = buf.remaining().min(self.pending.len() - self.at);
                let at = self.at;
                buf.put_slice(&self.pending[at..at + n]);
                self.at += n;
                return Poll::Ready(Ok(()));
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Event::Data(bytes))) => {
                    self.pending = bytes;
                    self.at = 0;
                }
                Poll::Ready(Some(Event::End)) => self.done = true,
                Poll::Ready(_) => {
                    return Poll::Ready(Err(std::io::Error::other(
                        "the archive reader stopped in the middle of an entry",
                    )));
                }
            }
        }
    }
}

/// Imports the archive read from `input` into `importer` (not committed).
pub(crate) async fn import_archive(
    importer: &mut Importer,
    mut input: Box<dyn AsyncRead + Send + Unpin>,
    format: ArchiveFormat,
    limits: &ImportLimits,
) -> Result<(), StorageError> {
    // At most 32 messages of at most 256 KiB each are in flight.
    let (tx, mut rx) = mpsc::channel::<Event>(32);
    let limits = limits.clone();
    let parser = match format {
        ArchiveFormat::Zip => {
            // Spool: the directory is at the end.
            let spool = tempfile::tempfile()?;
            let mut file = tokio::fs::File::from_std(spool);
            let copied = tokio::io::copy(
                &mut tokio::io::AsyncReadExt::take(&mut input, limits.max_archive_bytes + 1),
                &mut file,
            )
            .await?;
            if copied > limits.max_archive_bytes {
                return Err(refused(
                    None,
                    format!("an archive over {} bytes", limits.max_archive_bytes),
                ));
            }
            file.flush().await?;
            let mut spool = file.into_std().await;
            spool.rewind()?;
            tokio::task::spawn_blocking(move || parse_zip(spool, &Sink { tx }, &limits))
        }
        tar_format => {
            let bridge = tokio_util::io::SyncIoBridge::new(input);
            tokio::task::spawn_blocking(move || {
                let compressed = Arc::new(AtomicU64::new(0));
                let raw = Counting {
                    inner: bridge,
                    count: compressed.clone(),
                };
                let sink = Sink { tx };
                let guard = |inner: Box<dyn Read>| RatioGuard {
                    inner,
                    compressed: compressed.clone(),
                    inflated: 0,
                    ratio: limits.max_ratio,
                };
                match tar_format {
                    ArchiveFormat::TarGz => {
                        let mut r = guard(Box::new(flate2::read::GzDecoder::new(raw)));
                        parse_tar(&mut r, &sink, &limits)
                    }
                    ArchiveFormat::TarZst => {
                        let decoder = zstd::stream::read::Decoder::new(raw).map_err(corrupt)?;
                        let mut r = guard(Box::new(decoder));
                        parse_tar(&mut r, &sink, &limits)
                    }
                    _ => {
                        let mut r = raw;
                        parse_tar(&mut r, &sink, &limits)
                    }
                }
            })
        }
    };
    let fed = feed(importer, &mut rx).await;
    drop(rx); // a parser still sending stops
    let parsed = parser
        .await
        .map_err(|e| StorageError::Io(std::io::Error::other(format!("archive reader: {e}"))))?;
    // The importer's own refusal comes first; otherwise the parser's.
    fed?;
    parsed
}

/// Hands the parsed entries to the importer.
async fn feed(importer: &mut Importer, rx: &mut mpsc::Receiver<Event>) -> Result<(), StorageError> {
    while let Some(event) = rx.recv().await {
        match event {
            Event::File {
                path,
                mode,
                whole: Some(whole),
            } => {
                importer.add_file(&path, mode, &mut &whole[..]).await?;
            }
            Event::File {
                path,
                mode,
                whole: None,
            } => {
                let mut bytes = FileBytes {
                    rx: &mut *rx,
                    pending: Vec::new(),
                    at: 0,
                    done: false,
                };
                match importer.add_file(&path, mode, &mut bytes).await {
                    Ok(_) => {}
                    // The parser failed mid-entry: its error is the one to report.
                    Err(StorageError::Io(_)) if !bytes.done => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            Event::Symlink { path, target } => {
                importer.add_symlink(&path, &target).await?;
            }
            Event::Hardlink { path, target } => importer.add_hardlink(&path, &target).await?,
            Event::Skip { path, why } => importer.skip(&path, why),
            Event::Data(_) | Event::End => {
                return Err(StorageError::Integrity(
                    "the archive reader sent bytes outside an entry".into(),
                ));
            }
        }
    }
    Ok(())
}
