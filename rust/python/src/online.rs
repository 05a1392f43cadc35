//! The online hot path: a whole `get_online_features` request in one call.
//!
//! `decode_values` returns pyarrow arrays, which costs ~10 µs per column to hand over: fine
//! for materialization-sized batches, too slow for a 1-entity request. `OnlinePlan` keeps the
//! request's views, key columns and value decoders on the Rust side (built once per resolved
//! request) and decodes each blob row by row straight into Python objects (no Arrow arrays
//! for a handful of rows); on the SQLite store it also serializes the keys and does the
//! lookups, with the GIL released.

use arrow_array::builder::BinaryBuilder;
use arrow_array::{Array, ArrayRef};
use arrow_schema::FieldRef;
use banquet_core::values::{RowValue, Scalar};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString};
use pyo3_arrow::PySchema;

use crate::gil::run_detached;
use crate::sqlite::SqliteStore;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<OnlinePlan>()?;
    m.add_function(wrap_pyfunction!(serialize_key_rows, m)?)
}

/// Serialize entity keys given as Python lists (one per join key, same length), for the
/// online path: no pyarrow round trip. `kinds` are banquet type names: int64, int32, string,
/// bytes. A value of another Python type raises TypeError (the caller then reports it with
/// the entity's name).
#[pyfunction]
pub fn serialize_key_rows<'py>(
    py: Python<'py>,
    names: Vec<String>,
    columns: Vec<Bound<'py, PyList>>,
    kinds: Vec<String>,
) -> PyResult<Bound<'py, PyList>> {
    use arrow_array::{BinaryArray, Int32Array, Int64Array, StringArray};
    use std::sync::Arc;

    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (col, kind) in columns.iter().zip(&kinds) {
        let array: ArrayRef = match kind.as_str() {
            "int64" => Arc::new(Int64Array::from(
                col.iter()
                    .map(|v| v.extract::<i64>())
                    .collect::<PyResult<Vec<_>>>()?,
            )),
            "int32" => Arc::new(Int32Array::from(
                col.iter()
                    .map(|v| v.extract::<i32>())
                    .collect::<PyResult<Vec<_>>>()?,
            )),
            "string" => {
                let items: Vec<Bound<'py, PyString>> = col
                    .iter()
                    .map(|v| v.cast_into::<PyString>().map_err(PyErr::from))
                    .collect::<PyResult<_>>()?;
                let strs = items
                    .iter()
                    .map(|s| s.to_str())
                    .collect::<PyResult<Vec<&str>>>()?;
                Arc::new(StringArray::from(strs))
            }
            "bytes" => {
                let items: Vec<Bound<'py, PyBytes>> = col
                    .iter()
                    .map(|v| v.cast_into::<PyBytes>().map_err(PyErr::from))
                    .collect::<PyResult<_>>()?;
                Arc::new(BinaryArray::from(
                    items.iter().map(|b| b.as_bytes()).collect::<Vec<_>>(),
                ))
            }
            other => {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "no fast path for {other} keys"
                )))
            }
        };
        arrays.push(array);
    }
    let keys = run_detached(py, || {
        banquet_core::keys::serialize_entity_keys(&names, &arrays)
    })?;
    let out = PyList::empty(py);
    for i in 0..keys.len() {
        out.append(PyBytes::new(py, keys.value(i)))?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// OnlinePlan: a whole get_online_features request in one call
// ---------------------------------------------------------------------------------------

/// How one join key's Python values become a key column.
#[derive(Clone, Copy)]
enum KeyKind {
    Int64,
    Int32,
    String,
    Bytes,
    /// Anything else (timestamps, ...): the fast path steps aside.
    Other,
}

/// The join keys of one or more views: names, the entity columns holding them, their kinds.
struct KeySig {
    names: Vec<String>,
    columns: Vec<String>,
    kinds: Vec<KeyKind>,
}

/// One feature view of the request.
struct ViewPlan {
    name: String,
    sig: usize,
    fields: Vec<FieldRef>,
    decoder: banquet_core::values::ValueDecoder,
    ttl_us: Option<i64>,
    /// An aggregated view: its blobs are tiles (`crate::tiles`), merged at `now_us`.
    tiles: Option<Vec<banquet_core::tiles::TileSpec>>,
}

/// One output column: its name, the view and the field position in the view's schema.
struct Output {
    name: Py<PyString>,
    view: usize,
    field: usize,
}

/// A resolved online request, kept on the Rust side: `serve` runs a whole request on the
/// SQLite store in one call (entity rows -> keys -> lookups -> decode -> Python lists), and
/// `assemble` does the decode-and-assemble half for blobs another store returned.
#[pyclass(frozen, module = "banquet._core")]
pub struct OnlinePlan {
    sigs: Vec<KeySig>,
    views: Vec<ViewPlan>,
    outputs: Vec<Output>,
    /// The project the SELECT statements were built for, and one per view.
    statements: std::sync::Mutex<(String, std::sync::Arc<Vec<String>>)>,
}

#[pymethods]
impl OnlinePlan {
    /// `sigs`: `(join key names, entity column names, kinds)`; `views`: `(view name, sig
    /// index, value schema, ttl_us or None)`; `outputs`: `(name, view index, field index)`
    /// in request order. Kinds are banquet type names (int64, int32, string, bytes; others
    /// disable `serve`).
    /// `tiles`: per view, None or the tile specs of an aggregated view.
    #[new]
    #[pyo3(signature = (sigs, views, outputs, tiles=None))]
    fn new(
        py: Python<'_>,
        sigs: Vec<(Vec<String>, Vec<String>, Vec<String>)>,
        views: Vec<(String, usize, PySchema, Option<i64>)>,
        outputs: Vec<(String, usize, usize)>,
        tiles: Option<Vec<Option<Vec<crate::tiles::SpecArg>>>>,
    ) -> PyResult<Self> {
        let mut tiles = tiles.unwrap_or_default();
        tiles.resize(views.len(), None);
        let sigs: Vec<KeySig> = sigs
            .into_iter()
            .map(|(names, columns, kinds)| KeySig {
                names,
                columns,
                kinds: kinds
                    .iter()
                    .map(|k| match k.as_str() {
                        "int64" => KeyKind::Int64,
                        "int32" => KeyKind::Int32,
                        "string" => KeyKind::String,
                        "bytes" => KeyKind::Bytes,
                        _ => KeyKind::Other,
                    })
                    .collect(),
            })
            .collect();
        let views: Vec<ViewPlan> = views
            .into_iter()
            .zip(tiles)
            .map(|((name, sig, schema, ttl_us), tiles)| {
                let fields: Vec<FieldRef> = schema.into_inner().fields().iter().cloned().collect();
                Ok(ViewPlan {
                    name,
                    sig,
                    decoder: banquet_core::values::ValueDecoder::new(&fields)
                        .map_err(crate::errors::to_py)?,
                    fields,
                    ttl_us,
                    tiles: tiles.map(crate::tiles::specs_of).transpose()?,
                })
            })
            .collect::<PyResult<_>>()?;
        for v in &views {
            if v.sig >= sigs.len() {
                return Err(PyTypeError::new_err(
                    "OnlinePlan: a view's key index is out of range",
                ));
            }
        }
        let outputs = outputs
            .into_iter()
            .map(|(name, view, field)| {
                if views.get(view).is_none_or(|v| field >= v.fields.len()) {
                    return Err(PyTypeError::new_err(format!(
                        "OnlinePlan: output {name:?} points outside its view"
                    )));
                }
                Ok(Output {
                    name: PyString::new(py, &name).unbind(),
                    view,
                    field,
                })
            })
            .collect::<PyResult<_>>()?;
        Ok(OnlinePlan {
            sigs,
            views,
            outputs,
            statements: std::sync::Mutex::new((String::new(), Default::default())),
        })
    }

    /// The whole request on the SQLite store: `(columns, event_ts per view)`, where
    /// `columns` holds the entity columns given, then the features in request order (None
    /// for nulls, missing keys and values older than the view's ttl at `now_us`), and
    /// `event_ts` one list per view (UTC µs, None when not found). Returns None, having
    /// done nothing, when the entity rows are not the plain shape this path handles (a list
    /// of dicts with the same keys, or a dict of lists, holding exactly int / str / bytes
    /// keys of the declared kinds); the caller then takes the general path, which also
    /// reports bad input precisely.
    fn serve<'py>(
        &self,
        py: Python<'py>,
        store: &Bound<'py, SqliteStore>,
        project: &str,
        entity_rows: &Bound<'py, PyAny>,
        now_us: i64,
    ) -> PyResult<Option<(Bound<'py, PyDict>, Bound<'py, PyList>)>> {
        let Some((entity, n)) = entity_columns(py, entity_rows)? else {
            return Ok(None);
        };
        let mut keys = Vec::with_capacity(self.sigs.len());
        for sig in &self.sigs {
            match key_arrays(sig, &entity)? {
                Some(arrays) => keys.push(arrays),
                None => return Ok(None),
            }
        }
        let store = &store.get().inner;
        let sql = {
            let mut cached = self.statements.lock().unwrap_or_else(|e| e.into_inner());
            if cached.0 != project || cached.1.is_empty() {
                let sql = self
                    .views
                    .iter()
                    .map(|v| banquet_core::sqlite::select_sql(project, &v.name))
                    .collect();
                *cached = (project.to_string(), std::sync::Arc::new(sql));
            }
            std::sync::Arc::clone(&cached.1)
        };
        let blobs = run_detached(py, || {
            let keys = keys
                .iter()
                .zip(&self.sigs)
                .map(|(arrays, sig)| banquet_core::keys::serialize_entity_keys(&sig.names, arrays))
                .collect::<banquet_core::Result<Vec<_>>>()?;
            let slices: Vec<Vec<&[u8]>> =
                keys.iter().map(|k| k.iter().flatten().collect()).collect();
            let requests: Vec<(&str, &str, &[&[u8]])> = self
                .views
                .iter()
                .zip(sql.iter())
                .map(|(v, sql)| (v.name.as_str(), sql.as_str(), slices[v.sig].as_slice()))
                .collect();
            store.read_views(&requests)
        })?;
        let out = PyDict::new(py);
        for (name, col) in &entity {
            out.set_item(name, col)?;
        }
        let evs = self.fill(py, &out, &blobs, n, now_us)?;
        Ok(Some((out, evs)))
    }

    /// `serve`'s second half for blobs read by another store: `blobs[i]` holds view i's
    /// blobs (None = not found) in entity-row order; `entity` the entity columns, copied
    /// first into the result.
    fn assemble<'py>(
        &self,
        py: Python<'py>,
        entity: &Bound<'py, PyDict>,
        blobs: Vec<Bound<'py, PyList>>,
        now_us: i64,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyList>)> {
        if blobs.len() != self.views.len() {
            return Err(PyTypeError::new_err(format!(
                "assemble: {} blob lists for {} views",
                blobs.len(),
                self.views.len()
            )));
        }
        let n = blobs.first().map_or(0, |b| b.len());
        let mut arrays = Vec::with_capacity(blobs.len());
        for list in &blobs {
            if list.len() != n {
                return Err(PyTypeError::new_err(
                    "assemble: blob lists differ in length",
                ));
            }
            let mut builder = BinaryBuilder::with_capacity(n, 128 * n);
            for item in list.iter() {
                if item.is_none() {
                    builder.append_null();
                } else {
                    builder.append_value(item.cast::<PyBytes>()?.as_bytes());
                }
            }
            arrays.push(builder.finish());
        }
        let out = entity.copy()?;
        let evs = self.fill(py, &out, &arrays, n, now_us)?;
        Ok((out, evs))
    }
}

impl OnlinePlan {
    /// Decodes `blobs` (one array per view, `n` rows each, null = not found) and adds the
    /// output columns to `out`; returns the event times per view. Values older than the
    /// view's ttl at `now_us` read as None (OUTSIDE_MAX_AGE).
    fn fill<'py>(
        &self,
        py: Python<'py>,
        out: &Bound<'py, PyDict>,
        blobs: &[arrow_array::BinaryArray],
        n: usize,
        now_us: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        // Row by row, straight from the blob bytes (no Arrow arrays: a request holds a few
        // rows), into one flat table per view: row r's field k is values[r * fields + k].
        // aggregated views: each row's window merged first (owned values the rows borrow)
        let merged: Vec<Option<Vec<crate::tiles::Merged>>> = self
            .views
            .iter()
            .zip(blobs)
            .map(|(v, b)| {
                v.tiles
                    .as_ref()
                    .map(|specs| crate::tiles::merge_rows(specs, b, now_us))
                    .transpose()
            })
            .collect::<PyResult<_>>()?;
        let mut tables = Vec::with_capacity(self.views.len());
        let evs = PyList::empty(py);
        for ((v, blobs), merged) in self.views.iter().zip(blobs).zip(&merged) {
            let nf = v.fields.len();
            if let Some(rows) = merged {
                let mut values = Vec::with_capacity(n * nf);
                let mut ev = Vec::with_capacity(n);
                for row in rows {
                    match row {
                        None => {
                            values.extend(std::iter::repeat_n(RowValue::Null, nf));
                            ev.push(py.None().into_bound(py));
                        }
                        Some((ts, outs)) => {
                            for (f, o) in v.fields.iter().zip(outs) {
                                values.push(crate::tiles::row_value(f.data_type(), o));
                            }
                            ev.push(ts.into_pyobject(py)?.into_any());
                        }
                    }
                }
                evs.append(PyList::new(py, ev)?)?;
                tables.push((values, Vec::new(), vec![false; n], nf));
                continue;
            }
            let mut values = Vec::with_capacity(n * nf);
            let mut elems = Vec::new();
            let mut expired = Vec::with_capacity(n);
            let mut ev = Vec::with_capacity(n);
            for r in 0..n {
                if blobs.is_null(r) {
                    values.extend(std::iter::repeat_n(RowValue::Null, nf));
                    ev.push(py.None().into_bound(py));
                    expired.push(false);
                    continue;
                }
                let (ts, _) = v
                    .decoder
                    .decode_row(r, blobs.value(r), &mut values, &mut elems)
                    .map_err(|e| corrupt_in_view(out, &self.sigs[v.sig], r, e, &v.name))?;
                expired.push(v.ttl_us.is_some_and(|ttl| now_us.saturating_sub(ts) > ttl));
                ev.push(ts.into_pyobject(py)?.into_any());
            }
            evs.append(PyList::new(py, ev)?)?;
            tables.push((values, elems, expired, nf));
        }
        for o in &self.outputs {
            let (values, elems, expired, nf) = &tables[o.view];
            let items = (0..n)
                .map(|r| {
                    if expired[r] {
                        Ok(py.None().into_bound(py))
                    } else {
                        row_value(py, &values[r * nf + o.field], elems)
                    }
                })
                .collect::<PyResult<Vec<_>>>()?;
            out.set_item(o.name.bind(py), PyList::new(py, items)?)?;
        }
        Ok(evs)
    }
}

/// [`crate::errors::to_py_in_view`] with the row's entity key in the message, read back
/// from the entity columns already in `out` (`user_id=1001`): the client learns which key's
/// stored value is damaged, not only which view.
fn corrupt_in_view(
    out: &Bound<'_, PyDict>,
    sig: &KeySig,
    row: usize,
    err: banquet_core::Error,
    view: &str,
) -> PyErr {
    let err = match err {
        banquet_core::Error::Corrupt(msg) => {
            banquet_core::Error::Corrupt(format!("entity {}: {msg}", describe_key(out, sig, row)))
        }
        other => other,
    };
    crate::errors::to_py_in_view(err, view)
}

/// `col=repr(value), ...` for the join key columns of row `row`, each value cut at 64
/// characters (a key can be a long string or bytes) and the whole at 200.
fn describe_key(out: &Bound<'_, PyDict>, sig: &KeySig, row: usize) -> String {
    let parts: Vec<String> = sig
        .columns
        .iter()
        .map(|c| {
            let value = out
                .get_item(c)
                .ok()
                .flatten()
                .and_then(|col| col.get_item(row).ok())
                .and_then(|v| v.repr().ok())
                .map_or_else(|| "?".to_string(), |r| r.to_string());
            format!("{c}={}", truncate(value, 64))
        })
        .collect();
    truncate(parts.join(", "), 200)
}

/// `s` cut to at most `max` characters, marked with `...` when cut.
fn truncate(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s,
    }
}

/// A decoded value as a Python object (timestamps as UTC µs ints, float32 as float).
fn row_value<'py>(
    py: Python<'py>,
    v: &RowValue<'_>,
    elems: &[Option<Scalar<'_>>],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        RowValue::Null => py.None().into_bound(py),
        RowValue::Scalar(s) => scalar(py, s)?,
        RowValue::List { start, len } => {
            let items = elems[*start..start + len]
                .iter()
                .map(|e| match e {
                    Some(s) => scalar(py, s),
                    None => Ok(py.None().into_bound(py)),
                })
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
    })
}

fn scalar<'py>(py: Python<'py>, s: &Scalar<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match *s {
        Scalar::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Scalar::I32(x) => x.into_pyobject(py)?.into_any(),
        Scalar::I64(x) | Scalar::Timestamp(x) => x.into_pyobject(py)?.into_any(),
        Scalar::F32(x) => (x as f64).into_pyobject(py)?.into_any(),
        Scalar::F64(x) => x.into_pyobject(py)?.into_any(),
        Scalar::Str(x) => PyString::new(py, x).into_any(),
        Scalar::Bin(x) => PyBytes::new(py, x).into_any(),
    })
}

/// Entity rows as `(name, column)` pairs and the row count, or None when they are not a
/// non-empty list of dicts with the same keys, or a dict of equally long lists.
type EntityCols<'py> = Vec<(Bound<'py, PyAny>, Bound<'py, PyList>)>;

fn entity_columns<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyAny>,
) -> PyResult<Option<(EntityCols<'py>, usize)>> {
    if let Ok(dict) = rows.cast::<PyDict>() {
        let mut cols = Vec::with_capacity(dict.len());
        let mut n = None;
        for (k, v) in dict.iter() {
            let Ok(list) = v.cast_into::<PyList>() else {
                return Ok(None);
            };
            if *n.get_or_insert(list.len()) != list.len() {
                return Ok(None);
            }
            cols.push((k, list));
        }
        return Ok(n.map(|n| (cols, n)));
    }
    let Ok(list) = rows.cast::<PyList>() else {
        return Ok(None);
    };
    let n = list.len();
    let Some(first) = list.iter().next() else {
        return Ok(None);
    };
    let Ok(first) = first.cast_into::<PyDict>() else {
        return Ok(None);
    };
    let names: Vec<Bound<'py, PyAny>> = first.keys().iter().collect();
    let mut values: Vec<Vec<Bound<'py, PyAny>>> =
        names.iter().map(|_| Vec::with_capacity(n)).collect();
    for row in list.iter() {
        let Ok(row) = row.cast_into::<PyDict>() else {
            return Ok(None);
        };
        if row.len() != names.len() {
            return Ok(None);
        }
        for (name, col) in names.iter().zip(values.iter_mut()) {
            match row.get_item(name)? {
                Some(v) => col.push(v),
                None => return Ok(None),
            }
        }
    }
    let cols = names
        .into_iter()
        .zip(values)
        .map(|(name, col)| Ok((name, PyList::new(py, col)?)))
        .collect::<PyResult<_>>()?;
    Ok(Some((cols, n)))
}

/// One Arrow array per join key of `sig` from the entity columns, or None when a column is
/// missing or holds a value that is not exactly the declared kind (bool is not an int here).
fn key_arrays(sig: &KeySig, entity: &EntityCols<'_>) -> PyResult<Option<Vec<ArrayRef>>> {
    use arrow_array::{BinaryArray, Int32Array, Int64Array, StringArray};
    use std::sync::Arc;

    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(sig.columns.len());
    for (column, kind) in sig.columns.iter().zip(&sig.kinds) {
        let mut found = None;
        for (name, col) in entity {
            if name.cast::<PyString>().is_ok_and(|s| s == column.as_str()) {
                found = Some(col);
                break;
            }
        }
        let Some(col) = found else { return Ok(None) };
        let array: ArrayRef = match kind {
            KeyKind::Int64 | KeyKind::Int32 => {
                let mut v = Vec::with_capacity(col.len());
                for item in col.iter() {
                    if !item.is_exact_instance_of::<PyInt>() {
                        return Ok(None);
                    }
                    match item.extract::<i64>() {
                        Ok(x) => v.push(x),
                        Err(_) => return Ok(None),
                    }
                }
                if let KeyKind::Int32 = kind {
                    let Ok(v) = v
                        .iter()
                        .map(|&x| i32::try_from(x))
                        .collect::<Result<Vec<_>, _>>()
                    else {
                        return Ok(None);
                    };
                    Arc::new(Int32Array::from(v))
                } else {
                    Arc::new(Int64Array::from(v))
                }
            }
            KeyKind::String => {
                let mut v = Vec::with_capacity(col.len());
                for item in col.iter() {
                    let Ok(s) = item.cast_exact::<PyString>() else {
                        return Ok(None);
                    };
                    match s.to_str() {
                        Ok(s) => v.push(s.to_owned()),
                        Err(_) => return Ok(None),
                    }
                }
                Arc::new(StringArray::from(v))
            }
            KeyKind::Bytes => {
                let mut v = Vec::with_capacity(col.len());
                for item in col.iter() {
                    let Ok(b) = item.cast_exact::<PyBytes>() else {
                        return Ok(None);
                    };
                    v.push(b.as_bytes().to_vec());
                }
                Arc::new(BinaryArray::from_iter_values(v))
            }
            KeyKind::Other => return Ok(None),
        };
        arrays.push(array);
    }
    Ok(Some(arrays))
}
