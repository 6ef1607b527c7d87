//! Ciphertext held in several pieces, as a blob backend hands back a long read (OpenDAL's
//! `fs` service reads at most 2 MiB at a time): chunks are decrypted from where they lie
//! instead of gathering the whole span into one buffer first.

use std::borrow::Cow;
use std::ops::Range;

/// The ciphertext of consecutive chunks in one or more pieces, in order. A chunk that
/// straddles two pieces is gathered into a buffer of its own; every other chunk is read in
/// place.
#[derive(Debug)]
pub(crate) struct Pieces<'a> {
    parts: Vec<&'a [u8]>,
    /// Where each part starts.
    starts: Vec<usize>,
    len: usize,
}

impl<'a> Pieces<'a> {
    /// The pieces `parts`, in order.
    pub(crate) fn new(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let parts: Vec<&[u8]> = parts.into_iter().collect();
        let mut starts = Vec::with_capacity(parts.len());
        let mut len = 0usize;
        for p in &parts {
            starts.push(len);
            len = len.saturating_add(p.len());
        }
        Pieces { parts, starts, len }
    }

    /// One contiguous piece.
    pub(crate) fn one(bytes: &'a [u8]) -> Self {
        Pieces::new([bytes])
    }

    /// The total length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes `range`: borrowed when one piece holds them all, else gathered. `None` when
    /// `range` reaches past the end (or is reversed).
    pub(crate) fn get(&self, range: Range<usize>) -> Option<Cow<'a, [u8]>> {
        if range.start > range.end || range.end > self.len {
            return None;
        }
        if range.is_empty() {
            return Some(Cow::Borrowed(&[]));
        }
        // The last piece starting at or before `range.start`: an empty piece shares its
        // start with the next one, so this is the non-empty piece holding that byte.
        let mut k = self.starts.partition_point(|&s| s <= range.start) - 1;
        let (part, at) = (self.parts[k], range.start - self.starts[k]);
        if let Some(whole) = part.get(at..at + range.len()) {
            return Some(Cow::Borrowed(whole));
        }
        let mut out = Vec::with_capacity(range.len());
        let mut at = range.start;
        while at < range.end {
            let (part, from) = (self.parts[k], at - self.starts[k]);
            let take = (part.len() - from).min(range.end - at);
            out.extend_from_slice(&part[from..from + take]);
            at += take;
            k += 1;
        }
        Some(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range of a message split at every shape (one piece, empty pieces, one-byte
    /// pieces, uneven pieces) reads back the same bytes; ranges inside one piece are
    /// borrowed; out-of-bounds and reversed ranges are `None`.
    #[test]
    fn ranges_read_the_same_whatever_the_split() {
        let whole: Vec<u8> = (0..40u8).collect();
        let splits: Vec<Vec<usize>> = vec![
            vec![],
            vec![0],
            vec![0, 0, 5, 5, 40],
            (1..40).collect(),
            vec![7, 8, 23, 39],
        ];
        for cuts in splits {
            let mut bounds = vec![0];
            bounds.extend(&cuts);
            bounds.push(40);
            let parts: Vec<&[u8]> = bounds.windows(2).map(|w| &whole[w[0]..w[1]]).collect();
            let p = Pieces::new(parts.iter().copied());
            assert_eq!(p.len(), 40);
            for a in 0..=40 {
                for b in a..=40 {
                    let got = p.get(a..b).expect("in bounds");
                    assert_eq!(&got[..], &whole[a..b], "{cuts:?} {a}..{b}");
                    let inside_one = parts.iter().scan(0, |s, q| {
                        let r = (*s, *s + q.len());
                        *s += q.len();
                        Some(r)
                    });
                    if inside_one.clone().any(|(s, e)| s <= a && b <= e) {
                        assert!(matches!(got, Cow::Borrowed(_)), "{cuts:?} {a}..{b}");
                    }
                }
            }
            assert!(p.get(39..41).is_none());
            assert!(p.get(41..41).is_none());
            #[allow(clippy::reversed_empty_ranges)]
            let reversed = p.get(5..4);
            assert!(reversed.is_none());
        }
        assert!(Pieces::new([]).get(0..0).is_some());
        assert!(Pieces::new([]).get(0..1).is_none());
    }
}
