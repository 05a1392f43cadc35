//! The kernel against a brute-force reference on small random inputs (sizes that cross the
//! test-mode task and chunk thresholds), plus named edge cases.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};

use super::hll::SlidingHll;
use super::*;

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
}

struct Case {
    ek: Vec<Option<i64>>,
    et: Vec<Option<i64>>,
    fk: Vec<Option<i64>>,
    ft: Vec<Option<i64>>,
    created: Option<Vec<Option<i64>>>,
    fv: Vec<Option<i64>>,
}

fn random_case(rng: &mut Rng) -> Case {
    let n_e = rng.below(60) as usize;
    let n_f = rng.below(300) as usize;
    let keys = 1 + rng.below(8) as i64;
    let span = 1 + rng.below(100) as i64;
    let opt = |rng: &mut Rng, v: i64, p: u64| if rng.below(100) < p { None } else { Some(v) };
    let mut c = Case {
        ek: vec![],
        et: vec![],
        fk: vec![],
        ft: vec![],
        created: None,
        fv: vec![],
    };
    for _ in 0..n_e {
        let k = rng.below(keys as u64 + 1) as i64;
        let t = rng.below(span as u64) as i64 - 10;
        c.ek.push(opt(rng, k, 3));
        c.et.push(opt(rng, t, 3));
    }
    for _ in 0..n_f {
        let k = rng.below(keys as u64) as i64;
        let t = rng.below(span as u64) as i64 - 10;
        let v = rng.below(7) as i64 - 3;
        c.fk.push(opt(rng, k, 2));
        c.ft.push(opt(rng, t, 2));
        c.fv.push(opt(rng, v, 15));
    }
    if rng.below(2) == 0 {
        c.created = Some(
            (0..n_f)
                .map(|_| {
                    let v = rng.below(4) as i64;
                    opt(rng, v, 30)
                })
                .collect(),
        );
    }
    c
}

fn arr(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

/// The reference: for entity row `e`, the valid feature rows of its window.
fn window_rows(c: &Case, e: usize, spec: &Spec) -> Option<Vec<usize>> {
    let (k, t) = (c.ek[e]?, c.et[e]?);
    let end = spec.end(t);
    Some(
        (0..c.fk.len())
            .filter(|&f| c.fk[f] == Some(k))
            .filter(|&f| c.ft[f].is_some_and(|ft| ft > end - spec.window && ft <= end))
            .filter(|&f| c.fv[f].is_some())
            .collect(),
    )
}

fn rank(c: &Case, f: usize) -> (i64, Option<i64>, usize) {
    (c.ft[f].unwrap(), c.created.as_ref().and_then(|cr| cr[f]), f)
}

fn check(c: &Case, spec: Spec, float: bool) {
    let vals: ArrayRef = if float {
        Arc::new(Float64Array::from(
            c.fv.iter()
                .map(|v| v.map(|x| x as f64 * 0.5))
                .collect::<Vec<_>>(),
        ))
    } else {
        arr(&c.fv)
    };
    let created = c.created.as_ref().map(|cr| arr(cr));
    let out = window_aggregate(
        &[arr(&c.ek)],
        arr(&c.et).as_ref(),
        &[arr(&c.fk)],
        arr(&c.ft).as_ref(),
        created.as_deref(),
        &[vals],
        &[spec],
    )
    .unwrap();
    let o = &out[0];
    assert_eq!(o.len(), c.ek.len());
    let scale = if float { 0.5 } else { 1.0 };
    for e in 0..c.ek.len() {
        let rows = window_rows(c, e, &spec);
        let what = format!("{spec:?} row {e}");
        let Some(rows) = rows else {
            assert!(o.is_null(e), "{what}: null key/ts must give null");
            continue;
        };
        let xs: Vec<f64> = rows
            .iter()
            .map(|&f| c.fv[f].unwrap() as f64 * scale)
            .collect();
        let n = xs.len();
        match spec.function {
            Function::Count => {
                assert_eq!(o.as_primitive::<Int64Type>().value(e), n as i64, "{what}")
            }
            Function::CountDistinct | Function::ApproxCountDistinct => {
                let mut d: Vec<i64> = rows.iter().map(|&f| c.fv[f].unwrap()).collect();
                d.sort();
                d.dedup();
                assert_eq!(
                    o.as_primitive::<Int64Type>().value(e),
                    d.len() as i64,
                    "{what}"
                )
            }
            Function::Sum | Function::Mean | Function::Stddev if n == 0 => {
                assert!(o.is_null(e), "{what}")
            }
            Function::Stddev if n < 2 => assert!(o.is_null(e), "{what}"),
            Function::Sum => {
                let s: f64 = xs.iter().sum();
                let got = if float {
                    o.as_primitive::<Float64Type>().value(e)
                } else {
                    o.as_primitive::<Int64Type>().value(e) as f64
                };
                assert!((got - s).abs() < 1e-9, "{what}: {got} vs {s}")
            }
            Function::Mean => {
                let m = xs.iter().sum::<f64>() / n as f64;
                let got = o.as_primitive::<Float64Type>().value(e);
                assert!((got - m).abs() < 1e-9, "{what}: {got} vs {m}")
            }
            Function::Stddev => {
                let m = xs.iter().sum::<f64>() / n as f64;
                let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64;
                let got = o.as_primitive::<Float64Type>().value(e);
                assert!(
                    (got - var.sqrt()).abs() < 1e-9,
                    "{what}: {got} vs {}",
                    var.sqrt()
                )
            }
            Function::Min | Function::Max | Function::Last => {
                if n == 0 {
                    assert!(o.is_null(e), "{what}");
                    continue;
                }
                let idx = o.as_primitive::<UInt32Type>().value(e) as usize;
                let got = c.fv[idx].unwrap();
                let want = match spec.function {
                    Function::Min => rows.iter().map(|&f| c.fv[f].unwrap()).min().unwrap(),
                    Function::Max => rows.iter().map(|&f| c.fv[f].unwrap()).max().unwrap(),
                    _ => {
                        let best = rows.iter().copied().max_by_key(|&f| rank(c, f)).unwrap();
                        assert_eq!(idx, best, "{what}: last picks the tie-break winner");
                        c.fv[best].unwrap()
                    }
                };
                assert!(rows.contains(&idx), "{what}: index outside the window");
                assert_eq!(got, want, "{what}")
            }
        }
    }
}

const ALL: [Function; 9] = [
    Function::Count,
    Function::Sum,
    Function::Mean,
    Function::Min,
    Function::Max,
    Function::Last,
    Function::Stddev,
    Function::CountDistinct,
    Function::ApproxCountDistinct,
];

#[test]
fn matches_brute_force() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..300 {
        let c = random_case(&mut rng);
        let window = 1 + rng.below(40) as i64;
        let slide = match rng.below(3) {
            0 => None,
            _ => Some(1 + rng.below(window as u64) as i64),
        };
        for f in ALL {
            let float = matches!(
                f,
                Function::Sum | Function::Mean | Function::Stddev | Function::Min | Function::Max
            ) && rng.below(2) == 0;
            check(
                &c,
                Spec {
                    function: f,
                    value: 0,
                    window,
                    slide,
                },
                float,
            );
        }
    }
}

fn one(function: Function, window: i64, slide: Option<i64>, et: i64, ft: &[i64]) -> ArrayRef {
    let n = ft.len();
    let out = window_aggregate(
        &[arr(&[Some(1)])],
        arr(&[Some(et)]).as_ref(),
        &[arr(&vec![Some(1); n])],
        arr(&ft.iter().map(|&t| Some(t)).collect::<Vec<_>>()).as_ref(),
        None,
        &[arr(&(0..n as i64).map(Some).collect::<Vec<_>>())],
        &[Spec {
            function,
            value: 0,
            window,
            slide,
        }],
    )
    .unwrap();
    out[0].clone()
}

#[test]
fn window_is_open_at_start_and_closed_at_end() {
    let c = one(Function::Count, 10, None, 100, &[90, 91, 100, 101]);
    assert_eq!(c.as_primitive::<Int64Type>().value(0), 2); // 91 and 100
}

#[test]
fn slide_floors_at_the_exact_boundary() {
    // T = 100 is on the boundary: the window ends at 100 itself
    let c = one(Function::Count, 20, Some(10), 100, &[80, 81, 100]);
    assert_eq!(c.as_primitive::<Int64Type>().value(0), 2);
    // T = 109 floors to 100: the row at 105 is not yet in
    let c = one(Function::Count, 20, Some(10), 109, &[81, 105]);
    assert_eq!(c.as_primitive::<Int64Type>().value(0), 1);
    // negative times floor towards negative infinity
    let c = one(Function::Count, 20, Some(10), -1, &[-35, -15, -10, -5]);
    assert_eq!(c.as_primitive::<Int64Type>().value(0), 2); // end -10: (-30, -10]
}

#[test]
fn empty_window_counts_zero_and_nulls_the_rest() {
    let c = one(Function::Count, 10, None, 100, &[50]);
    assert_eq!(c.as_primitive::<Int64Type>().value(0), 0);
    let s = one(Function::Sum, 10, None, 100, &[50]);
    assert!(s.is_null(0));
    let d = one(Function::CountDistinct, 10, None, 100, &[]);
    assert_eq!(d.as_primitive::<Int64Type>().value(0), 0);
}

#[test]
fn string_keys_and_values() {
    let keys: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a", "a"]));
    let ek: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c"]));
    let vals: ArrayRef = Arc::new(StringArray::from(vec![
        Some("x"),
        Some("y"),
        Some("x"),
        None,
    ]));
    let out = window_aggregate(
        &[ek],
        arr(&[Some(10), Some(10), Some(10)]).as_ref(),
        &[keys],
        arr(&[Some(1), Some(2), Some(3), Some(4)]).as_ref(),
        None,
        &[vals],
        &[
            Spec {
                function: Function::CountDistinct,
                value: 0,
                window: 100,
                slide: None,
            },
            Spec {
                function: Function::Count,
                value: 0,
                window: 100,
                slide: None,
            },
        ],
    )
    .unwrap();
    let d = out[0].as_primitive::<Int64Type>();
    assert_eq!((d.value(0), d.value(1), d.value(2)), (1, 1, 0));
    let n = out[1].as_primitive::<Int64Type>();
    assert_eq!((n.value(0), n.value(1), n.value(2)), (2, 1, 0));
}

#[test]
fn integer_sum_overflow_is_an_error() {
    let out = window_aggregate(
        &[arr(&[Some(1)])],
        arr(&[Some(10)]).as_ref(),
        &[arr(&[Some(1), Some(1)])],
        arr(&[Some(1), Some(2)]).as_ref(),
        None,
        &[arr(&[Some(i64::MAX), Some(1)])],
        &[Spec {
            function: Function::Sum,
            value: 0,
            window: 100,
            slide: None,
        }],
    );
    assert!(matches!(out, Err(Error::Invalid(_))));
}

#[test]
fn float_sum_survives_an_infinity_leaving() {
    let vals: ArrayRef = Arc::new(Float64Array::from(vec![f64::INFINITY, 1.5, 2.0]));
    let out = window_aggregate(
        &[arr(&[Some(1), Some(1)])],
        arr(&[Some(2), Some(12)]).as_ref(),
        &[arr(&[Some(1), Some(1), Some(1)])],
        arr(&[Some(1), Some(2), Some(3)]).as_ref(),
        None,
        &[vals],
        &[Spec {
            function: Function::Sum,
            value: 0,
            window: 11,
            slide: None,
        }],
    )
    .unwrap();
    let s = out[0].as_primitive::<Float64Type>();
    assert_eq!(s.value(0), f64::INFINITY);
    assert_eq!(s.value(1), 3.5);
}

#[test]
fn hll_is_within_error_and_removal_is_exact() {
    let mut h = SlidingHll::new();
    let n = 200_000u64;
    for i in 0..n {
        h.add(funcs::hash_int(i));
    }
    let e = h.estimate();
    assert!((e - n as f64).abs() / (n as f64) < 0.03, "{e}");
    // removing the first half gives the same registers as adding only the second half
    for i in 0..n / 2 {
        h.remove(funcs::hash_int(i));
    }
    let mut fresh = SlidingHll::new();
    for i in n / 2..n {
        fresh.add(funcs::hash_int(i));
    }
    assert_eq!(h.estimate(), fresh.estimate());
}
