use std::time::Instant;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    LargeListBuilder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{BinaryViewArray, StringViewArray};
use arrow_schema::Field;

use super::*;

fn field(name: &str, dt: DataType) -> FieldRef {
    Arc::new(Field::new(name, dt, true))
}

fn list_of(dt: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", dt, true)))
}

fn ts(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
}

/// One column of every supported type, 5 rows, with nulls, empty strings and lists.
fn all_types() -> (Vec<FieldRef>, Vec<ArrayRef>) {
    let tsz = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields = vec![
        field("b", DataType::Boolean),
        field("i32", DataType::Int32),
        field("i64", DataType::Int64),
        field("f32", DataType::Float32),
        field("f64", DataType::Float64),
        field("s", DataType::Utf8),
        field("bin", DataType::Binary),
        field("t", tsz.clone()),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(BooleanArray::from(vec![
            Some(true),
            None,
            Some(false),
            Some(true),
            None,
        ])),
        Arc::new(Int32Array::from(vec![
            Some(i32::MIN),
            Some(0),
            None,
            Some(7),
            Some(-1),
        ])),
        Arc::new(Int64Array::from(vec![
            Some(i64::MAX),
            None,
            Some(0),
            Some(-5),
            Some(1),
        ])),
        Arc::new(Float32Array::from(vec![
            Some(1.5),
            Some(f32::NAN),
            None,
            Some(-0.0),
            Some(3.0),
        ])),
        Arc::new(Float64Array::from(vec![
            None,
            Some(f64::INFINITY),
            Some(2.25),
            Some(0.0),
            Some(-1e300),
        ])),
        Arc::new(StringArray::from(vec![
            Some("héllo"),
            Some(""),
            None,
            Some("x"),
            Some("a longer string value"),
        ])),
        Arc::new(BinaryArray::from_opt_vec(vec![
            Some(b"\x00\x01"),
            None,
            Some(b""),
            Some(b"\xff"),
            Some(b"z"),
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![
                Some(1),
                None,
                Some(-1),
                Some(i64::MIN),
                Some(i64::MAX),
            ])
            .with_timezone("UTC"),
        ),
    ];
    // lists: [ [v, null], null, [], [v], [null] ] for each scalar type
    fn lists<B: arrow_array::builder::ArrayBuilder>(
        mut b: ListBuilder<B>,
        mut push: impl FnMut(&mut B, Option<usize>),
    ) -> ArrayRef {
        push(b.values(), Some(0));
        push(b.values(), None);
        b.append(true);
        b.append(false);
        b.append(true);
        push(b.values(), Some(1));
        b.append(true);
        push(b.values(), None);
        b.append(true);
        Arc::new(b.finish())
    }
    cols.push(lists(ListBuilder::new(BooleanBuilder::new()), |b, v| {
        b.append_option(v.map(|v| v == 0))
    }));
    cols.push(lists(ListBuilder::new(Int32Builder::new()), |b, v| {
        b.append_option(v.map(|v| v as i32 - 3))
    }));
    cols.push(lists(ListBuilder::new(Int64Builder::new()), |b, v| {
        b.append_option(v.map(|v| v as i64 * 1_000_000_000_000))
    }));
    cols.push(lists(ListBuilder::new(Float32Builder::new()), |b, v| {
        b.append_option(v.map(|v| v as f32 + 0.5))
    }));
    cols.push(lists(ListBuilder::new(Float64Builder::new()), |b, v| {
        b.append_option(v.map(|v| v as f64 - 0.25))
    }));
    cols.push(lists(ListBuilder::new(StringBuilder::new()), |b, v| {
        b.append_option(v.map(|v| if v == 0 { "" } else { "élément" }))
    }));
    cols.push(lists(ListBuilder::new(BinaryBuilder::new()), |b, v| {
        b.append_option(v.map(|v| vec![v as u8; v * 3]))
    }));
    cols.push(lists(
        ListBuilder::new(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
        |b, v| b.append_option(v.map(|v| v as i64 + 1_700_000_000_000_000)),
    ));
    for (name, c) in ["lb", "li32", "li64", "lf32", "lf64", "ls", "lbin", "lt"]
        .iter()
        .zip(&cols[8..])
    {
        fields.push(field(name, c.data_type().clone()));
    }
    (fields, cols)
}

fn assert_same(a: &dyn Array, b: &dyn Array) {
    // NaN != NaN for PartialEq on arrays; compare the bit patterns through the data
    assert_eq!(a.to_data(), b.to_data(), "{a:?} vs {b:?}");
}

#[test]
fn round_trip_every_type() {
    let (fields, cols) = all_types();
    let event = ts(vec![10, 20, 30, 40, 50]);
    let created = ts(vec![1, 2, 3, 4, 5]);
    let created = Arc::new(
        created
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .enumerate()
            .map(|(i, v)| if i == 2 { None } else { v })
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    ) as ArrayRef;
    for named in [true, false] {
        let blobs = if named {
            encode_values_with_fields(&event, Some(&created), &cols, &fields).unwrap()
        } else {
            encode_values(&event, Some(&created), &cols).unwrap()
        };
        assert_eq!(blobs.len(), 5);
        assert_eq!(blobs.null_count(), 0);
        let (e, c, out) = decode_values(&blobs, &fields).unwrap();
        assert_eq!(e.values().to_vec(), vec![10, 20, 30, 40, 50]);
        assert_eq!(e.null_count(), 0);
        assert_eq!(
            e.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            vec![Some(1), Some(2), None, Some(4), Some(5)]
        );
        assert_eq!(out.len(), cols.len());
        for (i, (o, want)) in out.iter().zip(&cols).enumerate() {
            assert_eq!(o.data_type(), fields[i].data_type());
            assert_same(o.as_ref(), want.as_ref());
        }
    }
}

#[test]
fn null_blobs_decode_to_nulls() {
    let (fields, cols) = all_types();
    let blobs = encode_values(&ts(vec![1, 2, 3, 4, 5]), None, &cols).unwrap();
    let with_nulls = BinaryArray::from_opt_vec(vec![None, Some(blobs.value(1)), None]);
    let (e, c, out) = decode_values(&with_nulls, &fields).unwrap();
    assert_eq!(e.iter().collect::<Vec<_>>(), vec![None, Some(2), None]);
    assert_eq!(c.null_count(), 3);
    for (o, want) in out.iter().zip(&cols) {
        assert_eq!(o.len(), 3);
        assert!(o.is_null(0) && o.is_null(2));
        assert_same(o.slice(1, 1).as_ref(), want.slice(1, 1).as_ref());
    }
}

#[test]
fn other_layouts_and_slices() {
    // large / view inputs encode like the plain ones; decode follows the field types
    let s = Arc::new(StringArray::from(vec![
        Some("a"),
        None,
        Some(""),
        Some("dd"),
    ])) as ArrayRef;
    let v = Arc::new(StringViewArray::from(vec![
        Some("a"),
        None,
        Some(""),
        Some("dd"),
    ])) as ArrayRef;
    let lb = Arc::new(LargeBinaryArray::from_opt_vec(vec![
        Some(b"a"),
        None,
        Some(b""),
        Some(b"dd"),
    ])) as ArrayRef;
    let mut ll = LargeListBuilder::new(Int64Builder::new());
    ll.values().append_value(1);
    ll.append(true);
    ll.append(false);
    ll.append(true);
    ll.values().append_null();
    ll.values().append_value(2);
    ll.append(true);
    let ll = Arc::new(ll.finish()) as ArrayRef;
    let event = ts(vec![1, 2, 3, 4]);
    let a = encode_values(&event, None, &[s.clone(), lb.clone(), ll.clone()]).unwrap();
    let b = encode_values(&event, None, &[v.clone(), lb.clone(), ll.clone()]).unwrap();
    assert_eq!(a, b);

    let fields = vec![
        field("s", DataType::Utf8View),
        field("b", DataType::BinaryView),
        field("l", list_of(DataType::Int64)),
    ];
    let (_, _, out) = decode_values(&a, &fields).unwrap();
    assert_same(out[0].as_ref(), v.as_ref());
    let bv: BinaryViewArray = lb.as_binary::<i64>().iter().collect();
    assert_same(out[1].as_ref(), &bv);
    assert_eq!(out[2].data_type(), &list_of(DataType::Int64));
    let l = out[2].as_list::<i32>();
    assert_eq!(l.value_offsets().to_vec(), vec![0, 1, 1, 1, 3]);
    assert!(l.is_null(1) && !l.is_null(2));

    let fields = vec![
        field("s", DataType::LargeUtf8),
        field("b", DataType::LargeBinary),
        field("l", ll.data_type().clone()),
    ];
    let (_, _, out) = decode_values(&a, &fields).unwrap();
    assert_same(out[1].as_ref(), lb.as_ref());
    assert_same(out[2].as_ref(), ll.as_ref());

    // sliced inputs
    let sliced = encode_values(
        &event.slice(1, 3),
        None,
        &[s.slice(1, 3), lb.slice(1, 3), ll.slice(1, 3)],
    )
    .unwrap();
    for i in 0..3 {
        assert_eq!(sliced.value(i), a.value(i + 1));
    }
}

#[test]
fn no_columns_and_int64_timestamps() {
    let event = Arc::new(Int64Array::from(vec![5, 6])) as ArrayRef;
    let blobs = encode_values(&event, Some(&event), &[]).unwrap();
    assert_eq!(blobs.value(0).len(), HEAD + 8);
    let (e, c, out) = decode_values(&blobs, &[]).unwrap();
    assert_eq!(e.values().to_vec(), vec![5, 6]);
    assert_eq!(c.values().to_vec(), vec![5, 6]);
    assert!(out.is_empty());
}

#[test]
fn layout_is_as_documented() {
    let event = ts(vec![0x0102]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![Some(7)])),
        Arc::new(StringArray::from(vec![None::<&str>])),
        Arc::new(StringArray::from(vec!["hi"])),
    ];
    let created = ts(vec![3]);
    let blob = encode_values(&event, Some(&created), &cols).unwrap();
    let fields = vec![
        field("a", DataType::Int32),
        field("b", DataType::Utf8),
        field("c", DataType::Utf8),
    ];
    let fp = schema_fingerprint(&fields, false).unwrap();
    let mut want = vec![1u8, F_CREATED | F_NULLS, 3, 0];
    want.extend_from_slice(&fp.to_le_bytes());
    want.extend_from_slice(&0x0102i64.to_le_bytes());
    want.extend_from_slice(&3i64.to_le_bytes());
    want.push(0b101);
    want.extend_from_slice(&7i32.to_le_bytes());
    want.extend_from_slice(&[2, b'h', b'i']);
    assert_eq!(blob.value(0), want.as_slice());
}

#[test]
fn schema_change_is_reported() {
    let cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![1]))];
    let fields = vec![field("a", DataType::Int64)];
    let blobs = encode_values_with_fields(&ts(vec![1]), None, &cols, &fields).unwrap();
    for other in [
        vec![field("renamed", DataType::Int64)],
        vec![field("a", DataType::Float64)],
        vec![field("a", DataType::Int64), field("b", DataType::Int64)],
        vec![],
    ] {
        let err = decode_values(&blobs, &other).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("re-materialize"), "{err}");
    }
    // the unnamed fingerprint still catches type changes
    let blobs = encode_values(&ts(vec![1]), None, &cols).unwrap();
    assert!(decode_values(&blobs, &[field("renamed", DataType::Int64)]).is_ok());
    assert!(decode_values(&blobs, &[field("a", DataType::Int32)]).is_err());
    // encode-side mismatch between fields and columns
    assert!(matches!(
        encode_values_with_fields(&ts(vec![1]), None, &cols, &[field("a", DataType::Utf8)]),
        Err(Error::Mismatch(_))
    ));
}

#[test]
fn bad_inputs() {
    let cols: Vec<ArrayRef> = vec![Arc::new(arrow_array::UInt8Array::from(vec![1]))];
    assert!(matches!(
        encode_values(&ts(vec![1]), None, &cols),
        Err(Error::UnsupportedType { .. })
    ));
    let null_ts = Arc::new(Int64Array::from(vec![None, Some(1)])) as ArrayRef;
    assert!(matches!(
        encode_values(&null_ts, None, &[]),
        Err(Error::Invalid(_))
    ));
    let cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![1, 2]))];
    assert!(matches!(
        encode_values(&ts(vec![1]), None, &cols),
        Err(Error::Mismatch(_))
    ));
    assert!(matches!(
        decode_values(
            &BinaryArray::from_vec(vec![]),
            &[field("x", DataType::Date32)]
        ),
        Err(Error::UnsupportedType { .. })
    ));
    // a non-nullable list element field cannot take null elements
    let (fields, cols) = all_types();
    let blobs = encode_values(&ts(vec![1, 2, 3, 4, 5]), None, &cols).unwrap();
    let mut strict = fields.clone();
    strict[9] = field(
        "li32",
        DataType::List(Arc::new(Field::new("item", DataType::Int32, false))),
    );
    assert!(matches!(
        decode_values(&blobs, &strict),
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn truncated_and_garbage_blobs_are_corrupt_not_panics() {
    let (fields, cols) = all_types();
    let created = ts(vec![1, 2, 3, 4, 5]);
    let blobs = encode_values(&ts(vec![1, 2, 3, 4, 5]), Some(&created), &cols).unwrap();
    let mut x: u64 = 0x9E37_79B9;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..blobs.len() {
        let blob = blobs.value(i);
        // every strict prefix fails
        for cut in 0..blob.len() {
            let b = BinaryArray::from_vec(vec![&blob[..cut]]);
            let err = decode_values(&b, &fields).unwrap_err();
            assert!(matches!(err, Error::Corrupt(_)), "cut {cut}: {err}");
        }
        // an extra byte fails
        let mut longer = blob.to_vec();
        longer.push(0);
        assert!(decode_values(&BinaryArray::from_vec(vec![&longer]), &fields).is_err());
        // random byte flips never panic (they may happen to decode)
        for _ in 0..2000 {
            let mut b = blob.to_vec();
            for _ in 0..1 + rnd() % 4 {
                let at = (rnd() as usize) % b.len();
                b[at] = rnd() as u8;
            }
            let _ = decode_values(&BinaryArray::from_vec(vec![&b]), &fields);
        }
    }
    // pure garbage, with a valid header so the body parser is exercised
    let header = &blobs.value(0)[..HEAD];
    for _ in 0..20_000 {
        let n = (rnd() % 64) as usize;
        let mut b = if rnd() % 2 == 0 {
            header.to_vec()
        } else {
            vec![]
        };
        for _ in 0..n {
            b.push(rnd() as u8);
        }
        if let Err(e) = decode_values(&BinaryArray::from_vec(vec![&b]), &fields) {
            assert!(matches!(e, Error::Corrupt(_)), "{e}");
        }
    }
    // huge list counts and varint overflow
    let lf = vec![field("l", list_of(DataType::Int64))];
    let lfp = schema_fingerprint(&lf, false).unwrap();
    for body in [
        vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        vec![0x80],
    ] {
        let mut b = vec![1u8, 0, 1, 0];
        b.extend_from_slice(&lfp.to_le_bytes());
        b.extend_from_slice(&0i64.to_le_bytes());
        b.extend_from_slice(&body);
        let err = decode_values(&BinaryArray::from_vec(vec![&b]), &lf).unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
    }
    // invalid utf-8 in a string field
    let sf = vec![field("s", DataType::Utf8)];
    let mut b = vec![1u8, 0, 1, 0];
    b.extend_from_slice(&schema_fingerprint(&sf, false).unwrap().to_le_bytes());
    b.extend_from_slice(&0i64.to_le_bytes());
    b.extend_from_slice(&[2, 0xc3, 0x28]);
    let err = decode_values(&BinaryArray::from_vec(vec![&b]), &sf).unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
}

/// Throughput check; run with `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_codec() {
    // best of 3, CPU time of this thread (the machine is shared, wall time is noisy)
    fn cpu_ns() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        s.split_whitespace().next()?.parse().ok()
    }
    fn timed<T>(f: impl Fn() -> T) -> (T, f64) {
        let mut best = f64::MAX;
        let mut out = None;
        for _ in 0..3 {
            let (t0, c0) = (Instant::now(), cpu_ns());
            out = Some(f());
            let dt = match (c0, cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 / 1e9,
                _ => t0.elapsed().as_secs_f64(),
            };
            best = best.min(dt);
        }
        (out.expect("ran"), best)
    }
    let n = 1_000_000usize;
    let event = ts((0..n as i64).collect());
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(
            (0..n).map(|i| i as f64 * 0.5).collect::<Vec<_>>(),
        )),
        Arc::new(Float32Array::from(
            (0..n)
                .map(|i| if i % 10 == 0 { None } else { Some(i as f32) })
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            (0..n).map(|i| format!("value-{i}")).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            (0..n).map(|i| i % 3 == 0).collect::<Vec<_>>(),
        )),
    ];
    let fields: Vec<FieldRef> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| field(&format!("f{i}"), c.data_type().clone()))
        .collect();
    let (blobs, enc) = timed(|| encode_values_with_fields(&event, None, &cols, &fields).unwrap());
    let ((_, _, out), dec) = timed(|| decode_values(&blobs, &fields).unwrap());
    assert_eq!(out[3].as_ref(), cols[3].as_ref());
    println!(
            "5 features (int64, float64, float32 10% null, string, bool), {} B/blob: encode {:.1} M rows/s, decode {:.1} M rows/s",
            blobs.value_data().len() / n,
            n as f64 / enc / 1e6,
            n as f64 / dec / 1e6
        );
    let mut lb = ListBuilder::new(Float32Builder::new());
    for i in 0..n {
        for j in 0..16 {
            lb.values().append_value((i + j) as f32);
        }
        lb.append(true);
    }
    let cols: Vec<ArrayRef> = vec![Arc::new(lb.finish())];
    let fields = vec![field("emb", cols[0].data_type().clone())];
    let (blobs, enc) = timed(|| encode_values_with_fields(&event, None, &cols, &fields).unwrap());
    let (_, dec) = timed(|| decode_values(&blobs, &fields).unwrap());
    println!(
        "list<float32>[16]: encode {:.1} M rows/s, decode {:.1} M rows/s",
        n as f64 / enc / 1e6,
        n as f64 / dec / 1e6
    );
}

/// `v` (from `decode_row`) is the value at `arr[r]`.
fn row_value_is(arr: &dyn Array, r: usize, v: &RowValue<'_>, elems: &[Option<Scalar<'_>>]) -> bool {
    fn scalar_is(arr: &dyn Array, i: usize, s: &Scalar<'_>) -> bool {
        match *s {
            Scalar::Bool(b) => arr.as_boolean().value(i) == b,
            Scalar::I32(x) => arr.as_primitive::<Int32Type>().value(i) == x,
            Scalar::I64(x) => arr.as_primitive::<Int64Type>().value(i) == x,
            Scalar::F32(x) => arr.as_primitive::<Float32Type>().value(i).to_bits() == x.to_bits(),
            Scalar::F64(x) => arr.as_primitive::<Float64Type>().value(i).to_bits() == x.to_bits(),
            Scalar::Timestamp(x) => arr.as_primitive::<TimestampMicrosecondType>().value(i) == x,
            Scalar::Str(x) => ByteCol::new(arr).unwrap().get(i) == x.as_bytes(),
            Scalar::Bin(x) => ByteCol::new(arr).unwrap().get(i) == x,
        }
    }
    match v {
        RowValue::Null => arr.is_null(r),
        RowValue::Scalar(s) => arr.is_valid(r) && scalar_is(arr, r, s),
        RowValue::List { start, len } => {
            let items = match arr.data_type() {
                DataType::List(_) => arr.as_list::<i32>().value(r),
                _ => arr.as_list::<i64>().value(r),
            };
            arr.is_valid(r)
                && items.len() == *len
                && (0..*len).all(|e| match &elems[start + e] {
                    None => items.is_null(e),
                    Some(s) => items.is_valid(e) && scalar_is(items.as_ref(), e, s),
                })
        }
    }
}

#[test]
fn decode_row_agrees_with_decode_values() {
    let (fields, cols) = all_types();
    let created = ts(vec![1, 2, 3, 4, 5]);
    let blobs = encode_values_with_fields(
        &ts(vec![10, 20, 30, 40, 50]),
        Some(&created),
        &cols,
        &fields,
    )
    .unwrap();
    let dec = ValueDecoder::new(&fields).unwrap();
    let (event, created, out) = decode_values(&blobs, &fields).unwrap();
    for r in 0..blobs.len() {
        let (mut values, mut elems) = (Vec::new(), Vec::new());
        let (ev, cr) = dec
            .decode_row(r, blobs.value(r), &mut values, &mut elems)
            .unwrap();
        assert_eq!(
            (ev, cr),
            (
                event.value(r),
                created.is_valid(r).then(|| created.value(r))
            )
        );
        assert_eq!(values.len(), fields.len());
        for (k, v) in values.iter().enumerate() {
            assert!(
                row_value_is(out[k].as_ref(), r, v, &elems),
                "row {r} field {k}: {v:?}"
            );
        }
    }
    // damaged blobs: decode_row fails exactly when decode_values does
    let mut x: u64 = 0x2545_F491;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let agree = |b: &[u8]| {
        let arrow = decode_values(&BinaryArray::from_vec(vec![b]), &fields);
        let row = dec.decode_row(0, b, &mut Vec::new(), &mut Vec::new());
        assert_eq!(arrow.is_ok(), row.is_ok(), "{b:?}");
        if let (Err(a), Err(r)) = (arrow, row) {
            assert!(matches!(r, Error::Corrupt(_)), "{r}");
            assert_eq!(
                a.to_string().contains("schema"),
                r.to_string().contains("schema")
            );
        }
    };
    for r in 0..blobs.len() {
        let blob = blobs.value(r);
        (0..blob.len()).for_each(|cut| agree(&blob[..cut]));
        agree(&[blob, &[0]].concat());
        for _ in 0..2000 {
            let mut b = blob.to_vec();
            for _ in 0..1 + rnd() % 4 {
                let at = (rnd() as usize) % b.len();
                b[at] = rnd() as u8;
            }
            agree(&b);
        }
    }
}
