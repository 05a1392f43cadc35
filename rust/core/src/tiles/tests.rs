use super::*;

fn spec(func: Func, kind: Kind) -> TileSpec {
    TileSpec {
        func,
        kind,
        window: 100,
        slide: 10,
    }
}

/// Rows (ts, value) of one key: a brute-force window aggregate vs the tiles' read, at every
/// instant around them.
#[test]
fn tiles_match_brute_force() {
    let rows: Vec<(i64, Option<i64>)> = (0..200)
        .map(|i| {
            (
                (i * 37) % 311 - 50,
                if i % 7 == 0 {
                    None
                } else {
                    Some((i * 13) % 17 - 8)
                },
            )
        })
        .collect();
    let funcs = [
        Func::Count,
        Func::Sum,
        Func::Mean,
        Func::Min,
        Func::Max,
        Func::Last,
        Func::CountDistinct,
        Func::ApproxCountDistinct,
    ];
    let specs: Vec<TileSpec> = funcs.iter().map(|f| spec(*f, Kind::Int)).collect();
    let mut set = TileSet::new(specs.len());
    for (i, (t, v)) in rows.iter().enumerate() {
        // half the rows pushed as separate tile sets, merged (add), the rest built in place
        let vals = vec![v.map(Val::I); specs.len()];
        if i % 2 == 0 {
            set.add_row(&specs, *t, i as i64, vals);
        } else {
            let mut one = TileSet::new(specs.len());
            one.add_row(&specs, *t, i as i64, vals);
            let blob = encode(&specs, &one);
            set.add_tiles(&specs, &decode(&specs, &blob).unwrap());
        }
    }
    let set = decode(&specs, &encode(&specs, &set)).unwrap();
    for at in -80i64..300 {
        let end = at - at.rem_euclid(10);
        let inside: Vec<(usize, i64)> = rows
            .iter()
            .enumerate()
            .filter(|(_, (t, _))| end - 100 < *t && *t <= end)
            .filter_map(|(i, (_, v))| v.map(|v| (i, v)))
            .collect();
        for (k, s) in specs.iter().enumerate() {
            let got = finish(s, &set.window(&specs, k, at)).unwrap();
            let n = inside.len() as i64;
            let sum: i64 = inside.iter().map(|(_, v)| v).sum();
            let want = match s.func {
                Func::Count => Out::Int(n),
                _ if n == 0 && s.func == Func::CountDistinct => Out::Int(0),
                _ if n == 0 && s.func == Func::ApproxCountDistinct => Out::Int(0),
                _ if n == 0 => Out::Null,
                Func::Sum => Out::Int(sum),
                Func::Mean => Out::Float(sum as f64 / n as f64),
                Func::Min => Out::Val(Val::I(inside.iter().map(|(_, v)| *v).min().unwrap())),
                Func::Max => Out::Val(Val::I(inside.iter().map(|(_, v)| *v).max().unwrap())),
                Func::Last => {
                    let (_, v) = inside
                        .iter()
                        .max_by_key(|(i, _)| (rows[*i].0, *i as i64))
                        .unwrap();
                    Out::Val(Val::I(*v))
                }
                Func::CountDistinct | Func::ApproxCountDistinct => {
                    let mut d: Vec<i64> = inside.iter().map(|(_, v)| *v).collect();
                    d.sort();
                    d.dedup();
                    Out::Int(d.len() as i64) // HLL is exact for a handful of values
                }
                Func::Stddev => unreachable!(),
            };
            assert_eq!(got, want, "{:?} at {at}", s.func);
        }
    }
}

#[test]
fn stddev_and_float_sums() {
    let specs = [
        spec(Func::Stddev, Kind::Float),
        spec(Func::Sum, Kind::Float),
    ];
    let mut set = TileSet::new(2);
    for (t, x) in [(1, 1.0), (15, 2.0), (25, 4.0), (26, f64::NAN)] {
        set.add_row(&specs, t, 0, vec![Some(Val::F(x)); 2]);
    }
    let Out::Float(sd) = finish(&specs[0], &set.window(&specs, 0, 20)).unwrap() else {
        panic!()
    };
    assert!((sd - 0.5f64.sqrt()).abs() < 1e-12);
    assert_eq!(
        finish(&specs[1], &set.window(&specs, 1, 20)).unwrap(),
        Out::Float(3.0)
    );
    let Out::Float(s) = finish(&specs[1], &set.window(&specs, 1, 30)).unwrap() else {
        panic!()
    };
    assert!(s.is_nan());
}

#[test]
fn tile_ends_windows_replace_and_expire() {
    let s = spec(Func::Count, Kind::Int);
    assert_eq!(
        (s.tile_end(10), s.tile_end(11), s.tile_end(-1)),
        (10, 20, 0)
    );
    assert_eq!((s.window_end(19), s.window_end(-1)), (10, -10));
    let specs = [s];
    let mut set = TileSet::new(1);
    for t in [5, 15, 25, 35, 500] {
        set.add_row(&specs, t, 0, vec![Some(Val::I(1))]);
    }
    // a materialization of (10, 30] recomputed: tiles 20 and 30 replaced, tile 40 kept
    let mut fresh = TileSet::new(1);
    fresh.add_row(&specs, 21, 0, vec![Some(Val::I(1))]);
    fresh.add_row(&specs, 22, 0, vec![Some(Val::I(1))]);
    set.replace_tiles(&specs, &fresh, 10, 30);
    let ends: Vec<(i64, i64)> = set.tiles[0].iter().map(|(e, p)| (*e, p.num.n)).collect();
    assert_eq!(ends, [(10, 1), (30, 2), (40, 1), (500, 1)]);
    set.expire(&specs);
    assert_eq!(set.tiles[0].keys().copied().collect::<Vec<_>>(), [500]);
}

#[test]
fn another_definition_or_damage_is_corrupt() {
    let specs = [spec(Func::Sum, Kind::Int)];
    let mut set = TileSet::new(1);
    set.add_row(&specs, 3, 0, vec![Some(Val::I(4))]);
    let blob = encode(&specs, &set);
    let other = [spec(Func::Max, Kind::Int)];
    assert!(matches!(decode(&other, &blob), Err(Error::Corrupt(_))));
    for cut in 0..blob.len() {
        assert!(decode(&specs, &blob[..cut]).is_err());
    }
    let mut long = blob.clone();
    long.push(0);
    assert!(decode(&specs, &long).is_err());
}

#[test]
fn read_window_equals_decode_then_merge() {
    let specs = [spec(Func::Sum, Kind::Int), spec(Func::Max, Kind::Float)];
    let mut set = TileSet::new(2);
    for t in 0..300 {
        set.add_row(
            &specs,
            t,
            0,
            vec![Some(Val::I(t % 7)), Some(Val::F((t % 11) as f64))],
        );
    }
    let blob = encode(&specs, &set);
    let full = decode(&specs, &blob).unwrap();
    for at in [-5, 0, 9, 10, 150, 299, 400] {
        let (newest, outs) = read_window(&specs, &blob, at).unwrap();
        assert_eq!(newest, 299);
        for (i, s) in specs.iter().enumerate() {
            assert_eq!(outs[i], finish(s, &full.window(&specs, i, at)).unwrap());
        }
    }
}

/// The version 1 writer (fixed-width fields), kept here to check old blobs still read.
fn encode_v1(specs: &[TileSpec], set: &TileSet) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(64));
    w.0.extend_from_slice(MAGIC);
    w.0.push(1);
    w.0.push(specs.len() as u8);
    w.i64(set.newest);
    for (spec, tiles) in specs.iter().zip(&set.tiles) {
        w.0.push(spec.func as u8);
        w.0.push(spec.kind as u8);
        w.i64(spec.window);
        w.i64(spec.slide);
        w.u32(tiles.len() as u32);
        for (end, p) in tiles {
            w.i64(*end);
            w.i64(p.num.n);
            match spec.func {
                Func::Count => {}
                Func::Sum | Func::Mean => match spec.kind {
                    Kind::Int => w.0.extend_from_slice(&p.num.sum_i.to_le_bytes()),
                    _ => {
                        w.val(&Val::F(p.num.sum_f));
                        w.val(&Val::F(p.num.comp));
                        w.u32(p.num.nan);
                        w.u32(p.num.pos_inf);
                        w.u32(p.num.neg_inf);
                    }
                },
                Func::Stddev => {
                    w.val(&Val::F(p.num.mean));
                    w.val(&Val::F(p.num.m2));
                }
                Func::Min | Func::Max => w.opt(&p.ext),
                Func::Last => match &p.last {
                    None => w.0.push(0),
                    Some((t, c, v)) => {
                        w.0.push(1);
                        w.i64(*t);
                        w.i64(*c);
                        w.val(v);
                    }
                },
                Func::CountDistinct => {
                    w.u32(p.distinct.len() as u32);
                    for v in &p.distinct {
                        w.val(v);
                    }
                }
                Func::ApproxCountDistinct => {
                    w.u32(p.hashes.len() as u32);
                    for h in &p.hashes {
                        w.i64(*h as i64);
                    }
                }
            }
        }
    }
    w.0
}

/// A spec of every function for every kind it takes (no byte sums, means or stddevs).
fn every_spec() -> Vec<TileSpec> {
    let mut specs = Vec::new();
    for f in [
        Func::Count,
        Func::Sum,
        Func::Mean,
        Func::Min,
        Func::Max,
        Func::Last,
        Func::Stddev,
        Func::CountDistinct,
        Func::ApproxCountDistinct,
    ] {
        for k in [Kind::Int, Kind::Float, Kind::Bytes] {
            if k == Kind::Bytes && matches!(f, Func::Sum | Func::Mean | Func::Stddev) {
                continue;
            }
            specs.push(spec(f, k));
        }
    }
    specs
}

/// Every function and kind, with compensation, NaN and infinities, large integer sums and
/// negative tile ends: version 2 round-trips the tiles exactly (empty tiles dropped), a
/// version 1 blob of the same tiles reads the same, and the read merges the same values.
#[test]
fn version_2_round_trips_and_version_1_still_reads() {
    let specs = every_spec();
    let mut set = TileSet::new(specs.len());
    let floats = [
        1e300,
        1.0,
        -1e300,
        0.1,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
    ];
    for i in 0..200i64 {
        let t = (i * 29) % 700 - 300;
        let vals = specs
            .iter()
            .map(|s| {
                if i % 9 == 0 {
                    return None;
                }
                Some(match s.kind {
                    Kind::Int => Val::I(if i % 5 == 0 {
                        i64::MAX - i
                    } else {
                        i * 3 - 500
                    }),
                    Kind::Float => Val::F(floats[(i % 8) as usize] * (i % 3 + 1) as f64),
                    Kind::Bytes => Val::B(format!("v{}", i % 13).into_bytes()),
                })
            })
            .collect();
        set.add_row(&specs, t, i % 4, vals);
    }
    // a tile holding only nulls (n = 0): left out of version 2
    set.add_row(&specs, 10_000, 0, vec![None; specs.len()]);
    let v2 = encode(&specs, &set);
    let v1 = encode_v1(&specs, &set);
    assert!(v2.len() * 2 < v1.len(), "{} vs {}", v2.len(), v1.len());
    let mut want = set.clone();
    for tiles in &mut want.tiles {
        tiles.retain(|_, p| p.num.n > 0);
    }
    // compared as Debug text: NaN partials (inf - inf in a sum, stddev of 1e300s) equal
    let dbg = |s: &TileSet| format!("{s:?}");
    assert_eq!(dbg(&decode(&specs, &v2).unwrap()), dbg(&want));
    assert_eq!(dbg(&decode(&specs, &v1).unwrap()), dbg(&set));
    for at in [-400, -301, -1, 0, 55, 399, 700, 10_000] {
        let (a, b) = (read_window(&specs, &v1, at), read_window(&specs, &v2, at));
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")), // NaN-safe
            (Err(_), Err(_)) => {} // an int64 overflow on both sides
            (a, b) => panic!("{a:?} vs {b:?}"),
        }
    }
    for cut in (0..v2.len()).step_by(5) {
        assert!(decode(&specs, &v2[..cut]).is_err());
    }
    let mut future = v2.clone();
    future[2] = 3;
    let err = decode(&specs, &future).unwrap_err().to_string();
    assert!(err.contains("version 3"), "{err}");
}

/// The read's fold (one accumulator per spec, straight from the blob) gives the same bits
/// as decoding every tile and merging the window's partials, for every function and kind
/// (compensated float sums, NaN and infinities, bytes extremes, distinct values, hashes),
/// from version 1 and version 2 blobs, at instants before, inside and after the tiles.
#[test]
fn read_window_fold_equals_decode_then_merge_everywhere() {
    let specs = every_spec();
    let floats = [
        0.1,
        1e16,
        -1e16,
        3.5,
        f64::NAN,
        2.0,
        f64::INFINITY,
        -0.0,
        7.25,
    ];
    let mut set = TileSet::new(specs.len());
    for i in 0..400i64 {
        let t = (i * 53) % 900 - 200;
        let vals = specs
            .iter()
            .map(|s| {
                (i % 11 != 0).then(|| match s.kind {
                    Kind::Int => Val::I((i * 7919) % 1000 - 400),
                    Kind::Float => Val::F(floats[(i % 9) as usize] * ((i % 4) as f64 + 0.5)),
                    Kind::Bytes => Val::B(format!("k{}", (i * 31) % 23).into_bytes()),
                })
            })
            .collect();
        set.add_row(&specs, t, i % 5, vals);
    }
    set.add_row(&specs, 5_000, 0, vec![None; specs.len()]); // an all-null tile
    let bits = |o: &Out| match o {
        Out::Float(x) | Out::Val(Val::F(x)) => format!("f{:x}", x.to_bits()),
        other => format!("{other:?}"),
    };
    for blob in [encode(&specs, &set), encode_v1(&specs, &set)] {
        let full = decode(&specs, &blob).unwrap();
        for at in (-400..1_000).step_by(7).chain([5_000, 5_099, 5_100]) {
            let (newest, outs) = read_window(&specs, &blob, at).unwrap();
            assert_eq!(newest, 5_000);
            for (i, s) in specs.iter().enumerate() {
                let want = finish(s, &full.window(&specs, i, at)).unwrap();
                assert_eq!(bits(&outs[i]), bits(&want), "{s:?} at {at}");
            }
        }
        for cut in 0..blob.len() {
            assert!(
                read_window(&specs, &blob[..cut], 0).is_err(),
                "cut at {cut}"
            );
        }
    }
}
