//! A timestamp join key names the same entity in every kernel: its whole second, as the
//! entity-key serialization (Feast v3 `unix_timestamp`) stores it. Two keys equal to the
//! second are one entity online, so the as-of join must treat them as one key too, or
//! historical and online retrieval disagree.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Int64Array, TimestampMicrosecondArray, TimestampNanosecondArray,
};
use banquet_core::asof::asof_join;
use banquet_core::keys::serialize_entity_keys;
use banquet_core::latest::latest_per_key;

const S: i64 = 1_000_000;

fn ts(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
}

/// Keys 10.2 s and 10.7 s (and -0.5 s, which floors to -1 s like -0.9 s).
fn keys() -> (ArrayRef, ArrayRef) {
    let entity = ts(vec![10 * S + 200_000, -S / 2]);
    let feature = ts(vec![10 * S + 700_000, -S + 100_000]);
    (entity, feature)
}

#[test]
fn serialization_stores_whole_seconds() {
    let (e, f) = keys();
    let names = vec!["k".to_string()];
    let se = serialize_entity_keys(&names, &[e]).unwrap();
    let sf = serialize_entity_keys(&names, &[f]).unwrap();
    assert_eq!(se.value(0), sf.value(0));
    assert_eq!(se.value(1), sf.value(1));
}

#[test]
fn latest_per_key_groups_by_whole_second() {
    let (_, f) = keys();
    let k: ArrayRef = ts(vec![
        10 * S + 200_000,
        10 * S + 700_000,
        -S / 2,
        -S + 100_000,
    ]);
    let ev: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 4, 3]));
    let w = latest_per_key(&[k], &ev, None, None, None).unwrap();
    assert_eq!(w.values().to_vec(), vec![1, 2]);
    drop(f);
}

#[test]
fn asof_join_matches_by_whole_second() {
    let (e, f) = keys();
    let ets = Int64Array::from(vec![100, 100]);
    let fts = Int64Array::from(vec![50, 60]);
    let out = asof_join(&[e], &ets, &[f], &fts, None, None).unwrap();
    assert_eq!(out.null_count(), 0, "{out:?}");
    assert_eq!(out.values().to_vec(), vec![0, 1]);
}

#[test]
fn asof_join_whole_second_with_another_key_and_unit() {
    // two key columns (the row-hash grouping) and nanosecond keys
    let e: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
        5_000_000_001,
        5_999_999_999,
    ]));
    let f: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
        5_500_000_000,
        6_000_000_000,
    ]));
    let id: ArrayRef = Arc::new(Int64Array::from(vec![7, 7]));
    let ets = Int64Array::from(vec![100, 100]);
    let fts = Int64Array::from(vec![50, 60]);
    let out = asof_join(&[id.clone(), e], &ets, &[id, f], &fts, None, None).unwrap();
    // both entity rows are second 5; only feature row 0 is second 5
    assert_eq!(out.null_count(), 0, "{out:?}");
    assert_eq!(out.values().to_vec(), vec![0, 0]);
}
