//! A dataset's files: one file, a directory of files, or a hive-partitioned directory
//! (`key=value` path segments become columns), each with its Parquet footer read once.
//!
//! Partition columns follow pyarrow's hive discovery: a key whose values are all integers
//! that fit 32 bits is an `int32` column, any other a `string` column; a value is
//! percent-decoded, and `__HIVE_DEFAULT_PARTITION__` is null. The dataset's schema is the
//! first file's, then the partition columns in order of first appearance.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::ParquetMetaDataReader;
use rayon::prelude::*;

use super::read::Fetched;
use super::store::{Object, Store};
use crate::{Error, Result};

/// One Parquet file of a dataset.
pub struct FileEntry {
    pub object: Object,
    /// The path as messages show it.
    pub display: String,
    pub meta: ArrowReaderMetadata,
    /// The value of each partition column for this file (a one-row array; null if the
    /// file's path lacks the key).
    pub parts: Vec<ArrayRef>,
}

/// A dataset opened for scanning.
pub struct Dataset {
    pub store: Arc<Store>,
    pub location: String,
    pub files: Vec<FileEntry>,
    /// The first file's columns, then the partition columns.
    pub schema: SchemaRef,
    /// How many of `schema`'s fields are partition columns (the last ones).
    pub n_partitions: usize,
}

const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

impl Dataset {
    /// Lists `location` and reads every file's footer (in parallel; call inside the
    /// process's rayon pool).
    pub fn open(
        location: &str,
        options: Option<&std::collections::HashMap<String, String>>,
    ) -> Result<Dataset> {
        let (store, root) = Store::open(location, options)?;
        let store = Arc::new(store);
        let objects = store.list(&root)?;
        let metas: Vec<Result<ArrowReaderMetadata>> =
            objects.par_iter().map(|o| read_footer(&store, o)).collect();
        let (names, values) = partitions(&root, &objects);
        let part_types: Vec<DataType> = values.iter().map(|v| infer_type(v)).collect();
        let mut files = Vec::with_capacity(objects.len());
        for (i, (object, meta)) in objects.into_iter().zip(metas).enumerate() {
            let parts = values
                .iter()
                .zip(&part_types)
                .map(|(vals, t)| part_value(vals[i].as_deref(), t))
                .collect();
            files.push(FileEntry {
                display: store.display(&object.key),
                object,
                meta: meta?,
                parts,
            });
        }
        let mut fields: Vec<Arc<Field>> = match files.first() {
            Some(f) => f.meta.schema().fields().iter().cloned().collect(),
            None => Vec::new(),
        };
        let n_partitions = names.len();
        for (name, t) in names.iter().zip(&part_types) {
            if fields.iter().any(|f| f.name() == name) {
                return Err(Error::Source(format!(
                    "{}: the partition key {name:?} is also a column of the files; rename one",
                    store.display(&root)
                )));
            }
            fields.push(Arc::new(Field::new(name, t.clone(), true)));
        }
        Ok(Dataset {
            location: location.to_string(),
            store,
            files,
            schema: Arc::new(Schema::new(fields)),
            n_partitions,
        })
    }
}

/// The footer of `object`: one read of its last 64 KiB, a second one only when the
/// metadata is larger.
fn read_footer(store: &Arc<Store>, object: &Object) -> Result<ArrowReaderMetadata> {
    let shown = store.display(&object.key);
    if object.size < 12 {
        return Err(Error::Source(format!(
            "{shown} is not a Parquet file ({} bytes)",
            object.size
        )));
    }
    let tail = object.size.min(64 * 1024);
    let start = object.size - tail;
    let bytes: Bytes = store
        .read_ranges(&object.key, std::slice::from_ref(&(start..object.size)))?
        .pop()
        .unwrap_or_default();
    let reader = Fetched::new(store, &object.key, object.size, vec![(start, bytes)]);
    let meta = ParquetMetaDataReader::new()
        .parse_and_finish(&reader)
        .map_err(|e| Error::Source(format!("{shown} cannot be read as Parquet: {e}")))?;
    ArrowReaderMetadata::try_new(Arc::new(meta), ArrowReaderOptions::new())
        .map_err(|e| Error::Source(format!("{shown}: its Parquet schema cannot be read: {e}")))
}

/// The partition keys (in order of first appearance) and, per key, each file's raw value.
#[allow(clippy::type_complexity)]
fn partitions(root: &str, objects: &[Object]) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let mut names: Vec<String> = Vec::new();
    let mut values: Vec<Vec<Option<String>>> = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let rel = o.key.strip_prefix(root).unwrap_or(&o.key);
        let mut segs: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        segs.pop(); // the file name
        for seg in segs {
            let Some((k, v)) = seg.split_once('=') else {
                continue;
            };
            let k = percent_decode(k);
            let at = match names.iter().position(|n| *n == k) {
                Some(at) => at,
                None => {
                    names.push(k);
                    values.push(vec![None; objects.len()]);
                    names.len() - 1
                }
            };
            values[at][i] = (v != HIVE_NULL).then(|| percent_decode(v));
        }
    }
    (names, values)
}

fn infer_type(values: &[Option<String>]) -> DataType {
    let all_int = values.iter().flatten().all(|v| v.parse::<i32>().is_ok());
    if all_int && values.iter().any(Option::is_some) {
        DataType::Int32
    } else {
        DataType::Utf8
    }
}

fn part_value(v: Option<&str>, t: &DataType) -> ArrayRef {
    match t {
        DataType::Int32 => Arc::new(Int32Array::from(vec![v.and_then(|v| v.parse().ok())])),
        _ => Arc::new(StringArray::from(vec![v])),
    }
}

/// `%xx` escapes decoded (hive paths are URI-encoded); a malformed escape stays as it is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(x) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_segments_become_typed_columns() {
        let objs = |keys: &[&str]| -> Vec<Object> {
            keys.iter()
                .map(|k| Object {
                    key: k.to_string(),
                    size: 0,
                })
                .collect()
        };
        let o = objs(&[
            "/d/day=1/city=a%20b/x.parquet",
            "/d/day=2/city=__HIVE_DEFAULT_PARTITION__/y.parquet",
            "/d/day=3/z.parquet",
        ]);
        let (names, values) = partitions("/d", &o);
        assert_eq!(names, vec!["day", "city"]);
        assert_eq!(infer_type(&values[0]), DataType::Int32);
        assert_eq!(infer_type(&values[1]), DataType::Utf8);
        assert_eq!(values[1], vec![Some("a b".to_string()), None, None]);
        let o = objs(&["/d/k=1/x.parquet", "/d/k=x1/y.parquet"]);
        let (_, values) = partitions("/d", &o);
        assert_eq!(infer_type(&values[0]), DataType::Utf8);
        let o = objs(&["/d/k=99999999999/x.parquet"]);
        assert_eq!(infer_type(&partitions("/d", &o).1[0]), DataType::Utf8);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%3d"), "a/b=");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
