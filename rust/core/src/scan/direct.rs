//! A direct page reader for the common column shape: flat, primitive, fixed width (int32,
//! int64, float, double, date32, timestamps), PLAIN or dictionary encoded.
//!
//! Why: a selective scan decompresses every page anyway (pyarrow writes no page index), so
//! what the generic record reader adds on top (level buffers, a value buffer per batch,
//! `skip_records` bookkeeping, the per-page dictionary copy) was about a third of the CPU
//! of a 10M-row x 10k-entity join. Here the decompressed page is read in place: the key
//! test runs straight on its values, and a row selection copies out only its rows' values.
//!
//! Every function returns `Ok(None)` for anything outside that shape (an encoding, level
//! layout or type it does not know), and the caller falls back to the parquet crate's
//! reader; `BANQUET_SCAN_DIRECT=0` forces the fallback everywhere (for comparison).

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use arrow_array::{make_array, ArrayRef};
use arrow_buffer::bit_chunk_iterator::UnalignedBitChunk;
use arrow_buffer::{BooleanBuffer, BooleanBufferBuilder, MutableBuffer};
use arrow_data::ArrayData;
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use parquet::basic::{Encoding, LogicalType, TimeUnit as PqUnit, Type as Physical};
use parquet::column::page::{Page, PageReader};
use parquet::file::reader::ChunkReader;
use parquet::file::serialized_reader::SerializedPageReader;

use super::files::FileEntry;
use super::keyset::IntProbe;
use super::read::group_rows;
use crate::{Error, Result};

/// False when `BANQUET_SCAN_DIRECT=0`: every read goes through the parquet crate's reader.
pub(crate) fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("BANQUET_SCAN_DIRECT").map_or(true, |v| v != "0"))
}

/// A column the direct reader can decode: its leaf, whether it has nulls at all, its value
/// width in bytes and the Arrow type it reads as.
pub(crate) struct Direct {
    pub leaf: usize,
    nullable: bool,
    width: usize,
    data_type: DataType,
}

impl Direct {
    /// Column `name` of `file` if it has the shape this module reads, in row group `rg`.
    pub(crate) fn of(file: &FileEntry, rg: usize, name: &str) -> Option<Direct> {
        if !enabled() {
            return None;
        }
        let meta = file.meta.metadata();
        let descr = meta.file_metadata().schema_descr();
        let root = file.meta.schema().index_of(name).ok()?;
        let data_type = file.meta.schema().field(root).data_type().clone();
        let mut leaves = (0..descr.num_columns()).filter(|&l| descr.get_column_root_idx(l) == root);
        let leaf = leaves.next()?;
        if leaves.next().is_some() {
            return None;
        }
        let col = descr.column(leaf);
        if col.max_rep_level() != 0 || col.max_def_level() > 1 || col.path().parts().len() != 1 {
            return None;
        }
        let logical = col.logical_type_ref();
        let signed = |bits: i8| match logical {
            None => true,
            Some(LogicalType::Integer(t)) => t.bit_width == bits && t.is_signed,
            _ => false,
        };
        let width = match (col.physical_type(), &data_type, logical) {
            (Physical::INT64, DataType::Int64, _) if signed(64) => 8,
            (Physical::INT64, DataType::Timestamp(u, _), Some(LogicalType::Timestamp(t)))
                if same_unit(u, &t.unit) =>
            {
                8
            }
            (Physical::INT32, DataType::Int32, _) if signed(32) => 4,
            (Physical::INT32, DataType::Date32, Some(LogicalType::Date)) => 4,
            (Physical::DOUBLE, DataType::Float64, None) => 8,
            (Physical::FLOAT, DataType::Float32, None) => 4,
            _ => return None,
        };
        let chunk = meta.row_group(rg).column(leaf);
        let known = |e: Encoding| {
            matches!(
                e,
                Encoding::PLAIN
                    | Encoding::PLAIN_DICTIONARY
                    | Encoding::RLE_DICTIONARY
                    | Encoding::RLE
            )
        };
        if !chunk.encodings().all(known) {
            return None;
        }
        Some(Direct {
            leaf,
            nullable: col.max_def_level() == 1,
            width,
            data_type,
        })
    }

    /// True when the values compare as the key set's `i64` keys (integers, not timestamps,
    /// whose key rule is their whole second).
    pub(crate) fn is_int_key(&self) -> bool {
        matches!(self.data_type, DataType::Int64 | DataType::Int32)
    }

    /// The values of `rows` (sorted, distinct row indices of row group `rg`), in that order.
    pub(crate) fn take<R: ChunkReader + 'static>(
        &self,
        reader: Arc<R>,
        file: &FileEntry,
        rg: usize,
        rows: &[usize],
    ) -> Result<Option<ArrayRef>> {
        let w = self.width;
        let mut values = MutableBuffer::with_capacity(rows.len() * w);
        let mut valid = BooleanBufferBuilder::new(rows.len());
        let at = Cell::new(0);
        let done = self.pages(
            reader,
            file,
            rg,
            |first, n| {
                let from = at.get();
                let end = from + rows[from..].partition_point(|&r| r < first + n);
                (end > from).then(|| (end, rows[end - 1] + 1 - first))
            },
            |first, page, end| {
                let mut counted = (0, 0); // (row in page, valid rows before it)
                for &r in &rows[at.get()..end] {
                    let i = r - first;
                    match page.value_index(i, &mut counted) {
                        Some(vi) => {
                            values.extend_from_slice(
                                page.value(vi, w).ok_or_else(|| short(file, rg))?,
                            );
                            valid.append(true);
                        }
                        None => {
                            values.extend_zeros(w);
                            valid.append(false);
                        }
                    }
                }
                at.set(end);
                Ok(end == rows.len())
            },
        )?;
        if !done {
            return Ok(None);
        }
        if at.get() != rows.len() {
            return Err(corrupt(file, rg, "rows past the end of the column chunk"));
        }
        self.array(values, valid.finish(), rows.len()).map(Some)
    }

    /// The mask over row group `rg` of the rows whose value `probe` holds, and those rows'
    /// values (a null matches nothing).
    pub(crate) fn matching<R: ChunkReader + 'static>(
        &self,
        reader: Arc<R>,
        file: &FileEntry,
        rg: usize,
        probe: &IntProbe<'_>,
    ) -> Result<Option<(ArrayRef, BooleanBuffer)>> {
        let n_rows = group_rows(file, rg);
        let w = self.width;
        let mut mask = BooleanBufferBuilder::new(n_rows);
        let mut kept = MutableBuffer::new(0);
        let mut dict_hits: Vec<bool> = Vec::new();
        let mut seen = 0;
        let done = self.pages(
            reader,
            file,
            rg,
            |_, n| Some((0, n)),
            |_, page, _| {
                let n = page.rows;
                if let (Values::Dict { dict, .. }, true) = (&page.values, dict_hits.is_empty()) {
                    dict_hits = (0..dict.len() / w)
                        .map(|k| probe.contains(int(&dict[k * w..], w)))
                        .collect();
                }
                let hits = match (&page.values, &page.valid) {
                    (Values::Plain(v), None) => {
                        if v.len() < n * w {
                            return Err(corrupt(file, rg, "a page holds fewer values than rows"));
                        }
                        BooleanBuffer::collect_bool(n, |i| probe.contains(int(&v[i * w..], w)))
                    }
                    _ => {
                        let mut counted = (0, 0);
                        let mut out = BooleanBufferBuilder::new(n);
                        for i in 0..n {
                            let hit = match page.value_index(i, &mut counted) {
                                Some(vi) => match &page.values {
                                    Values::Dict { idx, .. } => {
                                        let k =
                                            idx.get(vi).ok_or_else(|| short(file, rg))? as usize;
                                        *dict_hits.get(k).ok_or_else(|| short(file, rg))?
                                    }
                                    Values::Plain(_) => {
                                        let v = page.value(vi, w).ok_or_else(|| short(file, rg))?;
                                        probe.contains(int(v, w))
                                    }
                                },
                                None => false,
                            };
                            out.append(hit);
                        }
                        out.finish()
                    }
                };
                if let (Values::Plain(v), None) = (&page.values, &page.valid) {
                    // no null: runs of hits are runs of values
                    for (from, to) in hits.set_slices() {
                        kept.extend_from_slice(&v[from * w..to * w]);
                    }
                } else {
                    let mut counted = (0, 0);
                    for i in hits.set_indices() {
                        let vi = page
                            .value_index(i, &mut counted)
                            .expect("a hit is not null");
                        kept.extend_from_slice(page.value(vi, w).ok_or_else(|| short(file, rg))?);
                    }
                }
                mask.append_buffer(&hits);
                seen += n;
                Ok(seen == n_rows)
            },
        )?;
        if !done || seen != n_rows {
            return Ok(None);
        }
        let mask = mask.finish();
        let n_kept = mask.count_set_bits();
        let all = BooleanBuffer::new_set(n_kept);
        Ok(Some((self.array(kept, all, n_kept)?, mask)))
    }

    fn array(&self, values: MutableBuffer, valid: BooleanBuffer, n: usize) -> Result<ArrayRef> {
        let nulls = (valid.count_set_bits() != n).then(|| valid.into_inner());
        let data = ArrayData::builder(self.data_type.clone())
            .len(n)
            .add_buffer(values.into())
            .null_bit_buffer(nulls)
            .build()?;
        Ok(make_array(data))
    }

    /// Walks the pages of the column chunk. `wants(first_row, rows)` says whether a data page
    /// is needed (Some((token, rows needed from its start)): decode it; None: skip it
    /// undecompressed); `visit(first_row, page, token)` reads a decoded one and returns true
    /// when nothing more is needed. Returns false when a page is outside the shape this
    /// module reads.
    fn pages<R: ChunkReader + 'static>(
        &self,
        reader: Arc<R>,
        file: &FileEntry,
        rg: usize,
        mut wants: impl FnMut(usize, usize) -> Option<(usize, usize)>,
        mut visit: impl FnMut(usize, &Decoded<'_>, usize) -> Result<bool>,
    ) -> Result<bool> {
        let group = file.meta.metadata().row_group(rg);
        let bad = |e: parquet::errors::ParquetError| {
            Error::Source(format!(
                "{}: row group {rg} cannot be read: {e}",
                file.display
            ))
        };
        let mut pages = SerializedPageReader::new(
            reader,
            group.column(self.leaf),
            group.num_rows().max(0) as usize,
            None,
        )
        .map_err(bad)?;
        let mut dict: Option<Bytes> = None;
        let mut first = 0;
        let mut idx: Vec<Run> = Vec::new();
        while let Some(meta) = pages.peek_next_page().map_err(bad)? {
            if meta.is_dict {
                match pages.get_next_page().map_err(bad)? {
                    Some(Page::DictionaryPage {
                        buf,
                        encoding: Encoding::PLAIN | Encoding::PLAIN_DICTIONARY,
                        ..
                    }) => dict = Some(buf),
                    _ => return Ok(false),
                }
                continue;
            }
            let Some(n) = meta.num_rows.or(meta.num_levels) else {
                return Ok(false);
            };
            let Some((wanted, needed)) = wants(first, n) else {
                pages.skip_next_page().map_err(bad)?;
                first += n;
                continue;
            };
            let Some(page) = pages.get_next_page().map_err(bad)? else {
                return Err(corrupt(file, rg, "a page ends early"));
            };
            let Some(decoded) = self.decode(&page, n, needed, dict.as_ref(), &mut idx, file, rg)?
            else {
                return Ok(false);
            };
            if visit(first, &decoded, wanted)? {
                return Ok(true);
            }
            first += n;
        }
        Ok(true)
    }

    /// A data page's validity and values, `n` rows, of which the first `needed` are read.
    #[allow(clippy::too_many_arguments)]
    fn decode<'a>(
        &self,
        page: &'a Page,
        n: usize,
        needed: usize,
        dict: Option<&'a Bytes>,
        idx: &'a mut Vec<Run>,
        file: &FileEntry,
        rg: usize,
    ) -> Result<Option<Decoded<'a>>> {
        let (levels, values, encoding): (&[u8], &[u8], Encoding) = match page {
            Page::DataPage {
                buf,
                num_values,
                encoding,
                def_level_encoding,
                ..
            } => {
                if *num_values as usize != n {
                    return Ok(None);
                }
                if !self.nullable {
                    (&[], &buf[..], *encoding)
                } else {
                    if *def_level_encoding != Encoding::RLE || buf.len() < 4 {
                        return Ok(None);
                    }
                    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
                    let Some(levels) = buf.get(4..4 + len) else {
                        return Err(corrupt(file, rg, "levels past the page"));
                    };
                    (levels, &buf[4 + len..], *encoding)
                }
            }
            Page::DataPageV2 {
                buf,
                num_values,
                num_rows,
                encoding,
                def_levels_byte_len,
                rep_levels_byte_len,
                ..
            } => {
                let (d, r) = (*def_levels_byte_len as usize, *rep_levels_byte_len as usize);
                if *num_rows as usize != n || *num_values as usize != n || r != 0 || buf.len() < d {
                    return Ok(None);
                }
                (&buf[..d], &buf[d..], *encoding)
            }
            Page::DictionaryPage { .. } => return Ok(None),
        };
        let valid = if self.nullable {
            let mut b = BooleanBufferBuilder::new(n);
            if hybrid_bits(levels, n, &mut b).is_none() {
                return Err(corrupt(file, rg, "bad definition levels"));
            }
            let b = b.finish();
            (b.count_set_bits() != n).then_some(b)
        } else {
            None
        };
        // dictionary indices are decoded only as far as the last row needed
        let n_values = valid
            .as_ref()
            .map_or(needed, |v| v.slice(0, needed).count_set_bits());
        let values = match encoding {
            Encoding::PLAIN => Values::Plain(values),
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                let Some(dict) = dict else {
                    return Err(corrupt(file, rg, "a dictionary page is missing"));
                };
                idx.clear();
                let runs = values.split_first().and_then(|(&bw, data)| {
                    hybrid_runs(data, bw as u32, n_values, idx)?;
                    Some(Indices {
                        data,
                        bw: bw as u32,
                        runs: &idx[..],
                        at: Cell::new(0),
                    })
                });
                let Some(idx) = runs else {
                    return Err(corrupt(file, rg, "bad dictionary indices"));
                };
                Values::Dict {
                    dict: &dict[..],
                    idx,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(Decoded {
            rows: n,
            valid,
            values,
        }))
    }
}

fn same_unit(u: &TimeUnit, p: &PqUnit) -> bool {
    matches!(
        (u, p),
        (TimeUnit::Millisecond, PqUnit::MILLIS)
            | (TimeUnit::Microsecond, PqUnit::MICROS)
            | (TimeUnit::Nanosecond, PqUnit::NANOS)
    )
}

/// One data page, decoded as far as its levels: values are read on demand.
struct Decoded<'a> {
    rows: usize,
    /// None: no null in the page.
    valid: Option<BooleanBuffer>,
    values: Values<'a>,
}

enum Values<'a> {
    /// The non-null values back to back.
    Plain(&'a [u8]),
    /// The dictionary's values back to back; one index per non-null value.
    Dict { dict: &'a [u8], idx: Indices<'a> },
}

impl Decoded<'_> {
    /// Row `i`'s position among the page's non-null values (None: null). `counted` carries
    /// (row, valid rows before it) between calls with rising `i`, so a page is counted once.
    fn value_index(&self, i: usize, counted: &mut (usize, usize)) -> Option<usize> {
        let Some(v) = &self.valid else { return Some(i) };
        let (at, mut before) = *counted;
        if i - at <= 64 {
            before += (at..i).filter(|&j| v.value(j)).count();
        } else {
            let bits = UnalignedBitChunk::new(v.values(), v.offset() + at, i - at);
            before += bits.count_ones();
        }
        *counted = (i, before);
        v.value(i).then_some(before)
    }

    /// The bytes of non-null value `vi` (None: the page holds fewer values than its levels
    /// or indices say).
    fn value(&self, vi: usize, w: usize) -> Option<&[u8]> {
        let (bytes, k) = match &self.values {
            Values::Plain(v) => (*v, vi),
            Values::Dict { dict, idx } => (*dict, idx.get(vi)? as usize),
        };
        bytes.get(k * w..k * w + w)
    }
}

/// The `w`-byte little-endian integer at the start of `b`, as i64.
#[inline]
fn int(b: &[u8], w: usize) -> i64 {
    if w == 8 {
        i64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
    } else {
        i32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as i64
    }
}

fn corrupt(file: &FileEntry, rg: usize, what: &str) -> Error {
    Error::Source(format!(
        "{}: row group {rg} cannot be read: {what}",
        file.display
    ))
}

/// A page holding fewer values, or a dictionary fewer entries, than its levels or indices
/// say.
fn short(file: &FileEntry, rg: usize) -> Error {
    corrupt(
        file,
        rg,
        "a page or dictionary holds fewer values than it is indexed by",
    )
}

/// An unsigned LEB128 varint at `*pos`.
fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// `n` one-bit values of the RLE / bit-packed hybrid encoding (definition levels 0/1),
/// appended to `out`.
fn hybrid_bits(data: &[u8], n: usize, out: &mut BooleanBufferBuilder) -> Option<()> {
    let (mut pos, mut got) = (0, 0);
    while got < n {
        let header = varint(data, &mut pos)?;
        let count = if header & 1 == 1 {
            let groups = (header >> 1) as usize;
            let bytes = data.get(pos..pos + groups)?;
            let count = (groups * 8).min(n - got);
            out.append_packed_range(0..count, bytes);
            pos += groups;
            count
        } else {
            let count = ((header >> 1) as usize).min(n - got);
            let bit = *data.get(pos)? & 1 == 1;
            pos += 1;
            out.append_n(count, bit);
            count
        };
        if count == 0 {
            return None;
        }
        got += count;
    }
    Some(())
}

/// One run of the RLE / bit-packed hybrid encoding: `count` values from value `first`.
pub(crate) struct Run {
    first: usize,
    count: usize,
    /// Bit-packed: the byte offset of its values; repeated: None.
    packed_at: Option<usize>,
    value: u32,
}

/// The runs of `n` values of `bw` bits (<= 32), into `out`: values are then read in place,
/// so a page whose rows are mostly skipped costs its run headers only.
fn hybrid_runs(data: &[u8], bw: u32, n: usize, out: &mut Vec<Run>) -> Option<()> {
    if bw > 32 {
        return None;
    }
    let value_bytes = bw.div_ceil(8) as usize;
    let (mut pos, mut got) = (0, 0);
    while got < n {
        let header = varint(data, &mut pos)?;
        let run = if header & 1 == 1 {
            let groups = (header >> 1) as usize;
            let len = groups.checked_mul(bw as usize)?;
            data.get(pos..pos + len)?;
            let run = Run {
                first: got,
                count: groups * 8,
                packed_at: Some(pos),
                value: 0,
            };
            pos += len;
            run
        } else {
            let mut word = [0u8; 4];
            word[..value_bytes].copy_from_slice(data.get(pos..pos + value_bytes)?);
            pos += value_bytes;
            let value = u32::from_le_bytes(word);
            Run {
                first: got,
                count: (header >> 1) as usize,
                packed_at: None,
                value,
            }
        };
        if run.count == 0 {
            return None;
        }
        got += run.count;
        out.push(run);
    }
    Some(())
}

/// A page's dictionary indices, read in place through its runs.
struct Indices<'a> {
    data: &'a [u8],
    bw: u32,
    runs: &'a [Run],
    /// The run of the last read (reads mostly go forward).
    at: Cell<usize>,
}

impl Indices<'_> {
    fn get(&self, vi: usize) -> Option<u32> {
        let mut i = self.at.get();
        if self.runs.get(i).is_none_or(|r| r.first > vi) {
            i = self
                .runs
                .partition_point(|r| r.first <= vi)
                .checked_sub(1)?;
        }
        while self.runs.get(i)?.first + self.runs[i].count <= vi {
            i += 1;
        }
        self.at.set(i);
        let run = &self.runs[i];
        let Some(at) = run.packed_at else {
            return Some(run.value);
        };
        let bit = (vi - run.first) * self.bw as usize;
        let from = at + bit / 8;
        // a value spans at most 5 bytes (32 bits + 7 of offset), so one word holds it
        let word = match self.data.get(from..from + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")),
            None => {
                let mut w = [0u8; 8];
                let tail = self.data.get(from..)?;
                w[..tail.len()].copy_from_slice(tail);
                u64::from_le_bytes(w)
            }
        };
        let mask = if self.bw == 32 {
            u32::MAX as u64
        } else {
            (1u64 << self.bw) - 1
        };
        Some(((word >> (bit % 8)) & mask) as u32)
    }
}
