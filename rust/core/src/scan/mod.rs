//! The Parquet scan of a `FileSource`: a file, a directory or a hive-partitioned dataset,
//! local or on S3, read in row groups, in parallel, cheapest step first:
//!
//! 1. column projection (only the requested columns' chunks are fetched);
//! 2. row-group pruning by statistics: the time range, and the entity keys' range;
//! 3. the key semi-join and the exact time filter, on the key and timestamp columns only;
//! 4. the other columns decoded for the surviving rows only (late materialization).
//!
//! The two-pass form (join first, features last): a scan with `locate` set appends each
//! row's locator (`LOCATOR`: file index and row in file, see [`locator`]) and is asked for
//! the key and time columns only; the caller joins those rows and then reads the other
//! columns of the winning rows alone with [`Dataset::take`] (a Parquet `RowSelection` per
//! row group), so feature columns are decoded for at most one row per entity row.
//!
//! Output keeps the source's order (files in path order, row groups and rows in file
//! order: the as-of join's "last row wins" tie-break depends on it), as a stream of record
//! batches with one schema (the first file's, partition columns appended; other files'
//! columns cast to it, missing ones null).
//!
//! Work is split into (file, row group) units processed in waves on rayon; run the
//! iterator inside the process's pool (the binding's `threads::install`).

mod direct;
mod files;
mod keyset;
mod prune;
mod read;
mod store;
mod take;

#[cfg(test)]
mod direct_tests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use rayon::prelude::*;

pub use files::Dataset;
pub use keyset::{KeyRange, KeySet};
pub use prune::{raw_bounds, RawBounds};

use crate::{mem, Error, Result};

/// What a scan reads.
#[derive(Clone, Debug, Default)]
pub struct ScanRequest {
    /// Output columns, in order (source column names).
    pub columns: Vec<String>,
    /// The timestamp column the time range applies to.
    pub ts_column: Option<String>,
    /// `lo_us <= ts <= hi_us` in UTC microseconds; None = unbounded. With neither bound, no
    /// row is dropped for its timestamp (a null timestamp included).
    pub lo_us: Option<i64>,
    pub hi_us: Option<i64>,
    /// The key columns of the semi-join (source names, in the entity keys' order).
    pub key_columns: Vec<String>,
    /// The entity rows' keys (one array per key column): only rows whose key tuple occurs
    /// among them survive. None: no semi-join.
    pub entity_keys: Option<Vec<ArrayRef>>,
    /// Rows per output batch at most.
    pub batch_rows: usize,
    /// Append the `LOCATOR` column (each row's [`locator`]) for a later [`Dataset::take`].
    pub locate: bool,
}

/// The name of the locator column a `locate` scan appends (UInt64, never null).
pub const LOCATOR: &str = "__banquet_row";

/// Bits of a locator holding the row's index in its file; the file's index is above them.
pub const ROW_BITS: u32 = 40;

/// A row's locator: its file's index in the dataset and its index in the file (row groups
/// counted in file order), one u64. Files are listed once per `Dataset`, so a locator is
/// only meaningful to the dataset that produced it.
pub fn locator(file: usize, row_in_file: u64) -> u64 {
    ((file as u64) << ROW_BITS) | row_in_file
}

/// Counters of one scan, for tests and tuning.
#[derive(Debug, Default)]
pub struct ScanStats {
    /// Row groups read (not pruned).
    pub row_groups_read: AtomicU64,
    /// Row groups pruned by statistics.
    pub row_groups_pruned: AtomicU64,
    /// Rows whose non-filter columns were decoded after the filter (late materialization).
    pub late_rows: AtomicU64,
}

pub(crate) struct KeyFilter {
    pub columns: Vec<String>,
    pub set: KeySet,
}

/// A validated request.
pub(crate) struct Plan {
    pub columns: Vec<String>,
    pub schema: SchemaRef,
    /// The timestamp column and its type in the dataset.
    pub ts: Option<(String, DataType)>,
    /// The time filter, when there is one.
    pub bounds: Option<RawBounds>,
    pub keys: Option<KeyFilter>,
    pub batch_rows: usize,
    pub locate: bool,
    pub stats: Arc<ScanStats>,
}

/// A running scan: an iterator of record batches in source order.
pub struct Scan {
    ds: Arc<Dataset>,
    plan: Arc<Plan>,
    units: Vec<(usize, usize, prune::Time)>,
    next: usize,
    queue: VecDeque<RecordBatch>,
}

impl Dataset {
    /// Starts a scan of this dataset.
    pub fn scan(self: &Arc<Self>, req: ScanRequest) -> Result<Scan> {
        let plan = self.plan(req)?;
        let mut units = Vec::new();
        for (fi, file) in self.files.iter().enumerate() {
            let meta = file.meta.metadata();
            let ts_leaf = plan.ts.as_ref().and_then(|(n, _)| prune::leaf_of(meta, n));
            let key_leaves: Vec<(usize, &KeyRange)> = match &plan.keys {
                Some(k) => k
                    .columns
                    .iter()
                    .zip(k.set.ranges())
                    .filter_map(|(c, r)| prune::leaf_of(meta, c).map(|l| (l, r)))
                    .collect(),
                None => Vec::new(),
            };
            for rg in 0..meta.num_row_groups() {
                let time = match (plan.bounds, ts_leaf, &plan.ts) {
                    (None, _, _) => prune::Time::Inside,
                    (Some(b), Some(leaf), Some((_, t))) => prune::time(meta, rg, leaf, t, b),
                    _ => prune::Time::Filter,
                };
                let keys_ok = key_leaves
                    .iter()
                    .all(|(leaf, r)| prune::keys_may_match(meta, rg, *leaf, r));
                let empty = meta.row_group(rg).num_rows() == 0;
                if time == prune::Time::Outside || !keys_ok || empty {
                    plan.stats.row_groups_pruned.fetch_add(1, Ordering::Relaxed);
                } else {
                    units.push((fi, rg, time));
                }
            }
        }
        Ok(Scan {
            ds: Arc::clone(self),
            plan: Arc::new(plan),
            units,
            next: 0,
            queue: VecDeque::new(),
        })
    }

    fn plan(&self, req: ScanRequest) -> Result<Plan> {
        let field = |name: &str| {
            self.schema.field_with_name(name).map_err(|_| {
                let names: Vec<&String> = self.schema.fields().iter().map(|f| f.name()).collect();
                Error::Source(format!(
                    "{} has no column {name:?}; its columns are {names:?}",
                    self.location
                ))
            })
        };
        let fields = req
            .columns
            .iter()
            .map(|c| field(c).cloned())
            .collect::<Result<Vec<_>>>()?;
        let mut fields = fields;
        if req.locate {
            if self.files.len() >= 1 << (64 - ROW_BITS) {
                return Err(Error::Invalid(format!(
                    "{}: {} files are too many to locate rows in",
                    self.location,
                    self.files.len()
                )));
            }
            fields.push(arrow_schema::Field::new(LOCATOR, DataType::UInt64, false));
        }
        let schema = Arc::new(Schema::new(fields));
        let ts = match &req.ts_column {
            Some(c) => Some((c.clone(), field(c)?.data_type().clone())),
            None => None,
        };
        let mut bounds = None;
        if req.lo_us.is_some() || req.hi_us.is_some() {
            let (name, t) = ts.as_ref().ok_or_else(|| {
                Error::Invalid("a time range needs the timestamp column".to_string())
            })?;
            bounds = Some(raw_bounds(req.lo_us, req.hi_us, t).ok_or_else(|| {
                Error::Source(format!(
                    "{}: timestamp column {name:?} has type {t}, expected a timestamp",
                    self.location
                ))
            })?);
        }
        let keys = match req.entity_keys {
            Some(arrays) => {
                if arrays.len() != req.key_columns.len() || arrays.is_empty() {
                    return Err(Error::Mismatch(format!(
                        "{} entity key arrays for {} key columns",
                        arrays.len(),
                        req.key_columns.len()
                    )));
                }
                for c in &req.key_columns {
                    field(c)?;
                }
                Some(KeyFilter {
                    columns: req.key_columns,
                    set: KeySet::new(&arrays)?,
                })
            }
            None => None,
        };
        Ok(Plan {
            columns: req.columns,
            schema,
            ts,
            bounds,
            keys,
            batch_rows: if req.batch_rows == 0 {
                1 << 16
            } else {
                req.batch_rows
            },
            locate: req.locate,
            stats: Arc::new(ScanStats::default()),
        })
    }
}

impl Scan {
    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.plan.schema)
    }

    /// This scan's counters.
    pub fn stats(&self) -> Arc<ScanStats> {
        Arc::clone(&self.plan.stats)
    }
}

impl Iterator for Scan {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(b) = self.queue.pop_front() {
                return Some(Ok(b));
            }
            if self.next >= self.units.len() {
                return None;
            }
            // A wave: a few units per thread, read in parallel, emitted in order.
            let wave = (rayon::current_num_threads() * 2).max(2);
            let end = (self.next + wave).min(self.units.len());
            let units = &self.units[self.next..end];
            self.next = end;
            let (ds, plan) = (&self.ds, &self.plan);
            // The Parquet decoders allocate infallibly (a refusal aborts the process), so the
            // wave's working memory is probed first: compressed pages, the decoded columns and
            // the filtered copy, with room to spare (x4 the uncompressed size).
            let bytes: i64 = units
                .iter()
                .map(|&(fi, rg, _)| {
                    let meta = ds.files[fi].meta.metadata().row_group(rg);
                    meta.total_byte_size().max(0) + meta.compressed_size().max(0)
                })
                .sum();
            let operation = format!("reading {} row group(s) of {}", units.len(), ds.location);
            if let Err(e) = mem::check(&operation, (bytes as usize).saturating_mul(4)) {
                self.next = self.units.len();
                return Some(Err(e));
            }
            let results: Vec<Result<Vec<RecordBatch>>> = units
                .par_iter()
                .map(|&(fi, rg, time)| {
                    plan.stats.row_groups_read.fetch_add(1, Ordering::Relaxed);
                    read::read_unit(ds, plan, fi, rg, time)
                })
                .collect();
            for r in results {
                match r {
                    Ok(batches) => self.queue.extend(batches),
                    Err(e) => {
                        self.next = self.units.len();
                        self.queue.clear();
                        return Some(Err(e));
                    }
                }
            }
        }
    }
}
