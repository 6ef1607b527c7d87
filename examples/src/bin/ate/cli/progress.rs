//! Progress of long commands: an indicatif bar (bytes, bytes/s, ETA) when stderr is a
//! terminal, plain lines at most once a second otherwise, nothing with `--json`.

use ate_storage::StorageError;
use ate_storage::import::{ImportProgress, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One command's progress, shared by the readers and writers that report to it.
#[derive(Debug, Clone)]
pub(crate) struct Bar(Arc<Inner>);

/// What a bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Bytes,
    Items,
}

#[derive(Debug)]
struct Inner {
    what: &'static str,
    unit: Unit,
    mode: Mode,
    done: AtomicU64,
    total: AtomicU64,
    last_line: Mutex<Instant>,
    started: Instant,
}

#[derive(Debug)]
enum Mode {
    Terminal(ProgressBar),
    Lines,
    Quiet,
}

impl Bar {
    /// A bar for `what` ("import", "export") counting `unit`; quiet when `json` output was
    /// asked for.
    pub(crate) fn new(what: &'static str, json: bool, unit: Unit) -> Bar {
        let mode = if json {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let template = match unit {
                Unit::Bytes => {
                    "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
                }
                Unit::Items => "{msg:>9} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what);
            bar.enable_steady_tick(Duration::from_millis(200));
            Mode::Terminal(bar)
        } else {
            Mode::Lines
        };
        Bar(Arc::new(Inner {
            what,
            unit,
            mode,
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            last_line: Mutex::new(Instant::now()),
            started: Instant::now(),
        }))
    }

    /// Sets the expected total in bytes.
    pub(crate) fn set_total(&self, total: u64) {
        self.0.total.store(total, Ordering::Relaxed);
        if let Mode::Terminal(bar) = &self.0.mode {
            bar.set_length(total);
        }
    }

    /// Records that `n` bytes are done in all.
    fn set_done(&self, n: u64) {
        self.0.done.store(n, Ordering::Relaxed);
        match &self.0.mode {
            Mode::Terminal(bar) => bar.set_position(n),
            Mode::Lines => {
                let Ok(mut last) = self.0.last_line.lock() else {
                    return;
                };
                if last.elapsed() >= Duration::from_secs(1) {
                    *last = Instant::now();
                    drop(last);
                    self.line();
                }
            }
            Mode::Quiet => {}
        }
    }

    /// Records that `n` items are done in all.
    pub(crate) fn set_done_items(&self, n: u64) {
        self.set_done(n);
    }

    fn line(&self) {
        let done = self.0.done.load(Ordering::Relaxed);
        let total = self.0.total.load(Ordering::Relaxed);
        let secs = self.0.started.elapsed().as_secs_f64().max(1e-3);
        match self.0.unit {
            Unit::Bytes => eprintln!(
                "{}: {done}/{total} bytes ({:.1} MB/s)",
                self.0.what,
                done as f64 / secs / 1e6
            ),
            Unit::Items => eprintln!(
                "{}: {done}/{total} ({:.1}/s)",
                self.0.what,
                done as f64 / secs
            ),
        }
    }

    /// Ends the bar (or prints the last line).
    pub(crate) fn finish(&self) {
        match &self.0.mode {
            Mode::Terminal(bar) => bar.finish(),
            Mode::Lines => self.line(),
            Mode::Quiet => {}
        }
    }

    /// Reports an import's entries (their bytes) to the bar.
    pub(crate) fn entries(&self) -> Entries {
        Entries(self.clone())
    }

    /// Wraps `inner`, reporting the bytes read.
    pub(crate) fn reader<R>(&self, inner: R) -> Counting<R> {
        Counting {
            inner,
            bar: self.clone(),
            n: 0,
        }
    }

    /// Wraps `inner`, reporting the bytes written.
    pub(crate) fn writer<W>(&self, inner: W) -> Counting<W> {
        self.reader(inner)
    }
}

/// [`ImportProgress`] that moves the bar to the bytes imported.
#[derive(Debug)]
pub(crate) struct Entries(Bar);

impl ImportProgress for Entries {
    fn entry_added(&self, progress: Progress<'_>) -> Result<(), StorageError> {
        self.0.set_done(progress.bytes);
        Ok(())
    }
}

/// A reader or writer that counts its bytes into a [`Bar`].
#[derive(Debug)]
pub(crate) struct Counting<T> {
    inner: T,
    bar: Bar,
    n: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        if read > 0 {
            self.n += read;
            let n = self.n;
            self.bar.set_done(n);
        }
        r
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counting<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.n += n as u64;
            let total = self.n;
            self.bar.set_done(total);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The bytes of the regular files under `dir` (links not followed), for the bar's total.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}
