//! Unit tests of `gather.rs`: every result checked against arrow's `take` on the column
//! concatenated into one chunk.

use arrow_array::{BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};

use super::*;

fn chunked(whole: &ArrayRef, lens: &[usize]) -> Vec<ArrayRef> {
    let mut at = 0;
    lens.iter()
        .map(|&n| {
            let c = whole.slice(at, n);
            at += n;
            c
        })
        .collect()
}

fn check(whole: ArrayRef, lens: &[usize], idx: UInt32Array) {
    let chunks = chunked(&whole, lens);
    let rows = locate(lens, &idx).unwrap();
    let got = gather(whole.data_type(), &chunks, &rows).unwrap();
    let want = arrow_select::take::take(whole.as_ref(), &idx, None).unwrap();
    assert_eq!(got.to_data(), want.to_data(), "lens {lens:?}");
}

fn indices(n: usize, rows: u32, null_every: usize) -> UInt32Array {
    // a fixed pseudo-random order with repeats and nulls
    (0..n)
        .map(|i| {
            if null_every > 0 && i % null_every == 0 {
                None
            } else {
                Some(((i as u64 * 2_654_435_761) % rows as u64) as u32)
            }
        })
        .collect()
}

#[test]
fn primitive_columns_over_any_chunking_equal_take() {
    let n = 300_000usize;
    let ints: ArrayRef = Arc::new(Int64Array::from_iter((0..n as i64).map(|i| {
        if i % 7 == 0 {
            None
        } else {
            Some(i * 3)
        }
    })));
    let floats: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (0..n).map(|i| i as f64 / 3.0),
    ));
    let ts: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from_iter_values((0..n as i64).map(|i| i * 1000))
            .with_timezone("UTC"),
    );
    for lens in [
        vec![n],
        vec![100_000, 0, 150_000, 50_000],
        vec![1, n - 2, 1],
    ] {
        for null_every in [0, 5] {
            let idx = indices(200_000, n as u32, null_every);
            check(ints.clone(), &lens, idx.clone());
            check(floats.clone(), &lens, idx.clone());
            check(ts.clone(), &lens, idx);
        }
    }
}

#[test]
fn other_types_equal_take() {
    let n = 70_000usize;
    let strings: ArrayRef = Arc::new(StringArray::from_iter((0..n).map(|i| {
        if i % 11 == 0 {
            None
        } else {
            Some(format!("v{i}"))
        }
    })));
    let bools: ArrayRef = Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 3 == 0))));
    let idx = indices(600_000, n as u32, 9); // several parallel parts
    check(strings.clone(), &[30_000, 40_000], idx.clone());
    check(bools, &[n], idx);
    check(strings, &[n], indices(10, n as u32, 0));
}

#[test]
fn empty_inputs() {
    let dtype = DataType::Float64;
    let none: UInt32Array = vec![None, None].into();
    let rows = locate(&[], &none).unwrap();
    let got = gather(&dtype, &[], &rows).unwrap();
    assert_eq!((got.len(), got.null_count()), (2, 2));
    let empty = gather(&dtype, &[], &[]).unwrap();
    assert_eq!(empty.len(), 0);
}

#[test]
fn bad_indices_and_types_are_errors() {
    let idx: UInt32Array = vec![Some(3)].into();
    assert!(matches!(locate(&[2, 1], &idx), Err(Error::Invalid(_))));
    let col: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
    assert!(matches!(
        gather(&DataType::Float64, &[col], &[0]),
        Err(Error::Mismatch(_))
    ));
}
