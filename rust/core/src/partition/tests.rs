use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt32Type};
use arrow_array::{
    Array, ArrayRef, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampSecondArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema};

use super::*;
use crate::asof::asof_join;

fn arc<A: Array + 'static>(a: A) -> ArrayRef {
    Arc::new(a)
}

fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(cols.into_iter().map(|(n, c)| (n.to_string(), c))).unwrap()
}

#[test]
fn equal_keys_share_a_partition_whatever_their_layout() {
    let ints: Vec<i64> = (0..5000).map(|i| i * 7919 - 20_000).collect();
    let a = partition_ids(&[arc(Int64Array::from(ints.clone()))], 37, 0).unwrap();
    let narrow: Vec<i32> = ints.iter().map(|&v| v as i32).collect();
    let b = partition_ids(&[arc(Int32Array::from(narrow))], 37, 0).unwrap();
    assert_eq!(a, b);
    assert!(a.values().iter().all(|&p| p < 37));
    // every partition is used (the hash spreads)
    let mut seen = [false; 37];
    a.values().iter().for_each(|&p| seen[p as usize] = true);
    assert!(seen.iter().all(|&s| s));

    let words: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let s = partition_ids(&[arc(StringArray::from(words.clone()))], 16, 3).unwrap();
    let l = partition_ids(&[arc(LargeStringArray::from(words))], 16, 3).unwrap();
    assert_eq!(s, l);

    // a timestamp key is its whole second
    let ts = TimestampMicrosecondArray::from(vec![10_200_000, 10_700_000, 11_000_000]);
    let secs = TimestampSecondArray::from(vec![10, 10, 11]);
    let t = partition_ids(&[arc(ts)], 1000, 0).unwrap();
    assert_eq!(t, partition_ids(&[arc(secs)], 1000, 0).unwrap());
    assert_eq!(t.value(0), t.value(1));
}

#[test]
fn seeds_split_differently_and_nulls_get_the_reserved_id() {
    let keys = arc(Int64Array::from((0..1000).collect::<Vec<i64>>()));
    let a = partition_ids(std::slice::from_ref(&keys), 8, 0).unwrap();
    let b = partition_ids(std::slice::from_ref(&keys), 8, 1).unwrap();
    assert_ne!(a, b);
    let with_null = arc(Int64Array::from(vec![Some(1), None, Some(3)]));
    let other = arc(StringArray::from(vec![Some("x"), Some("y"), None]));
    let ids = partition_ids(&[with_null, other], 4, 0).unwrap();
    assert!(ids.value(0) < 4);
    assert_eq!(ids.value(1), 4);
    assert_eq!(ids.value(2), 4);
    // no key columns: one partition
    let none = partition_ids(&[], 4, 0).unwrap();
    assert_eq!(none.len(), 0);
}

#[test]
fn bad_arguments_are_errors() {
    let k = arc(Int64Array::from(vec![1, 2]));
    assert!(partition_ids(std::slice::from_ref(&k), 0, 0).is_err());
    let short = arc(Int64Array::from(vec![1]));
    assert!(partition_ids(&[k, short], 4, 0).is_err());
    let f = arc(arrow_array::Float64Array::from(vec![1.0]));
    assert!(matches!(
        partition_ids(&[f], 4, 0),
        Err(Error::UnsupportedType { .. })
    ));
    assert!(partition_order(&UInt32Array::from(vec![0, 5]), 4).is_err());
}

#[test]
fn order_is_stable_and_offsets_bound_each_partition() {
    let ids = UInt32Array::from(vec![2, 0, 4, 2, 1, 0, 2]);
    let (order, offsets) = partition_order(&ids, 4).unwrap();
    assert_eq!(order.values().to_vec(), vec![1, 5, 4, 0, 3, 6, 2]);
    assert_eq!(offsets, vec![0, 2, 3, 6, 6, 7]);
}

/// join_partition over the partitions of a table gives, row for row, what asof_join + take
/// gives over the whole table.
#[test]
fn partitions_joined_one_by_one_equal_the_whole_join() {
    let n_ent = 3000;
    let n_feat = 9000;
    let mut rng = 0x1234_5678u64;
    let mut next = move |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let ek: Vec<Option<i64>> = (0..n_ent)
        .map(|_| (next(50) != 0).then(|| next(400) as i64))
        .collect();
    let ets: Vec<i64> = (0..n_ent).map(|_| next(1000) as i64).collect();
    let fk: Vec<Option<i64>> = (0..n_feat)
        .map(|_| (next(80) != 0).then(|| next(400) as i64))
        .collect();
    let fts: Vec<i64> = (0..n_feat).map(|_| next(1000) as i64).collect();
    let fcr: Vec<Option<i64>> = (0..n_feat)
        .map(|_| (next(3) != 0).then(|| next(5) as i64))
        .collect();
    let fval: Vec<Option<i64>> = (0..n_feat)
        .map(|i| (i % 11 != 0).then_some(i as i64))
        .collect();
    let entity = batch(vec![
        ("k", arc(Int64Array::from(ek))),
        ("ts", arc(Int64Array::from(ets))),
        (
            "row_id",
            arc(UInt32Array::from((0..n_ent as u32).collect::<Vec<_>>())),
        ),
    ]);
    let features = batch(vec![
        ("k", arc(Int64Array::from(fk))),
        ("ts", arc(Int64Array::from(fts))),
        ("created", arc(Int64Array::from(fcr))),
        ("v", arc(Int64Array::from(fval))),
    ]);
    let ttl = Some(300);
    let whole = join_partition(&entity, &features, 1, true, ttl).unwrap();
    let idx = asof_join(
        &entity.columns()[..1],
        entity.column(1).as_ref(),
        &features.columns()[..1],
        features.column(1).as_ref(),
        Some(features.column(2).as_ref()),
        ttl,
    )
    .unwrap();
    let want = arrow_select::take::take(features.column(3).as_ref(), &idx, None).unwrap();
    assert_eq!(whole.column(1).as_ref(), want.as_ref());
    assert_eq!(whole.schema().field(0).name(), "row_id");
    assert_eq!(whole.schema().field(1).name(), "v");

    let n = 7;
    let split = |b: &RecordBatch| -> Vec<RecordBatch> {
        let ids = partition_ids(&b.columns()[..1], n, 0).unwrap();
        let (order, offsets) = partition_order(&ids, n).unwrap();
        let sorted = arrow_select::take::take_record_batch(b, &order).unwrap();
        (0..=n as usize)
            .map(|p| {
                let lo = offsets[p] as usize;
                sorted.slice(lo, offsets[p + 1] as usize - lo)
            })
            .collect()
    };
    let eparts = split(&entity);
    let fparts = split(&features);
    let mut got = vec![None; n_ent];
    for p in 0..=n as usize {
        // null-key entity rows (the last range) are joined against no feature rows
        let f = if p < n as usize {
            fparts[p].clone()
        } else {
            fparts[p].slice(0, 0)
        };
        let out = join_partition(&eparts[p], &f, 1, true, ttl).unwrap();
        let ids = out.column(0).as_primitive::<UInt32Type>();
        assert!(
            ids.values().windows(2).all(|w| w[0] < w[1]),
            "row ids ascending"
        );
        let vals = out.column(1).as_primitive::<Int64Type>();
        for (j, &id) in ids.values().iter().enumerate() {
            got[id as usize] = vals.is_valid(j).then(|| vals.value(j));
        }
    }
    let want = want.as_primitive::<Int64Type>();
    let want: Vec<Option<i64>> = want.iter().collect();
    assert_eq!(got, want);
}

#[test]
fn column_counts_are_checked() {
    let entity = batch(vec![
        ("k", arc(Int64Array::from(vec![1]))),
        ("ts", arc(Int64Array::from(vec![1]))),
    ]);
    let features = batch(vec![
        ("k", arc(Int64Array::from(vec![1]))),
        ("ts", arc(Int64Array::from(vec![1]))),
    ]);
    let err = join_partition(&entity, &features, 1, false, None).unwrap_err();
    assert!(err.to_string().contains("row id"), "{err}");
    let entity = batch(vec![
        ("k", arc(Int64Array::from(vec![1]))),
        ("ts", arc(Int64Array::from(vec![1]))),
        ("row_id", arc(Int64Array::from(vec![0]))),
    ]);
    let err = join_partition(&entity, &features, 1, true, None).unwrap_err();
    assert!(err.to_string().contains("created"), "{err}");
    // no features: just the row ids
    let out = join_partition(&entity, &features, 1, false, None).unwrap();
    assert_eq!(out.num_columns(), 1);
    assert_eq!(
        out.schema().as_ref(),
        &Schema::new(vec![Field::new("row_id", DataType::Int64, false)])
    );
}
