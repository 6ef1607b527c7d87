//! Streaming encryption and decryption with memory bounded by a few chunks.

use super::{
    CHUNK_LEN, Cobblestone, ENCRYPTED_CHUNK_LEN, HEADER_LEN, KEY_LEN, MAX_CHUNKS, MessageKeys,
    TAG_LEN,
};
use crate::error::{StorageError, replay};
use std::io::{self, Read, Write};
use zeroize::Zeroizing;

fn counter_exhausted() -> StorageError {
    StorageError::invalid("message", "exceeds Cobblestone's 2^38-chunk (4 PiB) limit")
}

/// Push-style streaming encryption: feed plaintext with [`update`](Encryptor::update), end
/// with [`finish`](Encryptor::finish). Holds at most one chunk (16 KiB) of plaintext.
///
/// A message is complete only after `finish`: a ciphertext cut short by a crash never
/// decrypts, because the reader expects the final short chunk.
pub struct Encryptor {
    keys: MessageKeys,
    header: Option<[u8; HEADER_LEN]>,
    buf: Vec<u8>,
    counter: u64,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("chunks_written", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Starts a message under `key` bound to `context`, with a fresh random salt.
    pub fn new(
        cobblestone: &Cobblestone,
        key: &[u8],
        context: &[u8],
    ) -> Result<Self, StorageError> {
        let (keys, header) = cobblestone.begin(key, context, None)?;
        Ok(Encryptor {
            keys,
            header: Some(header),
            buf: Vec::with_capacity(ENCRYPTED_CHUNK_LEN),
            counter: 0,
        })
    }

    fn emit_header(&mut self, out: &mut Vec<u8>) {
        if let Some(header) = self.header.take() {
            out.extend_from_slice(&header);
        }
    }

    fn seal_buffer(&mut self, out: &mut Vec<u8>) -> Result<(), StorageError> {
        if self.counter >= MAX_CHUNKS {
            return Err(counter_exhausted());
        }
        self.buf.resize(self.buf.len() + TAG_LEN, 0);
        self.keys.seal_slot(self.counter, &mut self.buf);
        out.extend_from_slice(&self.buf);
        self.buf.clear();
        self.counter += 1;
        Ok(())
    }

    /// Encrypts `input`, appending any completed ciphertext to `out`.
    pub fn update(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), StorageError> {
        self.emit_header(out);
        while !input.is_empty() {
            let take = (CHUNK_LEN - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            // A full chunk is never the final one, so it can go out at once.
            if self.buf.len() == CHUNK_LEN {
                self.seal_buffer(out)?;
            }
        }
        Ok(())
    }

    /// Seals the final (short, possibly empty) chunk and appends it to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), StorageError> {
        self.emit_header(out);
        self.seal_buffer(out)
    }
}

enum DecryptState {
    /// Collecting the 56-byte header; the key and context wait for it.
    Header {
        key: Zeroizing<[u8; KEY_LEN]>,
        context: Vec<u8>,
        buf: Vec<u8>,
    },
    Body {
        keys: MessageKeys,
        buf: Vec<u8>,
        counter: u64,
    },
    Done,
    Failed(StorageError),
}

/// Push-style streaming decryption: feed ciphertext with [`update`](Decryptor::update), which
/// releases plaintext one authenticated chunk at a time, and end with
/// [`finish`](Decryptor::finish), which authenticates the final chunk (and so the length).
///
/// Until `finish` succeeds, the plaintext released so far is only a prefix that may be cut
/// short; once any call fails, every later call fails with the same error.
pub struct Decryptor {
    cobblestone: Cobblestone,
    state: DecryptState,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            DecryptState::Header { .. } => "header",
            DecryptState::Body { .. } => "body",
            DecryptState::Done => "done",
            DecryptState::Failed(_) => "failed",
        };
        f.debug_struct("Decryptor")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// Prepares to decrypt a message under `key` bound to `context`.
    pub fn new(
        cobblestone: &Cobblestone,
        key: &[u8],
        context: &[u8],
    ) -> Result<Self, StorageError> {
        let key: [u8; KEY_LEN] = key
            .try_into()
            .map_err(|_| StorageError::InvalidKeySize(key.len()))?;
        Ok(Decryptor {
            cobblestone: *cobblestone,
            state: DecryptState::Header {
                key: Zeroizing::new(key),
                context: context.to_vec(),
                buf: Vec::with_capacity(HEADER_LEN),
            },
        })
    }

    fn fail(&mut self, e: StorageError) -> StorageError {
        let copy = replay(&e);
        self.state = DecryptState::Failed(e);
        copy
    }

    /// Decrypts what it can of `input`, appending authenticated plaintext to `out`.
    pub fn update(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), StorageError> {
        self.step(input, out).map_err(|e| self.fail(e))
    }

    fn step(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), StorageError> {
        if let DecryptState::Header { key, context, buf } = &mut self.state {
            let take = (HEADER_LEN - buf.len()).min(input.len());
            buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if buf.len() < HEADER_LEN {
                return Ok(());
            }
            let keys = self.cobblestone.verify_header(&key[..], context, buf)?;
            self.state = DecryptState::Body {
                keys,
                buf: Vec::with_capacity(2 * ENCRYPTED_CHUNK_LEN),
                counter: 0,
            };
        }
        match &mut self.state {
            DecryptState::Body { keys, buf, counter } => {
                buf.extend_from_slice(input);
                let mut consumed = 0;
                // A full-size encrypted chunk is never the final one: open it now.
                while buf.len() - consumed >= ENCRYPTED_CHUNK_LEN {
                    if *counter >= MAX_CHUNKS {
                        return Err(counter_exhausted());
                    }
                    let start = out.len();
                    out.resize(start + CHUNK_LEN, 0);
                    let chunk = &buf[consumed..consumed + ENCRYPTED_CHUNK_LEN];
                    if let Err(e) = keys.open_into(*counter, chunk, &mut out[start..]) {
                        out.truncate(start);
                        return Err(e);
                    }
                    consumed += ENCRYPTED_CHUNK_LEN;
                    *counter += 1;
                }
                buf.drain(..consumed);
                Ok(())
            }
            DecryptState::Failed(e) => Err(replay(e)),
            DecryptState::Done => Err(StorageError::Integrity(
                "data after the end of the message".into(),
            )),
            DecryptState::Header { .. } => Ok(()),
        }
    }

    /// Authenticates the final chunk and appends its plaintext to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), StorageError> {
        let result = match std::mem::replace(&mut self.state, DecryptState::Done) {
            DecryptState::Header { buf, .. } => Err(StorageError::Integrity(format!(
                "ciphertext is {} bytes, shorter than the {HEADER_LEN}-byte header",
                buf.len()
            ))),
            DecryptState::Body { keys, buf, counter } => {
                if buf.len() < TAG_LEN {
                    Err(StorageError::Integrity(
                        "ciphertext is truncated: it does not end with a short final chunk".into(),
                    ))
                } else {
                    let start = out.len();
                    out.resize(start + buf.len() - TAG_LEN, 0);
                    keys.open_into(counter, &buf, &mut out[start..])
                        .inspect_err(|_| {
                            out.truncate(start);
                        })
                }
            }
            DecryptState::Done => Ok(()),
            DecryptState::Failed(e) => Err(e),
        };
        result.map_err(|e| self.fail(e))
    }
}

/// Encrypts everything written to it into an inner writer; call
/// [`finish`](EncryptWriter::finish) to write the final chunk.
#[derive(Debug)]
pub struct EncryptWriter<W: Write> {
    inner: W,
    encryptor: Encryptor,
    out: Vec<u8>,
}

impl<W: Write> EncryptWriter<W> {
    /// Starts a message into `inner`.
    pub fn new(
        cobblestone: &Cobblestone,
        key: &[u8],
        context: &[u8],
        inner: W,
    ) -> Result<Self, StorageError> {
        Ok(EncryptWriter {
            inner,
            encryptor: Encryptor::new(cobblestone, key, context)?,
            out: Vec::with_capacity(2 * ENCRYPTED_CHUNK_LEN),
        })
    }

    /// Writes the final chunk, flushes, and returns the inner writer.
    pub fn finish(mut self) -> Result<W, StorageError> {
        self.encryptor.finish(&mut self.out)?;
        self.inner.write_all(&self.out)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encryptor
            .update(buf, &mut self.out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.inner.write_all(&self.out)?;
        self.out.clear();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts an inner reader. Reads return only authenticated plaintext; end of file is
/// reported only after the final chunk authenticated; after an error every read fails.
#[derive(Debug)]
pub struct DecryptReader<R: Read> {
    inner: R,
    decryptor: Decryptor,
    plain: Vec<u8>,
    pos: usize,
    input: Vec<u8>,
    finished: bool,
}

impl<R: Read> DecryptReader<R> {
    /// Decrypts the message `inner` yields.
    pub fn new(
        cobblestone: &Cobblestone,
        key: &[u8],
        context: &[u8],
        inner: R,
    ) -> Result<Self, StorageError> {
        Ok(DecryptReader {
            inner,
            decryptor: Decryptor::new(cobblestone, key, context)?,
            plain: Vec::with_capacity(4 * CHUNK_LEN),
            pos: 0,
            input: vec![0; 4 * ENCRYPTED_CHUNK_LEN],
            finished: false,
        })
    }
}

fn to_io(e: StorageError) -> io::Error {
    match e {
        StorageError::Io(io) => io,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.plain.len() {
                let n = buf.len().min(self.plain.len() - self.pos);
                buf[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let DecryptState::Failed(e) = &self.decryptor.state {
                return Err(to_io(replay(e)));
            }
            if self.finished {
                return Ok(0);
            }
            self.plain.clear();
            self.pos = 0;
            let n = match self.inner.read(&mut self.input) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let step = if n == 0 {
                self.finished = true;
                self.decryptor.finish(&mut self.plain)
            } else {
                self.decryptor.update(&self.input[..n], &mut self.plain)
            };
            // Chunks that authenticated before the failure are a valid prefix: hand them
            // out first; the failure is then reported on every later read.
            if let Err(e) = step
                && self.plain.is_empty()
            {
                return Err(to_io(e));
            }
        }
    }
}
