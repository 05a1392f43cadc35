//! The scan against files written here: pruning, the semi-join, late materialization,
//! hive partitions, units and order.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::*;

static N: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop (shared by the scan tests).
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "banquet-scan-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub(super) fn path(&self, rel: &str) -> String {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` rows: key i, ts = i seconds (µs, UTC), v = i as f64.
fn table(keys: Vec<i64>, ts_us: Vec<Option<i64>>) -> RecordBatch {
    let v: Vec<f64> = keys.iter().map(|&k| k as f64).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("v", DataType::Float64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(keys)),
            Arc::new(TimestampMicrosecondArray::from(ts_us).with_timezone("UTC")),
            Arc::new(Float64Array::from(v)),
        ],
    )
    .unwrap()
}

fn write(path: &str, batch: &RecordBatch, rg_rows: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rg_rows))
        .build();
    write_with(path, batch, props);
}

/// `batch` as one Parquet file at `path`, written with `props`.
pub(super) fn write_with(path: &str, batch: &RecordBatch, props: WriterProperties) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn collect(scan: Scan) -> RecordBatch {
    let schema = scan.schema();
    let batches: Vec<RecordBatch> = scan.map(|b| b.unwrap()).collect();
    arrow_select::concat::concat_batches(&schema, &batches).unwrap()
}

fn req(columns: &[&str]) -> ScanRequest {
    ScanRequest {
        columns: columns.iter().map(|s| s.to_string()).collect(),
        ts_column: Some("ts".into()),
        key_columns: vec!["k".into()],
        ..Default::default()
    }
}

fn ints(b: &RecordBatch, col: &str) -> Vec<i64> {
    b.column_by_name(col)
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

#[test]
fn semi_join_decodes_features_of_surviving_rows_only() {
    let dir = TempDir::new();
    let n = 10_000;
    let keys: Vec<i64> = (0..n).collect();
    let ts = (0..n).map(|i| Some(i * 1_000_000)).collect();
    let path = dir.path("one.parquet");
    write(&path, &table(keys, ts), 100_000);
    let ds = Arc::new(Dataset::open(&path, None).unwrap());
    let mut r = req(&["k", "ts", "v"]);
    r.entity_keys = Some(vec![
        Arc::new(Int32Array::from(vec![5, 500, 5, 20_000])) as ArrayRef
    ]);
    let scan = ds.scan(r).unwrap();
    let stats = scan.stats();
    let out = collect(scan);
    assert_eq!(ints(&out, "k"), vec![5, 500]);
    assert_eq!(
        out.column(2)
            .as_primitive::<arrow_array::types::Float64Type>()
            .values()
            .to_vec(),
        vec![5.0, 500.0]
    );
    // the feature column was decoded for the two surviving rows only
    assert_eq!(stats.late_rows.load(Ordering::Relaxed), 2);
}

#[test]
fn time_filter_after_the_semi_join_matches_a_plain_filter() {
    // Scattered keys and times over small pages and row groups: the timestamps are decoded
    // for the rows whose key matched only, and both selections compose over the row group.
    let dir = TempDir::new();
    let n: i64 = 20_000;
    let keys: Vec<i64> = (0..n).map(|i| (i * 7919) % 997).collect();
    let ts: Vec<Option<i64>> = (0..n)
        .map(|i| (i % 13 != 0).then_some(((i * 104_729) % 5000) * 1_000_000))
        .collect();
    let batch = table(keys.clone(), ts.clone());
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(3000))
        .set_data_page_row_count_limit(100)
        .set_write_batch_size(100)
        .build();
    let path = dir.path("kt.parquet");
    write_with(&path, &batch, props);
    let ds = Arc::new(Dataset::open(&path, None).unwrap());
    let wanted: Vec<i64> = (0..997).filter(|k| k % 5 == 1).collect();
    let (lo, hi) = (1_000_000_000, 3_500_000_000);
    let mut r = req(&["k", "ts", "v"]);
    r.entity_keys = Some(vec![Arc::new(Int64Array::from(wanted.clone())) as ArrayRef]);
    r.lo_us = Some(lo);
    r.hi_us = Some(hi);
    let scan = ds.scan(r).unwrap();
    let stats = scan.stats();
    let out = collect(scan);
    let expected: Vec<usize> = (0..n as usize)
        .filter(|&i| wanted.contains(&keys[i]) && ts[i].is_some_and(|t| lo <= t && t <= hi))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        ints(&out, "k"),
        expected.iter().map(|&i| keys[i]).collect::<Vec<_>>()
    );
    assert_eq!(
        out.column(1)
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
            .values()
            .to_vec(),
        expected.iter().map(|&i| ts[i].unwrap()).collect::<Vec<_>>()
    );
    assert_eq!(
        out.column(2)
            .as_primitive::<arrow_array::types::Float64Type>()
            .values()
            .to_vec(),
        expected.iter().map(|&i| keys[i] as f64).collect::<Vec<_>>()
    );
    assert_eq!(
        stats.late_rows.load(Ordering::Relaxed),
        expected.len() as u64
    );
}

#[test]
fn row_groups_are_pruned_by_key_and_time_statistics() {
    let dir = TempDir::new();
    let keys: Vec<i64> = (0..4000).collect();
    let ts = (0..4000).map(|i| Some(i * 1_000_000)).collect();
    let path = dir.path("rg.parquet");
    write(&path, &table(keys, ts), 1000); // 4 row groups: keys and times 0-999, 1000-1999 ...
    let ds = Arc::new(Dataset::open(&path, None).unwrap());

    let mut r = req(&["k", "v"]);
    r.entity_keys = Some(vec![
        Arc::new(Int64Array::from(vec![1500, 1501])) as ArrayRef
    ]);
    let scan = ds.scan(r).unwrap();
    let stats = scan.stats();
    assert_eq!(ints(&collect(scan), "k"), vec![1500, 1501]);
    assert_eq!(stats.row_groups_pruned.load(Ordering::Relaxed), 3);
    assert_eq!(stats.row_groups_read.load(Ordering::Relaxed), 1);

    // time: [2500 s, 3000.5 s] touches row groups 2 and 3; row group 3 only at its edge
    let mut r = req(&["k"]);
    r.lo_us = Some(2_500_000_000);
    r.hi_us = Some(3_000_500_000);
    let scan = ds.scan(r).unwrap();
    let stats = scan.stats();
    let got = ints(&collect(scan), "k");
    assert_eq!(got, (2500..=3000).collect::<Vec<_>>());
    assert_eq!(stats.row_groups_pruned.load(Ordering::Relaxed), 2);
}

#[test]
fn null_timestamps_are_kept_without_bounds_and_dropped_with_them() {
    let dir = TempDir::new();
    let path = dir.path("n.parquet");
    write(
        &path,
        &table(vec![1, 2, 3], vec![Some(0), None, Some(5)]),
        10,
    );
    let ds = Arc::new(Dataset::open(&path, None).unwrap());
    assert_eq!(
        ints(&collect(ds.scan(req(&["k"])).unwrap()), "k"),
        vec![1, 2, 3]
    );
    let mut r = req(&["k"]);
    r.lo_us = Some(i64::MIN / 2);
    assert_eq!(ints(&collect(ds.scan(r).unwrap()), "k"), vec![1, 3]);
}

#[test]
fn files_in_path_order_cast_to_the_first_files_schema_with_hive_columns() {
    let dir = TempDir::new();
    write(
        &dir.path("d/day=2/a.parquet"),
        &table(vec![20, 21], vec![Some(2), Some(3)]),
        10,
    );
    write(
        &dir.path("d/day=1/b.parquet"),
        &table(vec![10], vec![Some(1)]),
        10,
    );
    write(
        &dir.path("d/day=1/.tmp.parquet"),
        &table(vec![99], vec![Some(1)]),
        10,
    );
    write(
        &dir.path("d/_meta/c.parquet"),
        &table(vec![98], vec![Some(1)]),
        10,
    );
    // a file in milliseconds, no `v`: cast to µs, `v` null
    let ms = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int32, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ])),
        vec![
            Arc::new(Int32Array::from(vec![30, 31])),
            Arc::new(TimestampMillisecondArray::from(vec![1, 9]).with_timezone("UTC")),
        ],
    )
    .unwrap();
    write(&dir.path("d/day=3/c.parquet"), &ms, 10);
    let ds = Arc::new(Dataset::open(&dir.path("d"), None).unwrap());
    assert_eq!(
        ds.schema.field_with_name("day").unwrap().data_type(),
        &DataType::Int32
    );
    let mut r = req(&["k", "ts", "v", "day"]);
    r.lo_us = Some(0);
    r.hi_us = Some(5_000);
    let out = collect(ds.scan(r).unwrap());
    assert_eq!(ints(&out, "k"), vec![10, 20, 21, 30]);
    let day = out
        .column_by_name("day")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(day.values().to_vec(), vec![1, 2, 2, 3]);
    assert_eq!(out.column_by_name("v").unwrap().null_count(), 1);
    // the partition column as a semi-join key
    let mut r = req(&["k"]);
    r.key_columns = vec!["day".into()];
    r.entity_keys = Some(vec![Arc::new(Int64Array::from(vec![2])) as ArrayRef]);
    assert_eq!(ints(&collect(ds.scan(r).unwrap()), "k"), vec![20, 21]);
}

#[test]
fn string_and_multi_column_keys() {
    let dir = TempDir::new();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("k", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ])),
        vec![
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("b"),
                None,
                Some("a"),
            ])),
            Arc::new(Int64Array::from(vec![1, 1, 1, 2])),
            Arc::new(TimestampMicrosecondArray::from(vec![0, 1, 2, 3])),
        ],
    )
    .unwrap();
    let path = dir.path("s.parquet");
    write(&path, &batch, 2);
    let ds = Arc::new(Dataset::open(&path, None).unwrap());
    let mut r = req(&["s", "k"]);
    r.key_columns = vec!["s".into(), "k".into()];
    r.entity_keys = Some(vec![
        Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        Arc::new(Int64Array::from(vec![2, 1])) as ArrayRef,
    ]);
    let out = collect(ds.scan(r).unwrap());
    assert_eq!(ints(&out, "k"), vec![1, 2]);
    let s: Vec<&str> = out
        .column(0)
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap())
        .collect();
    assert_eq!(s, vec!["b", "a"]);
}

#[test]
fn missing_paths_and_columns_are_typed_errors() {
    let dir = TempDir::new();
    let missing = dir.path("nope.parquet");
    assert!(
        matches!(Dataset::open(&missing, None), Err(Error::SourceNotFound(m)) if m.contains("nope.parquet"))
    );
    let bad = dir.path("bad.parquet");
    std::fs::write(&bad, b"this is not parquet at all").unwrap();
    assert!(
        matches!(Dataset::open(&bad, None), Err(Error::Source(m)) if m.contains("bad.parquet"))
    );
    let ok = dir.path("ok.parquet");
    write(&ok, &table(vec![1], vec![Some(0)]), 10);
    let ds = Arc::new(Dataset::open(&ok, None).unwrap());
    assert!(matches!(ds.scan(req(&["zz"])), Err(Error::Source(m)) if m.contains("\"zz\"")));
}

/// A `locate` scan's locators name the rows the one-pass scan returns, and `take` reads
/// exactly those rows back (any order, repeats, nulls), across files and row groups.
#[test]
fn locate_then_take_reads_the_located_rows() {
    let dir = TempDir::new();
    for (f, base) in [("a.parquet", 0i64), ("b.parquet", 1000)] {
        let keys: Vec<i64> = (base..base + 1000).map(|i| i % 300).collect();
        let ts = (base..base + 1000).map(|i| Some(i * 1_000_000)).collect();
        let mut b = table(keys, ts);
        // v tells the rows apart (key repeats)
        let v: Vec<f64> = (base..base + 1000).map(|i| i as f64).collect();
        b = RecordBatch::try_new(
            b.schema(),
            vec![
                b.column(0).clone(),
                b.column(1).clone(),
                Arc::new(Float64Array::from(v)),
            ],
        )
        .unwrap();
        write(&dir.path(&format!("d/{f}")), &b, 128);
    }
    let ds = Arc::new(Dataset::open(&dir.path("d"), None).unwrap());
    let mut r = req(&["k", "ts", "v"]);
    r.entity_keys = Some(vec![
        Arc::new(Int64Array::from(vec![7, 150, 299])) as ArrayRef
    ]);
    r.lo_us = Some(100 * 1_000_000);
    r.hi_us = Some(1900 * 1_000_000);
    let full = collect(ds.scan(r.clone()).unwrap());
    let mut r2 = r.clone();
    r2.columns = vec!["k".into(), "ts".into()];
    r2.locate = true;
    let located = collect(ds.scan(r2).unwrap());
    assert_eq!(located.num_columns(), 3);
    assert_eq!(located.schema().field(2).name(), LOCATOR);
    assert_eq!(ints(&located, "k"), ints(&full, "k"));
    let locs = located
        .column(2)
        .as_primitive::<arrow_array::types::UInt64Type>()
        .clone();
    // every located row, reversed, with a repeat and a null
    let mut asked: Vec<Option<u64>> = locs.values().iter().rev().map(|&l| Some(l)).collect();
    asked.insert(3, None);
    asked.push(Some(locs.value(0)));
    let asked = arrow_array::UInt64Array::from(asked);
    let got = ds
        .take(&["v".to_string(), "k".to_string()], &asked)
        .unwrap();
    assert_eq!(got.num_rows(), asked.len());
    let v = got
        .column(0)
        .as_primitive::<arrow_array::types::Float64Type>();
    let want: Vec<f64> = full
        .column(2)
        .as_primitive::<arrow_array::types::Float64Type>()
        .values()
        .to_vec();
    let mut expected: Vec<Option<f64>> = want.iter().rev().map(|&x| Some(x)).collect();
    expected.insert(3, None);
    expected.push(Some(want[0]));
    assert_eq!(v.iter().collect::<Vec<_>>(), expected);
    assert!(got.column(1).is_null(3));
    // the locator is (file, row in file): file b's rows are above 1 << ROW_BITS
    assert!(locs.values().iter().any(|&l| l >> ROW_BITS == 1));
    assert_eq!(locator(1, 5), (1 << ROW_BITS) + 5);
}

/// `take` of partition and missing columns, and of no row at all.
#[test]
fn take_fills_partition_columns_and_empty_asks() {
    let dir = TempDir::new();
    let keys: Vec<i64> = (0..10).collect();
    let ts = (0..10).map(|i| Some(i * 1_000_000)).collect();
    write(&dir.path("d/day=3/x.parquet"), &table(keys, ts), 4);
    let ds = Arc::new(Dataset::open(&dir.path("d"), None).unwrap());
    let asked = arrow_array::UInt64Array::from(vec![Some(9), None, Some(2)]);
    let got = ds
        .take(&["day".to_string(), "k".to_string()], &asked)
        .unwrap();
    let day = got.column(0).as_primitive::<Int32Type>();
    assert_eq!(day.iter().collect::<Vec<_>>(), vec![Some(3), None, Some(3)]);
    let k = got.column(1).as_primitive::<Int64Type>();
    assert_eq!(k.iter().collect::<Vec<_>>(), vec![Some(9), None, Some(2)]);
    let none = ds
        .take(
            &["k".to_string()],
            &arrow_array::UInt64Array::from(Vec::<u64>::new()),
        )
        .unwrap();
    assert_eq!(none.num_rows(), 0);
    let bad = ds.take(
        &["k".to_string()],
        &arrow_array::UInt64Array::from(vec![10u64]),
    );
    assert!(bad.is_err());
}
