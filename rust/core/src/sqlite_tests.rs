//! Unit tests of `sqlite.rs` (a file of their own to keep the module short).

use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::Array;

use super::*;

/// A fresh database path under the system temp folder (removed with its folder on drop).
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "banquet-sqlite-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDb(dir.join("sub").join("online.db"))
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap().parent().unwrap());
    }
}

fn row<'a>(key: &'a [u8], ev: i64, cr: i64, value: &'a [u8]) -> Row<'a> {
    Row {
        key,
        event_ts: ev,
        created_ts: cr,
        value: Some(value),
    }
}

fn read1(s: &SqliteStore, view: &str, keys: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
    let out = s.read("p", &[(view, keys.to_vec())]).unwrap();
    out[0].iter().map(|v| v.map(<[u8]>::to_vec)).collect()
}

fn tables(s: &SqliteStore) -> Vec<String> {
    s.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        &[],
    )
    .unwrap()
    .into_iter()
    .map(|r| match &r[0] {
        Value::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    })
    .collect()
}

#[test]
fn an_existing_file_keeps_its_page_size() {
    let db = TempDb::new();
    std::fs::create_dir_all(db.0.parent().unwrap()).unwrap();
    {
        let c = Connection::open(&db.0).unwrap();
        c.execute_batch("PRAGMA page_size=4096; PRAGMA journal_mode=WAL; CREATE TABLE x (a);")
            .unwrap();
    }
    let s = SqliteStore::new(&db.0);
    s.create_view("p", "v").unwrap();
    s.write("p", "v", [row(b"a", 1, 0, b"A")]).unwrap();
    assert_eq!(read1(&s, "v", &[b"a"]), vec![Some(b"A".to_vec())]);
    let page = s.query("PRAGMA page_size", &[]).unwrap();
    assert_eq!(page, vec![vec![Value::Integer(4096)]]);
}

#[test]
fn write_then_read_with_missing_keys() {
    let db = TempDb::new();
    let s = SqliteStore::new(&db.0);
    s.create_view("p", "v").unwrap();
    s.create_view("p", "v").unwrap(); // idempotent
    let n = s
        .write("p", "v", [row(b"a", 1, 0, b"A"), row(b"b", 1, 0, b"")])
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        read1(&s, "v", &[b"b", b"x", b"a", b"a"]),
        vec![Some(vec![]), None, Some(b"A".to_vec()), Some(b"A".to_vec())]
    );
    assert_eq!(read1(&s, "v", &[]), Vec::<Option<Vec<u8>>>::new());
    assert_eq!(tables(&s), ["banquet_views", "p:v"]);
    let mode = s.query("PRAGMA journal_mode", &[]).unwrap();
    assert_eq!(mode, vec![vec![Value::Text("wal".into())]]);
    let page = s.query("PRAGMA page_size", &[]).unwrap();
    assert_eq!(page, vec![vec![Value::Integer(PAGE_SIZE.into())]]);
}

#[test]
fn the_newer_event_wins_then_the_newer_created() {
    let db = TempDb::new();
    let s = SqliteStore::new(&db.0);
    s.create_view("p", "v").unwrap();
    s.write("p", "v", [row(b"k", 10, 5, b"first")]).unwrap();
    s.write("p", "v", [row(b"k", 9, 99, b"older event")])
        .unwrap();
    assert_eq!(read1(&s, "v", &[b"k"]), [Some(b"first".to_vec())]);
    s.write("p", "v", [row(b"k", 10, 4, b"older created")])
        .unwrap();
    assert_eq!(read1(&s, "v", &[b"k"]), [Some(b"first".to_vec())]);
    s.write("p", "v", [row(b"k", 10, 5, b"same")]).unwrap(); // a full tie replaces
    assert_eq!(read1(&s, "v", &[b"k"]), [Some(b"same".to_vec())]);
    // within one batch, order does not matter
    s.write(
        "p",
        "v",
        [
            row(b"k", 12, 0, b"12"),
            row(b"k", 11, 0, b"11"),
            row(b"j", i64::MIN, 0, b"min"),
        ],
    )
    .unwrap();
    assert_eq!(
        read1(&s, "v", &[b"k", b"j"]),
        [Some(b"12".to_vec()), Some(b"min".to_vec())]
    );
    let stored = s
        .query(
            "SELECT event_ts, created_ts FROM \"p:v\" WHERE entity_key = ?1",
            &[Value::Blob(b"k".to_vec())],
        )
        .unwrap();
    assert_eq!(stored, vec![vec![Value::Integer(12), Value::Integer(0)]]);
}

#[test]
fn overwrite_replaces_a_newer_stored_row() {
    let db = TempDb::new();
    let s = SqliteStore::new(&db.0);
    s.create_view("p", "v").unwrap();
    s.write("p", "v", [row(b"k", i64::MAX, 0, b"future")])
        .unwrap();
    s.write("p", "v", [row(b"k", 5, 0, b"now")]).unwrap();
    assert_eq!(read1(&s, "v", &[b"k"]), [Some(b"future".to_vec())]);
    s.write_rows(
        "p",
        "v",
        [row(b"k", 5, 0, b"now"), row(b"n", 1, 0, b"new")],
        true,
    )
    .unwrap();
    assert_eq!(
        read1(&s, "v", &[b"k", b"n"]),
        [Some(b"now".to_vec()), Some(b"new".to_vec())]
    );
    // back to newer-wins for plain writes
    s.write("p", "v", [row(b"k", 4, 0, b"older")]).unwrap();
    assert_eq!(read1(&s, "v", &[b"k"]), [Some(b"now".to_vec())]);
}

#[test]
fn several_views_in_one_read() {
    let db = TempDb::new();
    let s = SqliteStore::new(&db.0);
    for v in ["v", "w\"q"] {
        s.create_view("p", v).unwrap();
        s.write("p", v, [row(b"k", 1, 0, v.as_bytes())]).unwrap();
    }
    let out = s
        .read("p", &[("v", vec![b"k", b"z"]), ("w\"q", vec![b"k"])])
        .unwrap();
    assert_eq!(out[0].value(0), b"v");
    assert!(out[0].is_null(1));
    assert_eq!(out[1].value(0), b"w\"q");
}

#[test]
fn a_missing_table_names_the_view() {
    let db = TempDb::new();
    let s = SqliteStore::new(&db.0);
    s.create_view("p", "v").unwrap();
    let err = s
        .read("p", &[("v", vec![b"k"]), ("nope", vec![b"k"])])
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingTable(v) if v == "nope"),
        "{err}"
    );
    let err = s.write("p", "nope", [row(b"k", 1, 0, b"x")]).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTable(v) if v == "nope"),
        "{err}"
    );
    // the pooled connection is still usable: no transaction was left open
    s.write("p", "v", [row(b"k", 1, 0, b"ok")]).unwrap();
    assert_eq!(read1(&s, "v", &[b"k"]), [Some(b"ok".to_vec())]);
}

#[test]
fn a_failed_write_writes_nothing_and_frees_the_lock() {
    let db = TempDb::new();
    let s = SqliteStore::new(&db.0);
    s.create_view("p", "v").unwrap();
    s.write("p", "v", [row(b"a", 1, 0, b"old")]).unwrap();
    let bad = Row {
        key: b"b",
        event_ts: 2,
        created_ts: 0,
        value: None,
    };
    let err = s
        .write(
            "p",
            "v",
            [row(b"a", 2, 0, b"new"), bad, row(b"c", 2, 0, b"c")],
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Store(ref m) if m.contains("NOT NULL")),
        "{err}"
    );
    assert_eq!(
        read1(&s, "v", &[b"a", b"b", b"c"]),
        [Some(b"old".to_vec()), None, None]
    );
    // another store object (its own connection) can take the write lock at once
    let other = SqliteStore::new(&db.0);
    let conn = other.conn().unwrap();
    conn.busy_timeout(Duration::ZERO).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").unwrap();
}

#[test]
fn drop_and_teardown_touch_only_their_own_tables() {
    let db = TempDb::new();
    let s = SqliteStore::new(&db.0);
    s.teardown("a").unwrap(); // a fresh file: nothing to do
    s.drop_view("a", "v").unwrap();
    for (p, v) in [("a", "b__c"), ("a__b", "c"), ("a", "v"), ("b", "v")] {
        s.create_view(p, v).unwrap();
    }
    s.query("CREATE TABLE a__mine (x)", &[]).unwrap();
    s.drop_view("a", "v").unwrap();
    assert!(!tables(&s).contains(&"a:v".to_string()));
    s.teardown("a").unwrap();
    assert_eq!(tables(&s), ["a__b:c", "a__mine", "b:v", "banquet_views"]);
    let owned = s
        .query(
            "SELECT project, view FROM banquet_views ORDER BY project",
            &[],
        )
        .unwrap();
    assert_eq!(owned.len(), 2);
    s.teardown("a").unwrap(); // idempotent
}

#[test]
fn readers_and_writers_on_several_threads() {
    let db = TempDb::new();
    let s = SqliteStore::new(&db.0);
    s.create_view("p", "v").unwrap();
    std::thread::scope(|scope| {
        for t in 0..4i64 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..50i64 {
                    let key = [t as u8, i as u8];
                    let value = (t * 1000 + i).to_le_bytes();
                    s.write("p", "v", [row(&key, i, 0, &value)]).unwrap();
                    assert_eq!(read1(s, "v", &[&key]), [Some(value.to_vec())]);
                }
            });
        }
    });
    let n = s.query("SELECT count(*) FROM \"p:v\"", &[]).unwrap();
    assert_eq!(n, vec![vec![Value::Integer(200)]]);
}

#[test]
fn a_large_write_is_checkpointed_in_the_background() {
    let db = TempDb::new();
    let s = SqliteStore::new(&db.0);
    s.create_view("p", "v").unwrap();
    let value = vec![7u8; 2000];
    let keys: Vec<[u8; 4]> = (0..3000u32).map(u32::to_be_bytes).collect();
    s.write("p", "v", keys.iter().map(|k| row(k, 1, 0, &value)))
        .unwrap();
    let start = std::time::Instant::now();
    while s.checkpointing() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!s.checkpointing());
    // the pages reached the database file, and nothing is left to copy
    assert!(std::fs::metadata(&db.0).unwrap().len() > 3000 * 2000);
    let ck = s.query("PRAGMA wal_checkpoint(PASSIVE)", &[]).unwrap();
    assert_eq!(
        ck[0][1], ck[0][2],
        "log frames == checkpointed frames: {ck:?}"
    );
    assert_eq!(read1(&s, "v", &[&keys[2999]]), [Some(value.clone())]);
    // a small write starts no checkpoint
    s.write("p", "v", [row(b"x", 1, 0, b"x")]).unwrap();
    assert!(!s.checkpointing());
}

#[test]
fn held_checkpoints_run_on_the_last_release() {
    let db = TempDb::new();
    let s = SqliteStore::new(&db.0);
    s.create_view("p", "v").unwrap();
    let value = vec![7u8; 2000];
    let keys: Vec<[u8; 4]> = (0..3000u32).map(u32::to_be_bytes).collect();
    s.hold_checkpoints();
    s.hold_checkpoints();
    s.write("p", "v", keys.iter().map(|k| row(k, 1, 0, &value)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let size = |s: &SqliteStore| std::fs::metadata(s.path()).unwrap().len();
    assert!(!s.checkpointing());
    assert!(
        size(&s) < 3000 * 2000,
        "nothing copied to the database file yet"
    );
    s.release_checkpoints();
    assert!(!s.checkpointing(), "one holder is left");
    s.release_checkpoints();
    let start = std::time::Instant::now();
    while size(&s) < 3000 * 2000 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        size(&s) > 3000 * 2000,
        "the held checkpoint ran on the last release"
    );
    s.release_checkpoints(); // one too many: ignored
    assert_eq!(read1(&s, "v", &[&keys[2999]]), [Some(value.clone())]);
}
