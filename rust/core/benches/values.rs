//! Criterion benches of the online value codec: `encode_values` (group `encode`) and
//! `decode_values` (group `decode`), 1M rows of three view shapes; throughput counts rows.
//! `cargo bench -p banquet-core --bench values [-- regex]` (see asof.rs for the options).

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{Int64Builder, ListBuilder};
use arrow_array::{
    Array, ArrayRef, BinaryArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{Field, FieldRef};
use banquet_core::values::{decode_values, encode_values_with_fields};
use common::Rng;
use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};

const ROWS: usize = 1_000_000;

const CASES: [(&str, usize, usize, bool); 3] = [
    ("4 int64 + 4 float64 + string", 4, 4, false),
    ("1 int64 + string", 1, 0, false),
    ("2 int64 + 2 float64 + string + list", 2, 2, true),
];

/// `n` rows of a view: `ints` int64 features, `floats` float64, one string (10% null) and,
/// with `list`, one list<int64> of 0..8 elements.
fn view(rng: &mut Rng, n: usize, ints: usize, floats: usize, list: bool) -> Vec<ArrayRef> {
    let mut cols: Vec<ArrayRef> = Vec::new();
    for _ in 0..ints {
        cols.push(Arc::new(Int64Array::from_iter_values(
            (0..n).map(|_| rng.below(1 << 40) as i64),
        )));
    }
    for _ in 0..floats {
        cols.push(Arc::new(Float64Array::from_iter_values(
            (0..n).map(|_| rng.below(1 << 30) as f64 / 7.0),
        )));
    }
    cols.push(Arc::new(StringArray::from_iter((0..n).map(|_| {
        let x = rng.below(1_000_000);
        (x % 10 != 0).then(|| format!("segment_{x}"))
    }))));
    if list {
        let mut b = ListBuilder::new(Int64Builder::new());
        for _ in 0..n {
            for _ in 0..rng.below(8) {
                b.values().append_value(rng.below(1000) as i64);
            }
            b.append(true);
        }
        cols.push(Arc::new(b.finish()));
    }
    cols
}

/// One case's input: the value columns, their fields and the event timestamps.
struct View {
    cols: Vec<ArrayRef>,
    fields: Vec<FieldRef>,
    ts: ArrayRef,
}

fn make(ints: usize, floats: usize, list: bool) -> View {
    let mut rng = Rng(42);
    let cols = view(&mut rng, ROWS, ints, floats, list);
    let fields = cols
        .iter()
        .enumerate()
        .map(|(i, c)| Arc::new(Field::new(format!("f{i}"), c.data_type().clone(), true)))
        .collect();
    let ts = Arc::new(TimestampMicrosecondArray::from_iter_values(
        (0..ROWS).map(|_| rng.below(1 << 50) as i64),
    ));
    View { cols, fields, ts }
}

fn encode(v: &View) -> BinaryArray {
    encode_values_with_fields(&v.ts, Some(&v.ts), &v.cols, &v.fields).unwrap()
}

fn encode_group(c: &mut Criterion<impl Measurement>) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(ROWS as u64));
    common::size_group(&mut g, Duration::from_millis(150));
    for (name, ints, floats, list) in CASES {
        let mut data: Option<View> = None;
        g.bench_function(name, |b| {
            let v = data.get_or_insert_with(|| make(ints, floats, list));
            b.iter(|| black_box(encode(v)));
        });
    }
    g.finish();
}

fn decode_group(c: &mut Criterion<impl Measurement>) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(ROWS as u64));
    common::size_group(&mut g, Duration::from_millis(150));
    for (name, ints, floats, list) in CASES {
        let mut data: Option<(View, BinaryArray)> = None;
        g.bench_function(name, |b| {
            let (v, blobs) = data.get_or_insert_with(|| {
                let v = make(ints, floats, list);
                let blobs = encode(&v);
                (v, blobs)
            });
            b.iter(|| black_box(decode_values(blobs, &v.fields).unwrap()));
        });
    }
    g.finish();
}

common::bench_main!(encode_group, decode_group);
