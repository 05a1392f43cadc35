//! Timing harness for the online value codec, `encode_values` and `decode_values` (no
//! external bench framework), in the style of `asof.rs`:
//! `cargo bench -p banquet-core --bench values [-- filter]`.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, ListBuilder};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{Field, FieldRef};
use banquet_core::values::{decode_values, encode_values_with_fields};
use common::{filter, time, Rng};

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

fn main() {
    let filter = filter();
    let m = 1_000_000;
    let cases: [(&str, usize, usize, bool); 3] = [
        ("4 int64 + 4 float64 + string", 4, 4, false),
        ("1 int64 + string", 1, 0, false),
        ("2 int64 + 2 float64 + string + list", 2, 2, true),
    ];
    println!("encode_values / decode_values, {m} rows");
    for (name, ints, floats, list) in cases {
        if !(filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))) {
            continue;
        }
        let mut rng = Rng(42);
        let cols = view(&mut rng, m, ints, floats, list);
        let fields: Vec<FieldRef> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| Arc::new(Field::new(format!("f{i}"), c.data_type().clone(), true)))
            .collect();
        let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(
            (0..m).map(|_| rng.below(1 << 50) as i64),
        ));
        let blobs = encode_values_with_fields(&ts, Some(&ts), &cols, &fields).unwrap();
        let bytes = blobs.value_data().len();
        time(&format!("encode {name}"), 9, || {
            let b = encode_values_with_fields(&ts, Some(&ts), &cols, &fields).unwrap();
            black_box(b);
            format!("{:.1} MB", bytes as f64 / 1e6)
        });
        time(&format!("decode {name}"), 9, || {
            let (event, _, out) = decode_values(&blobs, &fields).unwrap();
            let note = format!("{} rows, {} columns", event.len(), out.len());
            black_box(out);
            note
        });
    }
}
