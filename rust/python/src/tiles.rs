//! Bindings for banquet_core::tiles (see python/banquet/_core.pyi for the contract).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, Float64Builder, Int64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use banquet_core::tiles::{self, Func, Kind, Out, TileSet, TileSpec, Val};
use banquet_core::values::{RowValue, Scalar};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use pyo3_arrow::PyArray;

use crate::codec::to_pyarrow;
use crate::errors::to_py;

pub(crate) type SpecArg = (String, String, i64, i64);

pub(crate) fn specs_of(specs: Vec<SpecArg>) -> PyResult<Vec<TileSpec>> {
    specs
        .into_iter()
        .map(|(f, k, window, slide)| {
            let kind = match k.as_str() {
                "int" => Kind::Int,
                "float" => Kind::Float,
                "bytes" => Kind::Bytes,
                _ => {
                    return Err(banquet_core::Error::Invalid(format!(
                        "unknown tile value kind {k:?}"
                    )))
                }
            };
            let s = TileSpec {
                func: Func::parse(&f)?,
                kind,
                window,
                slide,
            };
            s.check()?;
            Ok(s)
        })
        .collect::<banquet_core::Result<Vec<_>>>()
        .map_err(to_py)
}

fn value_at(a: &dyn Array, kind: Kind, i: usize) -> Option<Val> {
    if a.is_null(i) {
        return None;
    }
    Some(match kind {
        Kind::Int => Val::I(a.as_primitive::<Int64Type>().value(i)),
        Kind::Float => Val::F(a.as_primitive::<Float64Type>().value(i)),
        Kind::Bytes => Val::B(a.as_binary::<i32>().value(i).to_vec()),
    })
}

fn check_kind(a: &dyn Array, kind: Kind) -> PyResult<()> {
    let want = match kind {
        Kind::Int => DataType::Int64,
        Kind::Float => DataType::Float64,
        Kind::Bytes => DataType::Binary,
    };
    if a.data_type() != &want {
        return Err(to_py(banquet_core::Error::Invalid(format!(
            "tile values of kind {kind:?} must be {want}, got {}",
            a.data_type()
        ))));
    }
    Ok(())
}

/// Rows (serialized keys, event times, created times, one value column per spec) to one
/// tile blob per distinct key: (keys in byte order, blobs).
#[pyfunction]
#[pyo3(signature = (keys, event_ts, created_ts, values, specs))]
fn tiles_build<'py>(
    py: Python<'py>,
    keys: PyArray,
    event_ts: PyArray,
    created_ts: Option<PyArray>,
    values: Vec<PyArray>,
    specs: Vec<SpecArg>,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let specs = specs_of(specs)?;
    let keys = keys.into_inner().0;
    let ts = event_ts.into_inner().0;
    let created = created_ts.map(|c| c.into_inner().0);
    let values: Vec<ArrayRef> = values.into_iter().map(|v| v.into_inner().0).collect();
    if values.len() != specs.len() {
        return Err(to_py(banquet_core::Error::Mismatch(
            "one value column per spec".into(),
        )));
    }
    for (v, s) in values.iter().zip(&specs) {
        check_kind(v.as_ref(), s.kind)?;
    }
    let keys = keys.as_binary::<i32>();
    let ts = ts.as_primitive::<Int64Type>();
    let created = created.as_ref().map(|c| c.as_primitive::<Int64Type>());
    let mut sets: BTreeMap<&[u8], TileSet> = BTreeMap::new();
    for i in 0..keys.len() {
        if keys.is_null(i) || ts.is_null(i) {
            continue;
        }
        let c = created
            .filter(|c| c.is_valid(i))
            .map_or(i64::MIN, |c| c.value(i));
        let vals = values
            .iter()
            .zip(&specs)
            .map(|(v, s)| value_at(v.as_ref(), s.kind, i))
            .collect();
        sets.entry(keys.value(i))
            .or_insert_with(|| TileSet::new(specs.len()))
            .add_row(&specs, ts.value(i), c, vals);
    }
    let out_keys = PyList::empty(py);
    let out_blobs = PyList::empty(py);
    for (k, set) in sets {
        out_keys.append(PyBytes::new(py, k))?;
        out_blobs.append(PyBytes::new(py, &tiles::encode(&specs, &set)))?;
    }
    Ok((out_keys, out_blobs))
}

/// Merge new tile blobs into the stored ones (None: no stored row): `replace=(lo, hi)`
/// replaces the tiles holding rows in `(lo, hi]` (a materialization), None adds (pushes).
/// Then expires old tiles. Returns (newest event time, blob) per row.
#[pyfunction]
#[pyo3(signature = (old, new, specs, replace=None))]
fn tiles_merge(
    old: Vec<Option<Bound<'_, PyBytes>>>,
    new: Vec<Bound<'_, PyBytes>>,
    specs: Vec<SpecArg>,
    replace: Option<(i64, i64)>,
) -> PyResult<(Vec<i64>, Vec<Vec<u8>>)> {
    let specs = specs_of(specs)?;
    let mut stamps = Vec::with_capacity(new.len());
    let mut blobs = Vec::with_capacity(new.len());
    for (o, n) in old.iter().zip(&new) {
        let fresh = tiles::decode(&specs, n.as_bytes()).map_err(to_py)?;
        let mut set = match o {
            Some(b) => tiles::decode(&specs, b.as_bytes()).map_err(to_py)?,
            None => TileSet::new(specs.len()),
        };
        match replace {
            Some((lo, hi)) => set.replace_tiles(&specs, &fresh, lo, hi),
            None => set.add_tiles(&specs, &fresh),
        }
        set.expire(&specs);
        stamps.push(set.newest);
        blobs.push(tiles::encode(&specs, &set));
    }
    Ok((stamps, blobs))
}

/// The aggregates of each blob (None: no row) at instant `at_us`: (newest event time per
/// row, or None; one array per spec: int64 / float64 / binary by function and kind).
#[pyfunction]
#[pyo3(signature = (blobs, specs, at_us))]
fn tiles_read<'py>(
    py: Python<'py>,
    blobs: Vec<Option<Bound<'py, PyBytes>>>,
    specs: Vec<SpecArg>,
    at_us: i64,
) -> PyResult<(Vec<Option<i64>>, Bound<'py, PyList>)> {
    let specs = specs_of(specs)?;
    let n = blobs.len();
    let mut stamps = Vec::with_capacity(n);
    let mut outs: Vec<Vec<Out>> = vec![Vec::with_capacity(n); specs.len()];
    for b in &blobs {
        let set = match b {
            Some(b) => Some(tiles::decode(&specs, b.as_bytes()).map_err(to_py)?),
            None => None,
        };
        stamps.push(set.as_ref().map(|s| s.newest));
        for (i, s) in specs.iter().enumerate() {
            outs[i].push(match &set {
                None => Out::Null,
                Some(set) => tiles::finish(s, &set.window(&specs, i, at_us)).map_err(to_py)?,
            });
        }
    }
    let list = PyList::empty(py);
    for (s, col) in specs.iter().zip(outs) {
        let arr: ArrayRef = match (s.func, s.kind) {
            (Func::Count | Func::CountDistinct | Func::ApproxCountDistinct, _)
            | (Func::Sum, Kind::Int)
            | (Func::Min | Func::Max | Func::Last, Kind::Int) => {
                let mut b = Int64Builder::with_capacity(n);
                for o in col {
                    match o {
                        Out::Int(x) | Out::Val(Val::I(x)) => b.append_value(x),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            (Func::Min | Func::Max | Func::Last, Kind::Bytes) => {
                let mut b = BinaryBuilder::with_capacity(n, 0);
                for o in col {
                    match o {
                        Out::Val(Val::B(x)) => b.append_value(x),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            _ => {
                let mut b = Float64Builder::with_capacity(n);
                for o in col {
                    match o {
                        Out::Float(x) | Out::Val(Val::F(x)) => b.append_value(x),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        };
        list.append(to_pyarrow(py, arr)?)?;
    }
    Ok((stamps, list))
}

/// One row of an aggregated view merged at read time: None (no blob) or (newest event
/// time, one aggregate per spec).
pub(crate) type Merged = Option<(i64, Vec<Out>)>;

/// `OnlinePlan`'s half: each blob's aggregates at `at_us`.
pub(crate) fn merge_rows(
    specs: &[TileSpec],
    blobs: &arrow_array::BinaryArray,
    at_us: i64,
) -> PyResult<Vec<Merged>> {
    (0..blobs.len())
        .map(|r| {
            if blobs.is_null(r) {
                return Ok(None);
            }
            let (newest, outs) = tiles::read_window(specs, blobs.value(r), at_us).map_err(to_py)?;
            Ok(Some((newest, outs)))
        })
        .collect()
}

/// An aggregate as the value decoder would give it for a field of type `dt`.
pub(crate) fn row_value<'a>(dt: &DataType, o: &'a Out) -> RowValue<'a> {
    let int = |x: i64| match dt {
        DataType::Int32 => Scalar::I32(x as i32),
        DataType::Timestamp(_, _) => Scalar::Timestamp(x),
        DataType::Boolean => Scalar::Bool(x != 0),
        DataType::Float64 => Scalar::F64(x as f64),
        _ => Scalar::I64(x),
    };
    RowValue::Scalar(match o {
        Out::Null => return RowValue::Null,
        Out::Int(x) | Out::Val(Val::I(x)) => int(*x),
        Out::Float(x) | Out::Val(Val::F(x)) => match dt {
            DataType::Float32 => Scalar::F32(*x as f32),
            _ => Scalar::F64(*x),
        },
        Out::Val(Val::B(b)) => match (dt, std::str::from_utf8(b)) {
            (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, Ok(s)) => Scalar::Str(s),
            _ => Scalar::Bin(b),
        },
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tiles_build, m)?)?;
    m.add_function(wrap_pyfunction!(tiles_merge, m)?)?;
    m.add_function(wrap_pyfunction!(tiles_read, m)?)
}
