//! Reading one row group with late materialization: the key columns first and the
//! semi-join on them, then the timestamp column decoded for the rows whose key matched only
//! and the exact time filter, then the other columns decoded for the rows left only (each
//! step narrows a Parquet `RowSelection`). Only the byte ranges of the projected column
//! chunks are fetched.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{new_null_array, Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_buffer::{BooleanBuffer, BooleanBufferBuilder};
use arrow_schema::{DataType, TimeUnit};
use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

use super::direct::Direct;
use super::files::{Dataset, FileEntry};
use super::prune::{RawBounds, Time};
use super::store::Store;
use super::Plan;
use crate::{Error, Result};

/// A Parquet file's bytes as far as fetched: the reader serves the fetched ranges from
/// memory and fetches anything else from the store (the footer reader needs that).
pub struct Fetched {
    store: Arc<Store>,
    key: String,
    size: u64,
    parts: Vec<(u64, Bytes)>,
}

impl Fetched {
    pub fn new(store: &Arc<Store>, key: &str, size: u64, parts: Vec<(u64, Bytes)>) -> Fetched {
        Fetched {
            store: Arc::clone(store),
            key: key.to_string(),
            size,
            parts,
        }
    }

    fn slice(&self, start: u64, len: Option<usize>) -> parquet::errors::Result<Bytes> {
        for (at, b) in &self.parts {
            let end = at + b.len() as u64;
            // strictly inside: adjacent column chunks share an edge
            if *at <= start && start < end {
                let from = (start - at) as usize;
                let to = match len {
                    Some(l) if from + l <= b.len() => from + l,
                    Some(_) => continue,
                    None => b.len(),
                };
                return Ok(b.slice(from..to));
            }
        }
        let end = match len {
            Some(l) => start + l as u64,
            None => self.size,
        };
        self.store
            .read_ranges(&self.key, std::slice::from_ref(&(start..end)))
            .map_err(|e| ParquetError::External(Box::new(e)))?
            .pop()
            .ok_or_else(|| ParquetError::General("no bytes returned".into()))
    }
}

impl Length for Fetched {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for Fetched {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}

/// Where an output column comes from in one file.
pub(crate) enum Col {
    File,
    Partition(usize),
    Missing,
}

pub(crate) fn col_source(ds: &Dataset, file: &FileEntry, name: &str) -> Col {
    if file.meta.schema().index_of(name).is_ok() {
        return Col::File;
    }
    let first_part = ds.schema.fields().len() - ds.n_partitions;
    match ds.schema.index_of(name) {
        Ok(i) if i >= first_part => Col::Partition(i - first_part),
        _ => Col::Missing,
    }
}

/// Selected rows per batch when a read has a row selection (see `read_columns`).
const SELECTED_BATCH_ROWS: usize = 16 * 1024;

/// Rows per batch of the key columns' read (see `read_keys_matching`).
const KEY_BATCH_ROWS: usize = 64 * 1024;

/// Reads `names` (columns of the file) from row group `rg`, only the rows `selection`
/// keeps (all when None).
pub(crate) fn read_columns(
    ds: &Dataset,
    file: &FileEntry,
    rg: usize,
    names: &[&str],
    selection: Option<RowSelection>,
) -> Result<HashMap<String, ArrayRef>> {
    // A sparse selection's flat primitive columns are read page by page in place (see
    // `direct`); the rest, and any column the direct reader gives back, through the parquet
    // crate.
    let direct: Vec<(&str, Direct)> = match &selection {
        Some(sel) if sel.row_count() * DIRECT_MAX_SHARE <= group_rows(file, rg) => names
            .iter()
            .filter_map(|n| Direct::of(file, rg, n).map(|d| (*n, d)))
            .collect(),
        _ => Vec::new(),
    };
    if direct.is_empty() {
        return read_with_parquet(ds, file, rg, names, selection);
    }
    let sel = selection.as_ref().expect("direct reads have a selection");
    let rows: Vec<usize> = selected_rows(sel).collect();
    let reader = Arc::new(fetch(ds, file, rg, direct.iter().map(|(_, d)| d.leaf))?);
    let mut out = HashMap::new();
    let mut rest: Vec<&str> = names
        .iter()
        .filter(|n| !direct.iter().any(|(d, _)| d == *n))
        .copied()
        .collect();
    for (name, d) in &direct {
        match d.take(Arc::clone(&reader), file, rg, &rows)? {
            Some(a) => {
                out.insert(name.to_string(), a);
            }
            None => rest.push(name),
        }
    }
    if !rest.is_empty() {
        out.extend(read_with_parquet(ds, file, rg, &rest, selection)?);
    }
    Ok(out)
}

/// A selection keeping more than 1/DIRECT_MAX_SHARE of a row group's rows goes through the
/// record reader: copying value by value loses to its decode-all-then-filter there (at 10M
/// feature rows x 1M entity rows ~63% of the rows survive the semi-join).
const DIRECT_MAX_SHARE: usize = 4;

/// The rows of row group `rg` of `file`.
pub(super) fn group_rows(file: &FileEntry, rg: usize) -> usize {
    file.meta.metadata().row_group(rg).num_rows().max(0) as usize
}

/// The row indices `sel` keeps, ascending.
fn selected_rows(sel: &RowSelection) -> impl Iterator<Item = usize> + '_ {
    sel.iter()
        .scan(0, |at, r| {
            let from = *at;
            *at += r.row_count;
            Some((!r.skip).then_some(from..*at))
        })
        .flatten()
        .flatten()
}

/// `read_columns` through the parquet crate's record reader.
pub(super) fn read_with_parquet(
    ds: &Dataset,
    file: &FileEntry,
    rg: usize,
    names: &[&str],
    selection: Option<RowSelection>,
) -> Result<HashMap<String, ArrayRef>> {
    // Without a selection, one batch of the whole row group. With one, batches of at most
    // SELECTED_BATCH_ROWS selected rows: a dense scattered selection is decoded as a mask
    // (every row of a chunk decoded, then filtered), and a chunk holding 1M rows' values
    // cost a fresh 8 MB buffer per column and call, faulted in page by page; small chunks
    // reuse small buffers (measured at 1M rows x 10k entity rows: the views' peak RSS grew
    // by ~20 MB with whole-row-group chunks).
    let rows = match &selection {
        None => file.meta.metadata().row_group(rg).num_rows().max(1) as usize,
        Some(_) => SELECTED_BATCH_ROWS,
    };
    let (reader, bad) = column_reader(ds, file, rg, names, selection, rows)?;
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    let batches: Vec<RecordBatch> = reader
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(&e))?;
    let batch = match batches.len() {
        1 => batches.into_iter().next().expect("one batch"),
        _ => arrow_select::concat::concat_batches(&schema, &batches)?,
    };
    Ok(by_name(&batch))
}

/// A batch's columns by name.
fn by_name(batch: &RecordBatch) -> HashMap<String, ArrayRef> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .zip(batch.columns().iter().cloned())
        .collect()
}

/// What a failed read of row group `rg` becomes.
type BadRead<'a> = Box<dyn Fn(&dyn std::fmt::Display) -> Error + 'a>;

/// A reader of `names` (columns of the file) in row group `rg`, the rows `selection` keeps,
/// in batches of `batch_rows`; and the error a failure in it becomes.
fn column_reader<'a>(
    ds: &Dataset,
    file: &'a FileEntry,
    rg: usize,
    names: &[&str],
    selection: Option<RowSelection>,
    batch_rows: usize,
) -> Result<(ParquetRecordBatchReader, BadRead<'a>)> {
    let meta = file.meta.metadata();
    let schema_descr = meta.file_metadata().schema_descr();
    let roots: Vec<usize> = names
        .iter()
        .map(|n| {
            file.meta
                .schema()
                .index_of(n)
                .expect("a column of the file")
        })
        .collect();
    let leaves = (0..schema_descr.num_columns())
        .filter(|&leaf| roots.contains(&schema_descr.get_column_root_idx(leaf)));
    let reader = fetch(ds, file, rg, leaves)?;
    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(reader, file.meta.clone())
        .with_row_groups(vec![rg])
        .with_projection(ProjectionMask::roots(schema_descr, roots))
        .with_batch_size(batch_rows.max(1));
    if let Some(sel) = selection {
        builder = builder.with_row_selection(sel);
    }
    let bad: BadRead<'a> = Box::new(move |e: &dyn std::fmt::Display| {
        Error::Source(format!(
            "{}: row group {rg} cannot be read: {e}",
            file.display
        ))
    });
    let reader = builder.build().map_err(|e| bad(&e))?;
    Ok((reader, bad))
}

/// The column chunks `leaves` of row group `rg`, fetched (one request for all).
pub(super) fn fetch(
    ds: &Dataset,
    file: &FileEntry,
    rg: usize,
    leaves: impl Iterator<Item = usize>,
) -> Result<Fetched> {
    let group = file.meta.metadata().row_group(rg);
    let ranges: Vec<Range<u64>> = leaves
        .map(|leaf| {
            let (start, len) = group.column(leaf).byte_range();
            start..start + len
        })
        .collect();
    let fetched = ds.store.read_ranges(&file.object.key, &ranges)?;
    let parts = ranges.iter().map(|r| r.start).zip(fetched).collect();
    Ok(Fetched::new(
        &ds.store,
        &file.object.key,
        file.object.size,
        parts,
    ))
}

/// The key columns `names` (all columns of the file) of row group `rg` read in batches of
/// KEY_BATCH_ROWS, each batch tested against `set` (`columns`: the key columns in the key
/// set's order) and cut to its matching rows at once: the keys that fail, usually nearly
/// all, never sit in a whole-row-group buffer. Returns the matching rows' key columns and
/// the mask over the row group.
fn read_keys_matching(
    ds: &Dataset,
    file: &FileEntry,
    rg: usize,
    names: &[&str],
    columns: &[String],
    set: &super::KeySet,
) -> Result<(HashMap<String, ArrayRef>, BooleanBuffer)> {
    // One integer key column (the common case): tested in place, page by page.
    if let ([name], Some(probe)) = (names, set.int_probe()) {
        if let Some(d) = Direct::of(file, rg, name).filter(Direct::is_int_key) {
            let reader = Arc::new(fetch(ds, file, rg, std::iter::once(d.leaf))?);
            if let Some((kept, mask)) = d.matching(reader, file, rg, &probe)? {
                return Ok((HashMap::from([(name.to_string(), kept)]), mask));
            }
        }
    }
    let n_rows = group_rows(file, rg);
    let (reader, bad) = column_reader(ds, file, rg, names, None, KEY_BATCH_ROWS)?;
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    let mut mask = BooleanBufferBuilder::new(n_rows);
    let mut kept = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let cols = by_name(&batch);
        let keys: Vec<ArrayRef> = columns.iter().map(|c| Arc::clone(&cols[c])).collect();
        let m = set.contains(&keys)?;
        mask.append_buffer(&m);
        let m = BooleanArray::from(m);
        kept.push(arrow_select::filter::filter_record_batch(&batch, &m)?);
    }
    let batch = arrow_select::concat::concat_batches(&schema, &kept)?;
    Ok((by_name(&batch), mask.finish()))
}

/// `a` as type `t` (the dataset's), or an error naming the file and the column.
pub(crate) fn fit(a: ArrayRef, t: &DataType, file: &FileEntry, name: &str) -> Result<ArrayRef> {
    if a.data_type() == t {
        return Ok(a);
    }
    arrow_cast::cast(&a, t).map_err(|e| {
        Error::Source(format!(
            "{}: column {name:?} has type {}, which does not fit the dataset's {t} (the \
             first file's type): {e}",
            file.display,
            a.data_type()
        ))
    })
}

/// `start <= ts <= end` per row (null: false), on raw values of the dataset's type.
fn time_mask(ts: &ArrayRef, b: RawBounds) -> BooleanBuffer {
    let lo = b.lo.unwrap_or(i64::MIN);
    let hi = b.hi.unwrap_or(i64::MAX);
    let mut out = BooleanBufferBuilder::new(ts.len());
    let mut push = |vals: &mut dyn Iterator<Item = i64>| {
        for v in vals {
            out.append(lo <= v && v <= hi);
        }
    };
    match ts.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => push(
            &mut ts
                .as_primitive::<TimestampSecondType>()
                .values()
                .iter()
                .copied(),
        ),
        DataType::Timestamp(TimeUnit::Millisecond, _) => push(
            &mut ts
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .iter()
                .copied(),
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => push(
            &mut ts
                .as_primitive::<TimestampMicrosecondType>()
                .values()
                .iter()
                .copied(),
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => push(
            &mut ts
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .iter()
                .copied(),
        ),
        DataType::Date32 => push(
            &mut ts
                .as_primitive::<Date32Type>()
                .values()
                .iter()
                .map(|&v| v as i64),
        ),
        DataType::Date64 => push(&mut ts.as_primitive::<Date64Type>().values().iter().copied()),
        _ => push(&mut std::iter::repeat_n(i64::MIN, 0)),
    }
    let mask = out.finish();
    match ts.logical_nulls() {
        Some(n) => &mask & n.inner(),
        None => mask,
    }
}

/// A partition column's value repeated `n` times.
pub(crate) fn repeat(value: &ArrayRef, n: usize) -> Result<ArrayRef> {
    let idx = arrow_array::UInt32Array::from(vec![0u32; n]);
    Ok(arrow_select::take::take(value.as_ref(), &idx, None)?)
}

/// Cuts the columns read so far (`first`) to the rows `m` keeps (a mask over the
/// `selected` rows kept so far) and narrows `sel` (over the row group) to them; false when
/// no row is left.
fn narrow(
    m: BooleanBuffer,
    first: &mut HashMap<String, ArrayRef>,
    sel: &mut Option<RowSelection>,
    selected: &mut usize,
) -> Result<bool> {
    let count = m.count_set_bits();
    if count == *selected {
        return Ok(true);
    }
    *selected = count;
    if count == 0 {
        return Ok(false);
    }
    let m = BooleanArray::from(m);
    for a in first.values_mut() {
        *a = arrow_select::filter::filter(a.as_ref(), &m)?;
    }
    let now = RowSelection::from_filters(std::slice::from_ref(&m));
    *sel = Some(match sel.take() {
        Some(s) => s.and_then(&now),
        None => now,
    });
    Ok(true)
}

/// The first row of row group `rg` within its file.
pub(crate) fn first_row(file: &FileEntry, rg: usize) -> u64 {
    let meta = file.meta.metadata();
    meta.row_groups()[..rg]
        .iter()
        .map(|g| g.num_rows().max(0) as u64)
        .sum()
}

/// The locators of the rows `sel` keeps of row group `rg` (all `n_rows` when None).
fn locators(
    fi: usize,
    file: &FileEntry,
    rg: usize,
    sel: Option<&RowSelection>,
    n_rows: usize,
) -> Result<ArrayRef> {
    let first = first_row(file, rg);
    if first + n_rows as u64 >= 1 << super::ROW_BITS {
        return Err(Error::Invalid(format!(
            "{}: too many rows to locate",
            file.display
        )));
    }
    let base = super::locator(fi, first);
    let out: Vec<u64> = match sel {
        None => (0..n_rows as u64).map(|i| base + i).collect(),
        Some(s) => selected_rows(s).map(|i| base + i as u64).collect(),
    };
    Ok(Arc::new(arrow_array::UInt64Array::from(out)))
}

/// The rows of row group `rg` of file `fi` that `plan` asks for, in file order, in
/// batches of at most `plan.batch_rows`.
pub(crate) fn read_unit(
    ds: &Dataset,
    plan: &Plan,
    fi: usize,
    rg: usize,
    time: Time,
) -> Result<Vec<RecordBatch>> {
    let file = &ds.files[fi];
    let n_rows = file.meta.metadata().row_group(rg).num_rows() as usize;
    let need_time = plan.bounds.is_some() && time == Time::Filter;
    let sources: Vec<Col> = plan
        .columns
        .iter()
        .map(|c| col_source(ds, file, c))
        .collect();
    // A filter column's values for the `n` rows selected so far (`first` holds the file's
    // columns read so far, already cut to those rows).
    let filter_array =
        |name: &str, first: &HashMap<String, ArrayRef>, n: usize| -> Result<ArrayRef> {
            match col_source(ds, file, name) {
                Col::File => Ok(Arc::clone(&first[name])),
                Col::Partition(p) => repeat(&file.parts[p], n),
                Col::Missing => {
                    let t = ds
                        .schema
                        .field_with_name(name)
                        .map(|f| f.data_type().clone());
                    Ok(new_null_array(&t.unwrap_or(DataType::Null), n))
                }
            }
        };
    let in_file = |c: &&str| matches!(col_source(ds, file, c), Col::File);
    // The rows kept so far: None = all of the row group, else a selection of them.
    let mut sel: Option<RowSelection> = None;
    let mut selected = n_rows;
    let mut first: HashMap<String, ArrayRef> = HashMap::new();
    // Pass 1: the key columns of every row, then the semi-join. Most rows usually fail it,
    // so it runs before anything else is decoded.
    if let Some(keys) = &plan.keys {
        let names: Vec<&str> = keys
            .columns
            .iter()
            .map(String::as_str)
            .filter(in_file)
            .collect();
        if names.len() == keys.columns.len() {
            // every key column is in the file (the usual case): filtered batch by batch
            let mut distinct = names.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let (kept, m) = read_keys_matching(ds, file, rg, &distinct, &keys.columns, &keys.set)?;
            first = kept;
            selected = m.count_set_bits();
            if selected == 0 {
                return Ok(Vec::new());
            }
            if selected < n_rows {
                sel = Some(RowSelection::from_filters(&[BooleanArray::from(m)]));
            }
        } else {
            if !names.is_empty() {
                first = read_columns(ds, file, rg, &names, None)?;
            }
            let cols: Vec<ArrayRef> = keys
                .columns
                .iter()
                .map(|c| filter_array(c, &first, n_rows))
                .collect::<Result<_>>()?;
            let m = keys.set.contains(&cols)?;
            if !narrow(m, &mut first, &mut sel, &mut selected)? {
                return Ok(Vec::new());
            }
        }
    }
    // Pass 1b: the timestamps of the rows the keys kept only, then the exact time filter.
    if need_time {
        let (name, t) = plan
            .ts
            .as_ref()
            .expect("bounds come with a timestamp column");
        if in_file(&name.as_str()) && !first.contains_key(name) {
            let got = read_columns(ds, file, rg, &[name.as_str()], sel.clone())?;
            first.extend(got);
        }
        let ts = fit(filter_array(name, &first, selected)?, t, file, name)?;
        let m = time_mask(&ts, plan.bounds.expect("checked above"));
        if !narrow(m, &mut first, &mut sel, &mut selected)? {
            return Ok(Vec::new());
        }
    }

    let located = if plan.locate {
        Some(locators(fi, file, rg, sel.as_ref(), n_rows)?)
    } else {
        None
    };

    // Pass 2: the other columns of the file, decoded for the selected rows only.
    let rest: Vec<&str> = plan
        .columns
        .iter()
        .zip(&sources)
        .filter(|(c, s)| matches!(s, Col::File) && !first.contains_key(c.as_str()))
        .map(|(c, _)| c.as_str())
        .collect();
    let second = if rest.is_empty() {
        HashMap::new()
    } else {
        let got = read_columns(ds, file, rg, &rest, sel)?;
        if plan.keys.is_some() || need_time {
            plan.stats
                .late_rows
                .fetch_add(selected as u64, Ordering::Relaxed);
        }
        got
    };

    let mut columns = Vec::with_capacity(plan.columns.len());
    for ((name, src), field) in plan.columns.iter().zip(&sources).zip(plan.schema.fields()) {
        let a = match src {
            Col::File => first
                .get(name)
                .or_else(|| second.get(name))
                .cloned()
                .expect("read above"),
            Col::Partition(p) => repeat(&file.parts[*p], selected)?,
            Col::Missing => new_null_array(field.data_type(), selected),
        };
        columns.push(fit(a, field.data_type(), file, name)?);
    }
    columns.extend(located);
    let batch = RecordBatch::try_new_with_options(
        Arc::clone(&plan.schema),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(selected)),
    )?;
    let step = plan.batch_rows.max(1);
    Ok((0..selected)
        .step_by(step)
        .map(|at| batch.slice(at, step.min(selected - at)))
        .collect())
}
