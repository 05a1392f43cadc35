//! Reading a blob: a bounds-checked cursor, and the error naming the row that failed.

use super::*;

/// A decoding failure inside one blob; turned into `Error::Corrupt` with the row number.
pub(super) struct Bad(pub(super) &'static str);

pub(super) type Dec<T> = std::result::Result<T, Bad>;

pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    pub(super) fn take(&mut self, n: usize) -> Dec<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(Bad("the blob is truncated"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline(always)]
    pub(super) fn array<const N: usize>(&mut self) -> Dec<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    #[inline(always)]
    pub(super) fn u8(&mut self) -> Dec<u8> {
        Ok(self.array::<1>()?[0])
    }

    #[inline(always)]
    pub(super) fn uvarint(&mut self) -> Dec<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(Bad("a length overflows 64 bits"));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Bad("a length overflows 64 bits"))
    }

    #[inline(always)]
    pub(super) fn len(&mut self) -> Dec<usize> {
        usize::try_from(self.uvarint()?).map_err(|_| Bad("a length does not fit in memory"))
    }
}

#[inline(always)]
pub(super) fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap[i / 8] & (1 << (i % 8)) != 0
}

pub(super) const SCHEMA_CHANGED: &str = "schema changed";

pub(super) fn corrupt_at(row: usize, blob: &[u8], bad: Bad, nfields: usize) -> Error {
    if bad.0 == SCHEMA_CHANGED {
        let count = blob.get(2..4).map(|b| u16::from_le_bytes([b[0], b[1]]));
        return Error::Corrupt(format!(
            "the value at row {row} was written under a different schema of the feature view \
             ({} fields, expected {nfields}; or the names or types differ): the view's schema \
             changed since it was materialized, re-materialize it",
            count.map_or("?".to_string(), |c| c.to_string()),
        ));
    }
    Error::Corrupt(format!(
        "the value at row {row} ({} bytes) cannot be decoded: {}",
        blob.len(),
        bad.0
    ))
}
