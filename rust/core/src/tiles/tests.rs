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
    let ends: Vec<(i64, i64)> = set.tiles[0].iter().map(|(e, p)| (*e, p.n)).collect();
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
