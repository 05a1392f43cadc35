//! Point-in-time windowed aggregation: for every entity row, aggregates of one key's feature
//! rows over a time window ending at the row's timestamp.
//!
//! # Semantics (ARCHITECTURE.md, "Windowed aggregations")
//!
//! For an entity row with key `k` and timestamp `T`, a [`Spec`] with window `w` and optional
//! slide `s` aggregates the feature rows of key `k` whose event time `t` satisfies
//! `end - w < t <= end`, where `end = T` without a slide and `end = floor(T / s) * s` (on
//! the UTC epoch, flooring towards negative infinity) with one. Rows with equal event times
//! are all in or all out. Null values are ignored by every function; `count` counts the
//! non-null values. An empty window (no non-null value) gives `count` 0,
//! `count_distinct`/`approx_count_distinct` 0 and null for the rest. `stddev` is the sample
//! standard deviation (n - 1), null below two values. `last` is the value of the latest
//! non-null row in the window by the tie-break of [`crate::ord`] (event time, then created
//! time with null smallest, then row index). Entity rows with a null key or timestamp get
//! null for every function. Keys are matched as in the as-of join (same grouping code).
//!
//! # Output
//!
//! One array per spec, one row per entity row in input order: `Int64` for `count`,
//! `count_distinct`, `approx_count_distinct` and `sum` of an `Int64` column; `Float64` for
//! `sum` of a `Float64` column, `mean` and `stddev`; for `min`, `max` and `last` a nullable
//! `UInt32` index of the winning feature row, so the caller takes the value in the column's
//! own type.
//!
//! # Algorithm
//!
//! Entity and feature rows get group ids from the as-of join's grouping
//! ([`crate::asof::groups`]: one key hasher, one equality). Both sides are counting-sorted
//! by group; feature rows within a group are sorted by the tie-break order (stable, so
//! nearly sorted input is cheap), entity rows by timestamp. Then, per group and spec, two
//! pointers walk the feature rows as the window's end and start move forward (window ends
//! are monotonic in `T`, flooring included): rows entering are added to and rows leaving
//! removed from a running state. Sum/mean use an exact `i128` sum for integers and a
//! Neumaier-compensated sum for floats (non-finite values counted apart, so an infinity
//! leaving the window does not poison it); stddev merges Welford/Chan moments in a two-stack
//! queue (nothing is subtracted, so no drift);
//! min/max a monotonic deque; count_distinct a hash multiset; approx_count_distinct a
//! removable HyperLogLog ([`hll`]). Cost `O(E log E_g + F log F_g)` for the sorts and
//! `O(E + F)` per spec for the walks; groups run in parallel.

mod funcs;
pub(crate) use funcs::{float_sum, neumaier};
pub mod hll;
mod layout;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, UInt32Array};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;

use crate::error::{Error, Result};
use crate::keys::ByteCol;
use crate::mem;

pub(crate) const OP: &str = "the windowed aggregation (window_aggregate)";

/// An aggregate function. The order of the variants is part of the online tile format
/// (`tiles`: a blob stores the discriminant): append new ones, never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    Last,
    Stddev,
    CountDistinct,
    ApproxCountDistinct,
}

impl Function {
    /// The function named `name` (banquet's `Aggregation.function`).
    pub fn parse(name: &str) -> Result<Function> {
        Ok(match name {
            "count" => Function::Count,
            "sum" => Function::Sum,
            "mean" => Function::Mean,
            "min" => Function::Min,
            "max" => Function::Max,
            "last" => Function::Last,
            "stddev" => Function::Stddev,
            "count_distinct" => Function::CountDistinct,
            "approx_count_distinct" => Function::ApproxCountDistinct,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown aggregate function {other:?}; use count, sum, mean, min, max, \
                     last, stddev, count_distinct or approx_count_distinct"
                )))
            }
        })
    }
}

/// One aggregate to compute: `function` of value column `value` over `window` microseconds,
/// ending at the entity time floored to `slide` microseconds if given.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub function: Function,
    pub value: usize,
    pub window: i64,
    pub slide: Option<i64>,
}

impl Spec {
    /// The window's end for an entity row at `t`.
    #[inline]
    pub(crate) fn end(&self, t: i64) -> i64 {
        match self.slide {
            None => t,
            Some(s) => t - t.rem_euclid(s),
        }
    }
}

/// A value column as the functions read it.
#[derive(Clone, Copy)]
pub(crate) enum Values<'a> {
    Int(&'a [i64]),
    Float(&'a [f64]),
    Bytes(ByteCol<'a>),
    /// Only validity is used (count, last of any type).
    Any,
}

/// See the module documentation.
///
/// Errors: [`Error::Mismatch`] for inputs that do not line up, [`Error::UnsupportedType`]
/// for a value column a function cannot take, [`Error::Invalid`] for a non-positive window
/// or slide, an unknown value index, or an integer sum that overflows `Int64`.
#[allow(clippy::too_many_arguments)]
pub fn window_aggregate(
    entity_keys: &[ArrayRef],
    entity_ts: &dyn Array,
    feature_keys: &[ArrayRef],
    feature_ts: &dyn Array,
    feature_created: Option<&dyn Array>,
    values: &[ArrayRef],
    specs: &[Spec],
) -> Result<Vec<ArrayRef>> {
    let n_feat = feature_ts.len();
    for (i, v) in values.iter().enumerate() {
        if v.len() != n_feat {
            return Err(Error::Mismatch(format!(
                "value column {i} has {} rows, feature_ts has {n_feat}",
                v.len()
            )));
        }
    }
    let mut cols = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        if s.window <= 0 {
            return Err(Error::Invalid(format!(
                "spec {i}: window must be > 0 microseconds, got {}",
                s.window
            )));
        }
        if s.slide.is_some_and(|x| x <= 0) {
            return Err(Error::Invalid(format!(
                "spec {i}: slide must be > 0 microseconds, got {:?}",
                s.slide
            )));
        }
        let v = values.get(s.value).ok_or_else(|| {
            Error::Invalid(format!(
                "spec {i} names value column {}, there are {}",
                s.value,
                values.len()
            ))
        })?;
        cols.push(read_values(s.function, v.as_ref(), i)?);
    }
    let n_ent = entity_ts.len();
    // slots and permutations (4 + 4 bytes per row each side), plus per spec the gathered
    // values (9 bytes per feature row) and the outputs (16 bytes per entity row)
    let per_spec = specs.len().max(1);
    mem::check(
        OP,
        mem::bytes(n_ent, 16 + 16 * per_spec, n_feat.saturating_mul(24 + 9)),
    )?;
    let lay = layout::Layout::build(
        entity_keys,
        entity_ts,
        feature_keys,
        feature_ts,
        feature_created,
    )?;
    let mut out = Vec::with_capacity(specs.len());
    let mut cache = funcs::Cache::default();
    for (s, (spec, vals)) in specs.iter().zip(&cols).enumerate() {
        let nulls = values[spec.value].logical_nulls();
        let arr =
            funcs::run(&lay, spec, *vals, nulls.as_ref(), &mut cache).map_err(|e| match e {
                Error::Invalid(m) => Error::Invalid(format!("spec {s}: {m}")),
                e => e,
            })?;
        out.push(arr);
    }
    Ok(out)
}

fn read_values<'a>(f: Function, v: &'a dyn Array, i: usize) -> Result<Values<'a>> {
    let bad = |expected: &str| Error::UnsupportedType {
        column: format!("value column of spec {i} ({f:?})"),
        found: v.data_type().clone(),
        expected: expected.to_string(),
    };
    Ok(match f {
        Function::Count | Function::Last => Values::Any,
        Function::Sum | Function::Mean | Function::Stddev | Function::Min | Function::Max => {
            match v.data_type() {
                DataType::Int64 => Values::Int(v.as_primitive::<Int64Type>().values()),
                DataType::Float64 => Values::Float(v.as_primitive::<Float64Type>().values()),
                _ => return Err(bad("int64 or float64")),
            }
        }
        Function::CountDistinct | Function::ApproxCountDistinct => match v.data_type() {
            DataType::Int64 => Values::Int(v.as_primitive::<Int64Type>().values()),
            _ => match ByteCol::new(v) {
                Some(b) => Values::Bytes(b),
                None => return Err(bad("int64, string or binary")),
            },
        },
    })
}

/// Builds a nullable array from per-row values and validity.
pub(crate) fn int64(vals: Vec<i64>, valid: Option<NullBuffer>) -> ArrayRef {
    Arc::new(Int64Array::new(vals.into(), valid))
}

pub(crate) fn float64(vals: Vec<f64>, valid: Option<NullBuffer>) -> ArrayRef {
    Arc::new(Float64Array::new(vals.into(), valid))
}

pub(crate) fn uint32(vals: Vec<u32>, valid: Option<NullBuffer>) -> ArrayRef {
    Arc::new(UInt32Array::new(vals.into(), valid))
}
