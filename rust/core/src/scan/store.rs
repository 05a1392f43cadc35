//! Where a dataset's bytes come from: the local file system (the byte ranges asked for
//! memory-mapped and decoded in place) or an
//! S3-compatible object store (object_store's `AmazonS3`, ranged GETs, so only the column
//! chunks a scan needs cross the network).
//!
//! Why a mapping and not positioned reads: a read copies the page cache into a fresh buffer,
//! which the kernel must first zero and fault in page by page; measured on the 1M-row bench
//! file (two views, ~84 MB of column chunks per request), that was ~22k page faults and more
//! system time than the decoding itself. Slices of a mapping are decoded in place, pages
//! mapped 16 at a time (fault-around). Each read maps just the span of the ranges asked and
//! is unmapped when its last slice is dropped, so resident memory stays what the reads in
//! flight hold (mapping whole files made the 10M-row bench's peak RSS 2.6x larger: a mapped
//! page stays resident while mapped). The file is opened once per `Dataset`, so the footers
//! and the data come from the same file even if a writer renames a new one over it
//! (banquet's own writers replace files by rename). A file truncated in place by another
//! program while a read maps it would fault on access; reads past the size seen at open are
//! refused instead. That is the price polars also pays (it maps local Parquet files).
//!
//! The object store is async; its calls run on one small tokio runtime per process, built
//! on first use (and afresh in a forked child, where the parent's runtime has no threads).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::{Error, Result};

/// One file of a dataset: where it is and how large it is.
#[derive(Clone, Debug)]
pub struct Object {
    /// A local path, or an object key inside the bucket.
    pub key: String,
    pub size: u64,
}

/// The storage a dataset lives in.
pub enum Store {
    Local(LocalFiles),
    S3(S3),
}

/// The local files read so far (open, with their size at opening), by path.
#[derive(Default)]
pub struct LocalFiles {
    open: Mutex<HashMap<String, (Arc<std::fs::File>, u64)>>,
}

/// An S3 bucket reached through object_store.
pub struct S3 {
    inner: AmazonS3,
    bucket: String,
    endpoint: String,
}

impl Store {
    /// The store for `location` (a local path or `s3://bucket/key`) and the location inside
    /// it. `options` carries the S3 settings (see `python/banquet/s3.py`): endpoint, region,
    /// access_key_id, secret_access_key, session_token, allow_http.
    pub fn open(
        location: &str,
        options: Option<&HashMap<String, String>>,
    ) -> Result<(Store, String)> {
        let Some(rest) = location.strip_prefix("s3://") else {
            return Ok((Store::Local(LocalFiles::default()), location.to_string()));
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Source(format!(
                "{location}: the S3 path names no bucket"
            )));
        }
        let empty = HashMap::new();
        let opts = options.unwrap_or(&empty);
        // The environment first (AWS_* variables), then what the caller resolved.
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(v) = opts.get("region") {
            b = b.with_region(v);
        }
        let endpoint = opts.get("endpoint").cloned().unwrap_or_default();
        if !endpoint.is_empty() {
            b = b.with_endpoint(&endpoint);
        }
        if let Some(v) = opts.get("access_key_id") {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = opts.get("secret_access_key") {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = opts.get("session_token") {
            b = b.with_token(v);
        }
        // Fail in seconds, not after object_store's default three minutes of retries: an
        // unreachable endpoint is reported, the caller decides whether to retry.
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: Duration::from_secs(20),
        };
        // (allow_http lives in the client options: set it here, not on the builder, where
        // with_client_options would reset it)
        let client = ClientOptions::new()
            .with_allow_http(opts.get("allow_http").is_some_and(|v| v == "true"))
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120));
        let inner = b
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|e| Error::Source(format!("{location}: cannot set up S3 access: {e}")))?;
        let s3 = S3 {
            inner,
            bucket: bucket.to_string(),
            endpoint,
        };
        Ok((Store::S3(s3), key.to_string()))
    }

    /// How `key` is named in messages: the local path or `s3://bucket/key`.
    pub fn display(&self, key: &str) -> String {
        match self {
            Store::Local(_) => key.to_string(),
            Store::S3(s3) => format!("s3://{}/{key}", s3.bucket),
        }
    }

    /// The files under `root`: `root` itself when it is a file, else every file below it in
    /// path order, except those under a name starting with `.` or `_` (temporary and
    /// metadata files, as pyarrow's discovery skips them).
    pub fn list(&self, root: &str) -> Result<Vec<Object>> {
        match self {
            Store::Local(_) => list_local(root),
            Store::S3(s3) => s3.list(root),
        }
    }

    /// The bytes of `ranges` of file `key`, in order.
    pub fn read_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        match self {
            Store::Local(files) => files.read(key, ranges),
            Store::S3(s3) => {
                let path = ObjectPath::from(key);
                block_on(s3.inner.get_ranges(&path, ranges))?.map_err(|e| s3.error(key, e))
            }
        }
    }
}

fn list_local(root: &str) -> Result<Vec<Object>> {
    let meta = std::fs::metadata(root).map_err(|e| io_error(root, &e))?;
    if meta.is_file() {
        return Ok(vec![Object {
            key: root.to_string(),
            size: meta.len(),
        }]);
    }
    let mut out = Vec::new();
    walk(Path::new(root), &mut out)?;
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Object>) -> Result<()> {
    let shown = dir.display().to_string();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(&shown, &e))? {
        let entry = entry.map_err(|e| io_error(&shown, &e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path: PathBuf = entry.path();
        let meta =
            std::fs::metadata(&path).map_err(|e| io_error(&path.display().to_string(), &e))?;
        if meta.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(Object {
                key: path.to_string_lossy().into_owned(),
                size: meta.len(),
            });
        }
    }
    Ok(())
}

impl LocalFiles {
    /// The bytes of `ranges` of the file at `path`: slices of one mapping of their span, no
    /// copy.
    fn read(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let (file, size) = self.file(path)?;
        let (Some(lo), Some(hi)) = (
            ranges.iter().map(|r| r.start).min(),
            ranges.iter().map(|r| r.end).max(),
        ) else {
            return Ok(Vec::new());
        };
        if let Some(r) = ranges.iter().find(|r| r.start > r.end || r.end > size) {
            return Err(Error::Source(format!(
                "{path}: bytes {r:?} are past its end ({size} bytes)"
            )));
        }
        if hi == lo {
            return Ok(ranges.iter().map(|_| Bytes::new()).collect());
        }
        let page = page_size();
        let base = lo - lo % page; // a mapping starts on a page boundary
        let span = Mapping::new(&file, base, (hi - base) as usize)
            .map_err(|e| Error::Source(format!("{path}: mapping bytes {lo}..{hi} failed: {e}")))?;
        let span = Bytes::from_owner(span);
        Ok(ranges
            .iter()
            .map(|r| span.slice((r.start - base) as usize..(r.end - base) as usize))
            .collect())
    }

    fn file(&self, path: &str) -> Result<(Arc<std::fs::File>, u64)> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((f, size)) = open.get(path) {
            return Ok((Arc::clone(f), *size));
        }
        let file = std::fs::File::open(path).map_err(|e| io_error(path, &e))?;
        let size = file.metadata().map_err(|e| io_error(path, &e))?.len();
        let file = Arc::new(file);
        open.insert(path.to_string(), (Arc::clone(&file), size));
        Ok((file, size))
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Map the page tables up front: one call instead of a fault per few pages as the decoder
/// walks the span (~10% of a selective scan's CPU). The whole span is read anyway.
#[cfg(target_os = "linux")]
const POPULATE: libc::c_int = libc::MAP_POPULATE;
#[cfg(not(target_os = "linux"))]
const POPULATE: libc::c_int = 0;

/// A read-only shared mapping of part of a file, unmapped when its last slice is dropped.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// The mapping is read-only and owned: sharing the pointer between threads is safe.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `len` (> 0) bytes from `offset` (a multiple of the page size).
    fn new(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Mapping> {
        use std::os::unix::io::AsRawFd;
        // SAFETY: a fresh read-only mapping of an open file; the pointer is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | POPULATE,
                file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

fn io_error(path: &str, e: &std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::SourceNotFound(format!("{path} does not exist")),
        std::io::ErrorKind::PermissionDenied => {
            Error::SourceDenied(format!("{path}: permission denied"))
        }
        _ => Error::Source(format!("{path}: {e}")),
    }
}

impl S3 {
    fn list(&self, root: &str) -> Result<Vec<Object>> {
        let root = root.trim_end_matches('/');
        if !root.is_empty() {
            // A single object first: `s3://bucket/file.parquet`.
            match block_on(self.inner.head(&ObjectPath::from(root)))? {
                Ok(meta) => {
                    return Ok(vec![Object {
                        key: meta.location.to_string(),
                        size: meta.size,
                    }])
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(root, e)),
            }
        }
        let prefix = (!root.is_empty()).then(|| ObjectPath::from(root));
        let listed: Vec<object_store::ObjectMeta> =
            block_on(self.inner.list(prefix.as_ref()).try_collect())?
                .map_err(|e| self.error(root, e))?;
        let skip = |key: &str| {
            key[root.len()..]
                .split('/')
                .any(|seg| seg.starts_with('.') || seg.starts_with('_'))
        };
        let mut out: Vec<Object> = listed
            .into_iter()
            .map(|m| Object {
                key: m.location.to_string(),
                size: m.size,
            })
            .filter(|o| !skip(&o.key) && !o.key.ends_with('/'))
            .collect();
        if out.is_empty() {
            return Err(Error::SourceNotFound(format!(
                "{} does not exist (no object has that key or prefix)",
                self.display(root)
            )));
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn display(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// object_store's error as one of ours, naming the path (and the endpoint when it
    /// cannot be reached); the text never holds credentials (object_store's messages carry
    /// the URL and the service's reply, not the request's signature).
    fn error(&self, key: &str, e: object_store::Error) -> Error {
        let path = self.display(key);
        let text = e.to_string();
        match e {
            object_store::Error::NotFound { .. } => {
                Error::SourceNotFound(format!("{path} does not exist"))
            }
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => Error::SourceDenied(format!(
                "{path}: access denied; check the AWS credentials (environment variables or \
                 profile) and the bucket's policy"
            )),
            _ if text.contains("NoSuchBucket") || text.contains("NoSuchKey") => {
                Error::SourceNotFound(format!("{path} does not exist (no such bucket or key)"))
            }
            _ if text.contains("AccessDenied")
                || text.contains("403 Forbidden")
                || text.contains("InvalidAccessKeyId")
                || text.contains("SignatureDoesNotMatch") =>
            {
                Error::SourceDenied(format!(
                    "{path}: access denied; check the AWS credentials (environment variables \
                     or profile) and the bucket's policy"
                ))
            }
            _ if is_connect_error(&text) => Error::SourceUnreachable(format!(
                "{path}: the S3 endpoint {} cannot be reached ({}); check \
                 s3_endpoint_override / the network",
                if self.endpoint.is_empty() {
                    "(AWS default)"
                } else {
                    &self.endpoint
                },
                first_line(&text)
            )),
            _ => Error::Source(format!("{path}: {}", first_line(&text))),
        }
    }
}

fn is_connect_error(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "connect",
        "connection refused",
        "dns error",
        "timed out",
        "error sending request",
        "tcp",
    ]
    .iter()
    .any(|p| t.contains(p))
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    &line[..line.len().min(300)]
}

/// The process's tokio runtime, with the process that built it.
static RUNTIME: Mutex<Option<(u32, Arc<tokio::runtime::Runtime>)>> = Mutex::new(None);

fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return Ok(Arc::clone(rt));
        }
    }
    // A forked child: the parent's runtime has no threads here; leak it, never drop it.
    if let Some(stale) = slot.take() {
        std::mem::forget(stale);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("banquet-io")
        .enable_all()
        .build()
        .map_err(|e| Error::Source(format!("cannot start the S3 I/O threads: {e}")))?;
    let rt = Arc::new(rt);
    *slot = Some((pid, Arc::clone(&rt)));
    Ok(rt)
}

/// Runs `f` to completion on the runtime (called from rayon or the caller's thread, never
/// from inside the runtime).
fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    Ok(runtime()?.block_on(f))
}
