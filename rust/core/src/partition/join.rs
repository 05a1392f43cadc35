//! The per-partition join: one key partition's entity rows and feature rows -> joined rows.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use arrow_select::take::take;

use crate::asof::asof_join;
use crate::error::{Error, Result};

/// Joins the entity rows of one key partition with the feature rows of the same partition.
///
/// * `entity`: `n_keys` key columns, the event timestamp, then a row id (any type; it is
///   passed through): `[k1 .. kn, ts, row_id]`.
/// * `features`: the same `n_keys` key columns (pairwise the entity side's types), the event
///   timestamp, the created timestamp when `has_created`, then the feature columns:
///   `[k1 .. kn, ts, created?, f1 .. fm]`. Row order matters: on a full tie the later row
///   wins.
/// * `ttl`: the view's ttl in microseconds (`None` or `0`: unbounded).
///
/// Returns `[row_id, f1 .. fm]` with one row per entity row, in entity order: each feature
/// of the feature row [`asof_join`] picks (same rules: latest event timestamp within the
/// ttl, then the larger created, then the later row), or nulls when none matches. Field names
/// and types are the inputs'. Entity rows given in ascending row id order come out in that
/// order, so a caller can merge partitions' outputs by row id.
///
/// Errors: column counts that do not fit `n_keys` / `has_created`, and every error of
/// [`asof_join`] (key types that differ, unsupported types, a negative ttl).
pub fn join_partition(
    entity: &RecordBatch,
    features: &RecordBatch,
    n_keys: usize,
    has_created: bool,
    ttl: Option<i64>,
) -> Result<RecordBatch> {
    if entity.num_columns() != n_keys + 2 {
        return Err(Error::Mismatch(format!(
            "the entity batch has {} columns, expected {} ({n_keys} keys, the event timestamp \
             and the row id)",
            entity.num_columns(),
            n_keys + 2
        )));
    }
    let lead = n_keys + 1 + usize::from(has_created);
    if features.num_columns() < lead {
        return Err(Error::Mismatch(format!(
            "the feature batch has {} columns, expected at least {lead} ({n_keys} keys, the \
             event timestamp{})",
            features.num_columns(),
            if has_created {
                ", the created timestamp"
            } else {
                ""
            }
        )));
    }
    let ecols = entity.columns();
    let fcols = features.columns();
    let created = has_created.then(|| fcols[n_keys + 1].as_ref());
    let idx = asof_join(
        &ecols[..n_keys],
        ecols[n_keys].as_ref(),
        &fcols[..n_keys],
        fcols[n_keys].as_ref(),
        created,
        ttl,
    )?;
    let eschema = entity.schema();
    let fschema = features.schema();
    let mut fields: Vec<Arc<Field>> = vec![eschema.fields()[n_keys + 1].clone()];
    let mut columns: Vec<ArrayRef> = vec![ecols[n_keys + 1].clone()];
    for (field, col) in fschema.fields().iter().zip(fcols).skip(lead) {
        // a taken value may be null even where the column had none
        fields.push(Arc::new(field.as_ref().clone().with_nullable(true)));
        columns.push(take(col.as_ref(), &idx, None)?);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
