//! The direct page reader against the parquet crate's record reader on the same files:
//! every writer layout (dictionary or plain, dictionary overflow, many small pages, data
//! page v1 and v2, codecs), nulls, every supported type, selections from empty to full.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::arrow_reader::RowSelection;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterVersion};

use super::direct::Direct;
use super::files::Dataset;
use super::read::{read_columns, read_with_parquet};
use super::tests::{write_with, TempDir};
use super::KeySet;

const ROWS: usize = 30_000;

/// A small deterministic generator (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn maybe(&mut self, null_per_mille: u64) -> bool {
        self.next() % 1000 >= null_per_mille
    }
}

fn batch(seed: u64) -> RecordBatch {
    let mut g = Lcg(seed);
    let n = ROWS;
    let key: Int64Array = (0..n)
        .map(|_| g.maybe(50).then(|| (g.next() % 5000) as i64 - 100))
        .collect();
    let low: Int64Array = (0..n)
        .map(|_| g.maybe(100).then(|| (g.next() % 7) as i64))
        .collect();
    let i32s: Int32Array = (0..n)
        .map(|_| g.maybe(20).then(|| g.next() as i32))
        .collect();
    let f64s: Float64Array = (0..n).map(|_| Some(g.next() as f64 / 7.0)).collect();
    let f32s: Float32Array = (0..n)
        .map(|_| g.maybe(500).then(|| g.next() as f32))
        .collect();
    let ts: TimestampMicrosecondArray = (0..n)
        .map(|_| g.maybe(10).then(|| 1_700_000_000_000_000 + g.next() as i64))
        .collect();
    let ms: TimestampMillisecondArray = (0..n).map(|i| Some(i as i64 * 1000)).collect();
    let day: Date32Array = (0..n)
        .map(|_| g.maybe(0).then(|| (g.next() % 30_000) as i32))
        .collect();
    let s: StringArray = (0..n).map(|i| Some(format!("s{}", i % 11))).collect();
    // long runs of one value: RLE runs among the dictionary indices
    let runs: Int64Array = (0..n)
        .map(|i| (i % 997 != 0).then_some((i / 50 % 5) as i64))
        .collect();
    let schema = Schema::new(vec![
        Field::new("key", DataType::Int64, true),
        Field::new("low", DataType::Int64, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("f64", DataType::Float64, false),
        Field::new("f32", DataType::Float32, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("ms", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("day", DataType::Date32, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("runs", DataType::Int64, true),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(key),
        Arc::new(low),
        Arc::new(i32s),
        Arc::new(f64s),
        Arc::new(f32s),
        Arc::new(ts.with_timezone("UTC")),
        Arc::new(ms),
        Arc::new(day),
        Arc::new(s),
        Arc::new(runs),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).unwrap()
}

fn layouts() -> Vec<(&'static str, WriterProperties)> {
    let base = || WriterProperties::builder().set_max_row_group_row_count(Some(12_000));
    vec![
        ("default", base().build()),
        (
            "plain, small pages, v2, zstd",
            base()
                .set_dictionary_enabled(false)
                .set_encoding(Encoding::PLAIN)
                .set_data_page_size_limit(2048)
                .set_write_batch_size(256)
                .set_writer_version(WriterVersion::PARQUET_2_0)
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build(),
        ),
        (
            "dictionary overflow, snappy",
            base()
                .set_dictionary_page_size_limit(1024)
                .set_data_page_size_limit(4096)
                .set_write_batch_size(512)
                .set_compression(Compression::SNAPPY)
                .build(),
        ),
        (
            "uncompressed v2 with dictionaries",
            base()
                .set_writer_version(WriterVersion::PARQUET_2_0)
                .set_data_page_row_count_limit(1000)
                .set_write_batch_size(100)
                .build(),
        ),
    ]
}

fn open(props: WriterProperties, seed: u64) -> (TempDir, Dataset) {
    let dir = TempDir::new();
    let path = dir.path("f.parquet");
    write_with(&path, &batch(seed), props);
    let ds = Dataset::open(&path, None).unwrap();
    (dir, ds)
}

const NAMES: [&str; 10] = [
    "key", "low", "i32", "f64", "f32", "ts", "ms", "day", "s", "runs",
];

#[test]
fn selected_rows_equal_the_record_readers() {
    for (li, (layout, props)) in layouts().into_iter().enumerate() {
        let (_dir, ds) = open(props, li as u64 + 1);
        let file = &ds.files[0];
        let n_groups = file.meta.metadata().num_row_groups();
        assert!(n_groups >= 3, "{layout}");
        for name in NAMES {
            assert_eq!(
                Direct::of(file, 0, name).is_some(),
                name != "s",
                "{layout}: {name}"
            );
        }
        let mut g = Lcg(li as u64 + 100);
        for rg in 0..n_groups {
            let n = file.meta.metadata().row_group(rg).num_rows() as usize;
            for per_mille in [0u64, 1, 10, 300, 999, 1000] {
                let mask: BooleanBuffer = (0..n).map(|_| g.next() % 1000 < per_mille).collect();
                let sel = RowSelection::from_filters(&[mask.clone().into()]);
                let direct = read_columns(&ds, file, rg, &NAMES, Some(sel.clone())).unwrap();
                let generic = read_with_parquet(&ds, file, rg, &NAMES, Some(sel)).unwrap();
                let rows: Vec<usize> = mask.set_indices().collect();
                for name in NAMES {
                    let (d, p) = (&direct[name], &generic[name]);
                    if let Some(col) = Direct::of(file, rg, name) {
                        let reader = super::read::fetch(&ds, file, rg, std::iter::once(col.leaf));
                        let own = col
                            .take(Arc::new(reader.unwrap()), file, rg, &rows)
                            .unwrap();
                        let own = own.expect("the layout is one the direct reader reads");
                        assert_eq!(own.as_ref(), p.as_ref(), "{layout} rg {rg} {name}");
                    }
                    assert_eq!(d.len(), mask.count_set_bits(), "{layout} rg {rg} {name}");
                    assert_eq!(d.data_type(), p.data_type(), "{layout} {name}");
                    assert_eq!(
                        d.as_ref(),
                        p.as_ref(),
                        "{layout} rg {rg} {per_mille}‰ {name}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_key_test_in_place_equals_the_key_set_on_decoded_values() {
    for (li, (layout, props)) in layouts().into_iter().enumerate() {
        let (_dir, ds) = open(props, li as u64 + 7);
        let file = &ds.files[0];
        let mut g = Lcg(li as u64 + 200);
        for (name, wanted) in [
            // dense keys (bitmap), sparse keys (hash table), a dictionary-friendly column
            (
                "key",
                (0..400)
                    .map(|_| (g.next() % 6000) as i64 - 200)
                    .collect::<Vec<_>>(),
            ),
            ("key", vec![-100, 17, 4899, 1 << 40]),
            ("low", vec![2, 5]),
            ("runs", vec![1, 4]),
            ("i32", vec![0, 1, 2]),
        ] {
            let set = KeySet::new(&[Arc::new(Int64Array::from(wanted)) as ArrayRef]).unwrap();
            let probe = set.int_probe().unwrap();
            for rg in 0..file.meta.metadata().num_row_groups() {
                let d = Direct::of(file, rg, name).unwrap();
                let reader =
                    Arc::new(super::read::fetch(&ds, file, rg, std::iter::once(d.leaf)).unwrap());
                let (kept, mask) = d.matching(reader, file, rg, &probe).unwrap().unwrap();
                let all = read_with_parquet(&ds, file, rg, &[name], None).unwrap();
                let expect = set.contains(&[Arc::clone(&all[name])]).unwrap();
                assert_eq!(mask, expect, "{layout} rg {rg} {name}");
                let filtered =
                    arrow_select::filter::filter(all[name].as_ref(), &expect.into()).unwrap();
                assert_eq!(kept.as_ref(), filtered.as_ref(), "{layout} rg {rg} {name}");
            }
        }
    }
}
