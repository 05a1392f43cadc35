//! Pass 2 of the two-pass form: the columns of given rows only, by locator.
//!
//! The locators are sorted and deduplicated, grouped by (file, row group), and each group
//! is read with a `RowSelection` of exactly its rows (in parallel over groups): a column's
//! pages are still fetched, and its dictionary page decoded, but values are materialized for
//! the selected rows only. The rows are then put back in the order asked (a null locator:
//! a row of nulls).

use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::arrow_reader::RowSelection;
use rayon::prelude::*;

use super::files::Dataset;
use super::read::{col_source, fit, read_columns, repeat, Col};
use super::ROW_BITS;
use crate::{mem, Error, Result};

/// One row group's share of a take: its sorted row indices (within the row group).
struct Unit {
    file: usize,
    rg: usize,
    rows: Vec<usize>,
}

impl Dataset {
    /// The rows at `locators` (from a `locate` scan of this dataset) of `columns`, one
    /// output row per locator, in the locators' order; a null locator gives a row of nulls.
    /// Call inside the process's rayon pool.
    pub fn take(&self, columns: &[String], locators: &UInt64Array) -> Result<RecordBatch> {
        let fields = columns
            .iter()
            .map(|c| {
                self.schema
                    .field_with_name(c)
                    .cloned()
                    .map_err(|_| Error::Source(format!("{} has no column {c:?}", self.location)))
            })
            .collect::<Result<Vec<_>>>()?;
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        // the distinct locators, sorted: file order, then row order within a file
        let mut wanted: Vec<u64> = locators.iter().flatten().collect();
        wanted.sort_unstable();
        wanted.dedup();
        let units = self.units(&wanted)?;
        let read: Vec<Result<RecordBatch>> = units
            .par_iter()
            .map(|u| self.read_rows(u, columns, &schema))
            .collect();
        let batches = read.into_iter().collect::<Result<Vec<_>>>()?;
        let got = arrow_select::concat::concat_batches(&schema, &batches)?;
        // each asked row's position among the distinct sorted locators
        let at: UInt32Array = locators
            .iter()
            .map(|l| l.map(|l| wanted.binary_search(&l).expect("a located row") as u32))
            .collect();
        let cols = got
            .columns()
            .iter()
            .map(|c| arrow_select::take::take(c.as_ref(), &at, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new_with_options(
            schema,
            cols,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(locators.len())),
        )?)
    }

    /// `sorted` (distinct locators) split by (file, row group), in order.
    fn units(&self, sorted: &[u64]) -> Result<Vec<Unit>> {
        let mut units: Vec<Unit> = Vec::new();
        let mut i = 0;
        while i < sorted.len() {
            let fi = (sorted[i] >> ROW_BITS) as usize;
            let file = self
                .files
                .get(fi)
                .ok_or_else(|| Error::Invalid(format!("locator {} names no file", sorted[i])))?;
            let meta = file.meta.metadata();
            let mut start = 0u64;
            let mut rg = 0;
            let mask = (1u64 << ROW_BITS) - 1;
            while i < sorted.len() && (sorted[i] >> ROW_BITS) as usize == fi {
                let row = sorted[i] & mask;
                while rg < meta.num_row_groups()
                    && row >= start + meta.row_group(rg).num_rows().max(0) as u64
                {
                    start += meta.row_group(rg).num_rows().max(0) as u64;
                    rg += 1;
                }
                if rg >= meta.num_row_groups() {
                    return Err(Error::Invalid(format!(
                        "locator {} is past the end of {}",
                        sorted[i], file.display
                    )));
                }
                match units.last_mut() {
                    Some(u) if u.file == fi && u.rg == rg => u.rows.push((row - start) as usize),
                    _ => units.push(Unit {
                        file: fi,
                        rg,
                        rows: vec![(row - start) as usize],
                    }),
                }
                i += 1;
            }
        }
        Ok(units)
    }

    /// `columns` of one row group's selected rows, in row order.
    fn read_rows(&self, u: &Unit, columns: &[String], schema: &SchemaRef) -> Result<RecordBatch> {
        let file = &self.files[u.file];
        let group = file.meta.metadata().row_group(u.rg);
        let operation = format!("reading rows of {}", file.display);
        let bytes = group.compressed_size().max(0) as usize;
        mem::check(&operation, bytes.saturating_mul(2))?;
        let n_rows = group.num_rows().max(0) as usize;
        let n = u.rows.len();
        let sources: Vec<Col> = columns.iter().map(|c| col_source(self, file, c)).collect();
        let in_file: Vec<&str> = columns
            .iter()
            .zip(&sources)
            .filter(|(_, s)| matches!(s, Col::File))
            .map(|(c, _)| c.as_str())
            .collect();
        let mut got = if in_file.is_empty() {
            Default::default()
        } else {
            read_columns(self, file, u.rg, &in_file, Some(selection(&u.rows, n_rows)))?
        };
        let mut out: Vec<ArrayRef> = Vec::with_capacity(columns.len());
        for ((name, src), field) in columns.iter().zip(&sources).zip(schema.fields()) {
            let a = match src {
                Col::File => got.remove(name).expect("read above"),
                Col::Partition(p) => repeat(&file.parts[*p], n)?,
                Col::Missing => new_null_array(field.data_type(), n),
            };
            if a.len() != n {
                return Err(Error::Source(format!(
                    "{}: row group {} gave {} rows for {n} selected",
                    file.display,
                    u.rg,
                    a.len()
                )));
            }
            out.push(fit(a, field.data_type(), file, name)?);
        }
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            out,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }
}

/// A selection of exactly `rows` (sorted, distinct) out of `total`.
fn selection(rows: &[usize], total: usize) -> RowSelection {
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let start = rows[i];
        let mut end = start + 1;
        i += 1;
        while i < rows.len() && rows[i] == end {
            end += 1;
            i += 1;
        }
        ranges.push(start..end);
    }
    RowSelection::from_consecutive_ranges(ranges.into_iter(), total)
}
