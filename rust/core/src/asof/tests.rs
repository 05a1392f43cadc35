use std::sync::Arc;

use arrow_array::{
    BinaryArray, BinaryViewArray, Int32Array, Int64Array, LargeBinaryArray, LargeStringArray,
    StringArray, StringViewArray, TimestampMicrosecondArray, TimestampSecondArray,
};

use super::*;

fn i64s(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}
fn ts(v: &[i64]) -> Int64Array {
    Int64Array::from(v.to_vec())
}
fn out(a: &UInt32Array) -> Vec<Option<u32>> {
    a.iter().collect()
}

/// The semantics, spelled out with no cleverness at all.
#[allow(clippy::too_many_arguments)]
fn brute(
    ek: &[Vec<Option<i64>>],
    et: &[Option<i64>],
    fk: &[Vec<Option<i64>>],
    ft: &[Option<i64>],
    fc: Option<&[Option<i64>]>,
    ttl: i64,
) -> Vec<Option<u32>> {
    (0..et.len())
        .map(|e| {
            let t = et[e]?;
            let key: Vec<i64> = ek.iter().map(|c| c[e]).collect::<Option<_>>()?;
            let mut best: Option<(i64, (bool, i64), usize)> = None;
            for f in 0..ft.len() {
                let Some(x) = ft[f] else { continue };
                let Some(k) = fk.iter().map(|c| c[f]).collect::<Option<Vec<i64>>>() else {
                    continue;
                };
                if k != key || x > t || (ttl > 0 && (x as i128) < t as i128 - ttl as i128) {
                    continue;
                }
                let c = fc.and_then(|c| c[f]);
                let cand = (x, (c.is_some(), c.unwrap_or(0)), f);
                if best.is_none_or(|b| cand > b) {
                    best = Some(cand);
                }
            }
            best.map(|b| b.2 as u32)
        })
        .collect()
}

#[test]
fn simple() {
    let r = asof_join(
        &[i64s(&[Some(1), Some(2), Some(1), Some(3)])],
        &ts(&[10, 10, 5, 10]),
        &[i64s(&[Some(1), Some(1), Some(2), Some(1)])],
        &ts(&[4, 8, 10, 11]),
        None,
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![Some(1), Some(2), Some(0), None]);
}

#[test]
fn ties_created_then_index() {
    let k = || i64s(&[Some(7); 4]);
    let created = Int64Array::from(vec![Some(3), Some(5), None, Some(5)]);
    // Same feature_ts; created 5 appears at rows 1 and 3 -> the larger index, 3.
    let r = asof_join(
        &[i64s(&[Some(7)])],
        &ts(&[100]),
        &[k()],
        &ts(&[50; 4]),
        Some(&created),
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![Some(3)]);
    // Without created: full tie -> largest index.
    let r = asof_join(
        &[i64s(&[Some(7)])],
        &ts(&[100]),
        &[k()],
        &ts(&[50; 4]),
        None,
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![Some(3)]);
    // Null created is the smallest, even below i64::MIN.
    let created = Int64Array::from(vec![None, Some(i64::MIN), None]);
    let r = asof_join(
        &[i64s(&[Some(7)])],
        &ts(&[100]),
        &[i64s(&[Some(7); 3])],
        &ts(&[50; 3]),
        Some(&created),
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![Some(1)]);
    // A later feature_ts beats a larger created.
    let created = Int64Array::from(vec![Some(100), Some(1)]);
    let r = asof_join(
        &[i64s(&[Some(7)])],
        &ts(&[100]),
        &[i64s(&[Some(7); 2])],
        &ts(&[50, 51]),
        Some(&created),
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![Some(1)]);
}

#[test]
fn values_under_nulls_are_ignored() {
    use arrow_buffer::{NullBuffer, ScalarBuffer};
    // Arbitrary values hidden under nulls must not influence anything.
    let with_nulls = |v: Vec<i64>, valid: Vec<bool>| {
        Int64Array::new(ScalarBuffer::from(v), Some(NullBuffer::from(valid)))
    };
    // Two null created values: the larger index wins, not the larger hidden value.
    let created = with_nulls(vec![99, 5, -7], vec![false, false, false]);
    let r = asof_join(
        &[i64s(&[Some(7)])],
        &ts(&[100]),
        &[i64s(&[Some(7); 3])],
        &ts(&[50; 3]),
        Some(&created),
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![Some(2)]);
    // A null key hiding the right value and a null ts hiding a valid time never match.
    let fk: ArrayRef = Arc::new(with_nulls(vec![7, 7], vec![false, true]));
    let ft = with_nulls(vec![60, 70], vec![true, false]);
    let r = asof_join(&[i64s(&[Some(7)])], &ts(&[100]), &[fk], &ft, None, None).unwrap();
    assert_eq!(out(&r), vec![None]);
    let ek: ArrayRef = Arc::new(with_nulls(vec![7], vec![false]));
    let r = asof_join(
        &[ek],
        &ts(&[100]),
        &[i64s(&[Some(7)])],
        &ts(&[1]),
        None,
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![None]);
}

#[test]
fn ttl_boundaries() {
    let ek = [i64s(&[Some(1); 4])];
    let et = ts(&[100, 100, 100, 110]);
    let fk = [i64s(&[Some(1)])];
    // feature at exactly entity_ts - ttl (ttl 10) and exactly entity_ts.
    let r = asof_join(&ek, &et, &fk, &ts(&[90]), None, Some(10)).unwrap();
    assert_eq!(out(&r), vec![Some(0), Some(0), Some(0), None]);
    let r = asof_join(&ek, &et, &fk, &ts(&[100]), None, Some(10)).unwrap();
    assert_eq!(out(&r), vec![Some(0); 4]);
    let r = asof_join(&ek, &et, &fk, &ts(&[89]), None, Some(10)).unwrap();
    assert_eq!(out(&r), vec![None; 4]);
    // ttl 0 and None = unbounded.
    for ttl in [None, Some(0)] {
        let r = asof_join(&ek, &et, &fk, &ts(&[i64::MIN]), None, ttl).unwrap();
        assert_eq!(out(&r), vec![Some(0); 4]);
    }
    // Huge ttl does not overflow.
    let r = asof_join(
        &ek,
        &ts(&[i64::MIN + 5; 4]),
        &fk,
        &ts(&[i64::MIN]),
        None,
        Some(i64::MAX),
    )
    .unwrap();
    assert_eq!(out(&r), vec![Some(0); 4]);
    // The best candidate is out of the ttl -> null even if an older row exists.
    let r = asof_join(
        &[i64s(&[Some(1)])],
        &ts(&[100]),
        &[i64s(&[Some(1); 2])],
        &ts(&[80, 95]),
        None,
        Some(10),
    )
    .unwrap();
    assert_eq!(out(&r), vec![Some(1)]);
    let r = asof_join(
        &[i64s(&[Some(1)])],
        &ts(&[100]),
        &[i64s(&[Some(1); 2])],
        &ts(&[80, 85]),
        None,
        Some(10),
    )
    .unwrap();
    assert_eq!(out(&r), vec![None]);
    assert!(matches!(
        asof_join(&ek, &et, &fk, &ts(&[1]), None, Some(-1)),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn future_rows_excluded() {
    let r = asof_join(
        &[i64s(&[Some(1), Some(1)])],
        &ts(&[10, 20]),
        &[i64s(&[Some(1), Some(1)])],
        &ts(&[11, 21]),
        None,
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![None, Some(0)]);
}

#[test]
fn nulls_never_match() {
    let ek = [i64s(&[Some(1), None, Some(1), Some(2)])];
    let et = Int64Array::from(vec![Some(10), Some(10), None, Some(10)]);
    let fk = [i64s(&[Some(1), None, Some(2), Some(1), Some(2)])];
    let ft = Int64Array::from(vec![Some(5), Some(6), None, None, Some(1)]);
    let r = asof_join(&ek, &et, &fk, &ft, None, None).unwrap();
    assert_eq!(out(&r), vec![Some(0), None, None, Some(4)]);
    assert_eq!(r.null_count(), 2);
}

#[test]
fn empty_sides() {
    let r = asof_join(
        &[i64s(&[])],
        &ts(&[]),
        &[i64s(&[Some(1)])],
        &ts(&[1]),
        None,
        None,
    )
    .unwrap();
    assert_eq!(r.len(), 0);
    let r = asof_join(
        &[i64s(&[Some(1), Some(2)])],
        &ts(&[1, 2]),
        &[i64s(&[])],
        &ts(&[]),
        None,
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![None, None]);
}

#[test]
fn string_keys() {
    for make in [
        |v: &[Option<&str>]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef,
        |v: &[Option<&str>]| Arc::new(LargeStringArray::from(v.to_vec())) as ArrayRef,
        |v: &[Option<&str>]| Arc::new(StringViewArray::from(v.to_vec())) as ArrayRef,
        |v: &[Option<&str>]| {
            Arc::new(BinaryArray::from(
                v.iter().map(|s| s.map(str::as_bytes)).collect::<Vec<_>>(),
            )) as ArrayRef
        },
        |v: &[Option<&str>]| {
            Arc::new(LargeBinaryArray::from(
                v.iter().map(|s| s.map(str::as_bytes)).collect::<Vec<_>>(),
            )) as ArrayRef
        },
        |v: &[Option<&str>]| {
            Arc::new(BinaryViewArray::from(
                v.iter().map(|s| s.map(str::as_bytes)).collect::<Vec<_>>(),
            )) as ArrayRef
        },
    ] {
        let ek = [make(&[
            Some("alice"),
            Some("bob"),
            Some("a much longer key than twelve"),
            None,
            Some(""),
        ])];
        let fk = [make(&[
            Some("bob"),
            Some("alice"),
            Some("a much longer key than twelve"),
            Some("alic"),
            Some(""),
            None,
        ])];
        let r = asof_join(&ek, &ts(&[5; 5]), &fk, &ts(&[1, 2, 3, 4, 5, 5]), None, None).unwrap();
        assert_eq!(out(&r), vec![Some(1), Some(0), Some(2), None, Some(4)]);
    }
}

#[test]
fn composite_keys() {
    let ek: [ArrayRef; 2] = [
        Arc::new(Int32Array::from(vec![1, 1, 2, 2])),
        Arc::new(StringArray::from(vec!["x", "y", "x", "y"])),
    ];
    let fk: [ArrayRef; 2] = [
        Arc::new(Int32Array::from(vec![1, 2, 2, 1, 1])),
        Arc::new(StringArray::from(vec!["y", "x", "y", "x", "y"])),
    ];
    let r = asof_join(&ek, &ts(&[10; 4]), &fk, &ts(&[1, 2, 3, 4, 11]), None, None).unwrap();
    assert_eq!(out(&r), vec![Some(3), Some(0), Some(1), Some(2)]);
}

#[test]
fn int32_and_timestamp_keys() {
    let r = asof_join(
        &[Arc::new(Int32Array::from(vec![Some(-3), Some(4), None]))],
        &ts(&[10; 3]),
        &[Arc::new(Int32Array::from(vec![
            Some(4),
            Some(-3),
            Some(-3),
        ]))],
        &ts(&[1, 2, 3]),
        None,
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![Some(2), Some(0), None]);
    let r = asof_join(
        &[Arc::new(
            TimestampSecondArray::from(vec![100, 200]).with_timezone("UTC"),
        )],
        &TimestampMicrosecondArray::from(vec![10, 10]).with_timezone("UTC"),
        &[Arc::new(
            TimestampSecondArray::from(vec![200, 100]).with_timezone("UTC"),
        )],
        &TimestampMicrosecondArray::from(vec![1, 2]),
        None,
        None,
    )
    .unwrap();
    assert_eq!(out(&r), vec![Some(1), Some(0)]);
}

#[test]
fn sparse_int_keys_use_the_hash_table() {
    let keys: Vec<Option<i64>> = (0..5000i64)
        .map(|i| Some(i.wrapping_mul(0x9e37_79b9_7f4a_7c15u64 as i64)))
        .collect();
    let ek = [i64s(&keys)];
    let fk = [i64s(&keys.iter().rev().cloned().collect::<Vec<_>>())];
    let r = asof_join(
        &ek,
        &ts(&vec![10; 5000]),
        &fk,
        &ts(&vec![5; 5000]),
        None,
        None,
    )
    .unwrap();
    let want: Vec<Option<u32>> = (0..5000u32).map(|i| Some(4999 - i)).collect();
    assert_eq!(out(&r), want);
}

#[test]
fn zero_key_columns_is_one_group() {
    let r = asof_join(&[], &ts(&[5, 15]), &[], &ts(&[1, 10, 20]), None, None).unwrap();
    assert_eq!(out(&r), vec![Some(0), Some(1)]);
}

#[test]
fn errors() {
    let e = asof_join(
        &[i64s(&[Some(1)])],
        &ts(&[1]),
        &[Arc::new(Int32Array::from(vec![1]))],
        &ts(&[1]),
        None,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Mismatch(m) if m.contains("key column 0") && m.contains("Int64") && m.contains("Int32")),
        "{e}"
    );
    let e = asof_join(&[i64s(&[Some(1)])], &ts(&[1]), &[], &ts(&[1]), None, None).unwrap_err();
    assert!(matches!(e, Error::Mismatch(_)));
    let e = asof_join(
        &[i64s(&[Some(1)])],
        &ts(&[1, 2]),
        &[i64s(&[Some(1)])],
        &ts(&[1]),
        None,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Mismatch(_)));
    let e = asof_join(
        &[i64s(&[Some(1)])],
        &ts(&[1]),
        &[i64s(&[Some(1), Some(2)])],
        &ts(&[1]),
        None,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Mismatch(_)));
    let e = asof_join(
        &[i64s(&[Some(1)])],
        &ts(&[1]),
        &[i64s(&[Some(1)])],
        &ts(&[1]),
        Some(&ts(&[1, 2])),
        None,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Mismatch(_)));
    let e = asof_join(
        &[i64s(&[Some(1)])],
        &TimestampSecondArray::from(vec![1]),
        &[i64s(&[Some(1)])],
        &ts(&[1]),
        None,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, Error::UnsupportedType { .. }));
    let f: ArrayRef = Arc::new(arrow_array::Float64Array::from(vec![1.0]));
    let e = asof_join(
        std::slice::from_ref(&f),
        &ts(&[1]),
        std::slice::from_ref(&f),
        &ts(&[1]),
        None,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, Error::UnsupportedType { .. }));
}

/// Tiny deterministic PRNG for the randomized comparison.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn opt(&mut self, n: u64, null_pct: u64) -> Option<i64> {
        (self.below(100) >= null_pct).then(|| self.below(n) as i64)
    }
}

#[test]
fn randomized_against_brute_force() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for round in 0..3000 {
        let ne = rng.below(30) as usize;
        let nf = rng.below(40) as usize;
        let ncols = 1 + rng.below(2) as usize;
        let dom = 1 + rng.below(6);
        let tdom = 1 + rng.below(20);
        let nulls = if round % 3 == 0 { 10 } else { 0 };
        let sparse = round % 4 == 1;
        let key = |rng: &mut Rng| {
            rng.opt(dom, nulls).map(|k| {
                if sparse {
                    k.wrapping_mul(0x5851_f42d_4c95_7f2d)
                } else {
                    k - 2
                }
            })
        };
        let ek: Vec<Vec<Option<i64>>> = (0..ncols)
            .map(|_| (0..ne).map(|_| key(&mut rng)).collect())
            .collect();
        let fk: Vec<Vec<Option<i64>>> = (0..ncols)
            .map(|_| (0..nf).map(|_| key(&mut rng)).collect())
            .collect();
        let et: Vec<Option<i64>> = (0..ne).map(|_| rng.opt(tdom, nulls)).collect();
        let ft: Vec<Option<i64>> = (0..nf).map(|_| rng.opt(tdom, nulls)).collect();
        let fc: Vec<Option<i64>> = (0..nf).map(|_| rng.opt(3, 20)).collect();
        let ttl = rng.below(6) as i64;
        let with_c = round % 2 == 0;
        let as_strings = round % 5 == 2;
        let col = |v: &Vec<Option<i64>>| -> ArrayRef {
            if as_strings {
                Arc::new(StringArray::from_iter(
                    v.iter().map(|x| x.map(|x| format!("k{x}"))),
                ))
            } else {
                Arc::new(Int64Array::from(v.clone()))
            }
        };
        let got = asof_join(
            &ek.iter().map(col).collect::<Vec<_>>(),
            &Int64Array::from(et.clone()),
            &fk.iter().map(col).collect::<Vec<_>>(),
            &Int64Array::from(ft.clone()),
            with_c
                .then(|| Int64Array::from(fc.clone()))
                .as_ref()
                .map(|a| a as &dyn Array),
            Some(ttl),
        )
        .unwrap();
        let want = brute(&ek, &et, &fk, &ft, with_c.then_some(&fc[..]), ttl);
        assert_eq!(out(&got), want, "round {round}");
    }
}

#[test]
fn larger_randomized_parallel_paths() {
    // Big enough for several parallel chunks and both int paths.
    let mut rng = Rng(99);
    // (key domain, sparse keys, entity rows): small groups, many buckets, hashed keys,
    // one big group (sort + merge), and few entity rows under many feature rows (the
    // parallel in-bucket path).
    for (dom, sparse, ne) in [
        (50u64, false, 2_000),
        (3000, false, 20_000),
        (3000, true, 20_000),
        (1, false, 2_000),
        (1, false, 5),
        (2, true, 9),
    ] {
        let nf = 100_000;
        let mk = |rng: &mut Rng| -> Option<i64> {
            let k = rng.below(dom) as i64;
            Some(if sparse {
                k.wrapping_mul(0x5851_f42d_4c95_7f2d)
            } else {
                k
            })
        };
        let ek = [(0..ne).map(|_| mk(&mut rng)).collect::<Vec<_>>()];
        let fk = [(0..nf).map(|_| mk(&mut rng)).collect::<Vec<_>>()];
        let et: Vec<Option<i64>> = (0..ne).map(|_| Some(rng.below(1000) as i64)).collect();
        let ft: Vec<Option<i64>> = (0..nf).map(|_| Some(rng.below(1000) as i64)).collect();
        let got = asof_join(
            &[i64s(&ek[0])],
            &Int64Array::from(et.clone()),
            &[i64s(&fk[0])],
            &Int64Array::from(ft.clone()),
            None,
            Some(100),
        )
        .unwrap();
        // Brute force per key via a map from key to feature rows (keeps the test fast).
        let mut by_key: std::collections::HashMap<i64, Vec<usize>> = Default::default();
        for (f, k) in fk[0].iter().enumerate() {
            by_key.entry(k.unwrap()).or_default().push(f);
        }
        for e in 0..ne {
            let t = et[e].unwrap();
            let want = by_key.get(&ek[0][e].unwrap()).and_then(|rows| {
                rows.iter()
                    .filter(|&&f| ft[f].unwrap() <= t && ft[f].unwrap() >= t - 100)
                    .max_by_key(|&&f| (ft[f].unwrap(), f))
                    .map(|&f| f as u32)
            });
            assert_eq!(
                got.is_valid(e).then(|| got.value(e)),
                want,
                "dom {dom} row {e}"
            );
        }
    }
}
