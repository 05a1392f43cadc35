"""Parquet sources on S3: where the settings come from, and how errors read.

``storage_options(source, config)`` is the one place a ``FileSource`` on ``s3://`` gets its
endpoint, region and credentials; the Rust scan and pyarrow's ``S3FileSystem`` (``filesystem``)
both take its dict. Credentials come from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``) or else from a profile (``AWS_PROFILE``,
default ``default``) in ``~/.aws/credentials`` / ``~/.aws/config``, never from the feature repo's
files; none of it is ever printed or put in a message (``describe`` names the variables only).
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from banquet.errors import (
    ConfigError,
    DataSourceError,
    SourceAccessDenied,
    SourceFileNotFound,
    SourceUnreachable,
)
from banquet.redact import redact_text

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pds
    import pyarrow.fs as pafs

    from banquet.config import RepoConfig
    from banquet.sources import DataSource

SCHEME = "s3://"
DEFAULT_REGION = "us-east-1"
# Seconds: an endpoint that does not answer fails fast instead of hanging a training run.
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 60.0


def is_s3(path: str) -> bool:
    """True for an ``s3://bucket/key`` URL (any other path is a local file or folder)."""
    return path[: len(SCHEME)].lower() == SCHEME


@dataclass(frozen=True)
class S3Url:
    """``s3://bucket/key``: ``key`` may be empty (the whole bucket) or end in ``/``."""

    bucket: str
    key: str

    @staticmethod
    def parse(url: str, where: str = "") -> S3Url:
        rest = url[len(SCHEME) :]
        bucket, _, key = rest.partition("/")
        if not bucket or any(c.isspace() for c in bucket):
            raise DataSourceError(f"{where}{url!r} is not an S3 URL of the form s3://bucket/key")
        return S3Url(bucket, key)

    @property
    def fs_path(self) -> str:
        """The path pyarrow's S3FileSystem takes: ``bucket/key`` without a trailing slash."""
        return f"{self.bucket}/{self.key}".rstrip("/")

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def storage_options(source: DataSource, config: RepoConfig | None = None) -> dict[str, str] | None:
    """The S3 settings of ``source`` (its batch source), or None for a local path.

    Keys: ``region`` and ``allow_http`` ("true"/"false") always; ``endpoint`` when one is set
    (the source's ``s3_endpoint_override``, else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``;
    none means AWS itself); ``access_key_id`` and ``secret_access_key`` (and ``session_token``)
    when credentials were found in the environment or the profile. Without them the reader
    falls back to its own default chain (an instance or container role)."""
    from banquet.sources import FileSource

    batch = source.batch
    if not isinstance(batch, FileSource) or not is_s3(batch.path):
        return None
    endpoint = (
        batch.s3_endpoint_override
        or os.environ.get("AWS_ENDPOINT_URL_S3", "")
        or os.environ.get("AWS_ENDPOINT_URL", "")
    )
    profile = _Profile.load()
    opts = {
        "region": os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or profile.get("region")
        or DEFAULT_REGION,
        "allow_http": "true" if endpoint.lower().startswith("http://") else "false",
    }
    if endpoint:
        opts["endpoint"] = endpoint
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    token = os.environ.get("AWS_SESSION_TOKEN")
    if not (key and secret):  # the environment wins as a pair, as in the AWS SDKs
        key, secret = profile.get("aws_access_key_id"), profile.get("aws_secret_access_key")
        token = profile.get("aws_session_token")
    if key and secret:
        opts["access_key_id"], opts["secret_access_key"] = key, secret
        if token:
            opts["session_token"] = token
    return opts


class _Profile:
    """One AWS profile's settings from the shared credentials file and the config file."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, name: str) -> str | None:
        return self.values.get(name) or None

    @staticmethod
    def load() -> _Profile:
        name = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or ""
        explicit = bool(name)
        name = name or "default"
        creds = _ini(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")
        conf = _ini(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config")
        values: dict[str, str] = {}
        found = False
        # The config file names a profile "profile NAME" (except "default"); credentials win.
        for parser, section in ((conf, name), (conf, f"profile {name}"), (creds, name)):
            if parser is not None and parser.has_section(section):
                found = True
                values.update({k: v.strip() for k, v in parser.items(section)})
        if explicit and not found:
            raise ConfigError(
                f"AWS_PROFILE names the profile {name!r}, which neither the shared credentials "
                "file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials) nor the config "
                "file (AWS_CONFIG_FILE, default ~/.aws/config) defines; fix the name or unset it"
            )
        return _Profile(values)


def _ini(path: str) -> configparser.RawConfigParser | None:
    p = Path(path).expanduser()
    parser = configparser.RawConfigParser(default_section="\0none")
    try:
        text = p.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise ConfigError(f"cannot read the AWS settings file {p}: {e.strerror}") from None
    try:
        parser.read_string(text, str(p))
    except configparser.Error:
        # its text may hold keys: name the file only
        raise ConfigError(f"the AWS settings file {p} is not a valid INI file") from None
    return parser


def filesystem(opts: dict[str, str]) -> pafs.S3FileSystem:
    """pyarrow's S3 client for ``storage_options``' dict (cached: one per distinct settings)."""
    return _filesystem(tuple(sorted(opts.items())))


_FS_CACHE: dict[tuple[tuple[str, str], ...], pafs.S3FileSystem] = {}


def _filesystem(items: tuple[tuple[str, str], ...]) -> pafs.S3FileSystem:
    import pyarrow.fs as pafs

    fs = _FS_CACHE.get(items)
    if fs is None:
        opts = dict(items)
        endpoint = opts.get("endpoint")
        fs = pafs.S3FileSystem(
            access_key=opts.get("access_key_id"),
            secret_key=opts.get("secret_access_key"),
            session_token=opts.get("session_token"),
            region=opts["region"],
            endpoint_override=endpoint,
            scheme="http" if opts.get("allow_http") == "true" else "https",
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=REQUEST_TIMEOUT,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        )
        _FS_CACHE[items] = fs
    return fs


@dataclass(frozen=True)
class S3Target:
    """A source's S3 location and the client to reach it; ``error`` turns a pyarrow/AWS
    failure into a typed error naming the source, the URL and the endpoint."""

    source_name: str
    url: S3Url
    opts: dict[str, str]

    @property
    def fs(self) -> pafs.S3FileSystem:
        return filesystem(self.opts)

    @property
    def endpoint(self) -> str:
        """For messages: an endpoint from AWS_ENDPOINT_URL may carry user info: redacted."""
        return redact_text(self.opts.get("endpoint") or "AWS S3")

    def error(
        self, e: BaseException, doing: str, url: S3Url | str | None = None
    ) -> DataSourceError:
        where = f"source {self.source_name!r}: {doing} {url or self.url}"
        text = redact_text(
            str(e),
            self.opts.get("access_key_id"),
            self.opts.get("secret_access_key"),
            self.opts.get("session_token"),
        )
        upper = text.upper()
        if isinstance(e, FileNotFoundError) or any(
            s in upper for s in ("NO_SUCH_BUCKET", "NOSUCHBUCKET", "NO_SUCH_KEY", "NOSUCHKEY")
        ):
            return SourceFileNotFound(
                f"{where}: {self._missing(url)} (endpoint {self.endpoint}); check the path in the "
                "FileSource"
            )
        if any(
            s in upper
            for s in (
                "ACCESS_DENIED",
                "ACCESSDENIED",
                "INVALIDACCESSKEYID",
                "SIGNATURE",
                "FORBIDDEN",
            )
        ):
            return SourceAccessDenied(
                f"{where}: access denied by {self.endpoint}; check the credentials in use "
                "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS_PROFILE profile) and the "
                "bucket's policy"
            )
        if any(
            s in upper
            for s in ("NETWORK_CONNECTION", "CURLCODE", "COULD NOT CONNECT", "COULDN'T CONNECT")
        ):
            return SourceUnreachable(
                f"{where}: the S3 endpoint {self.endpoint} cannot be reached ({_short(text)}); "
                "check s3_endpoint_override / AWS_ENDPOINT_URL and the network, then retry"
            )
        return DataSourceError(f"{where} failed (endpoint {self.endpoint}): {_short(text)}")

    def _missing(self, url: S3Url | str | None) -> str:
        """Which part is missing: the bucket, or the object/prefix in it."""
        import pyarrow.fs as pafs

        try:
            bucket_there = self.fs.get_file_info(self.url.bucket).type != pafs.FileType.NotFound
        except OSError:
            bucket_there = True  # cannot tell: say the object is missing
        if not bucket_there:
            return f"the bucket {self.url.bucket!r} does not exist"
        return "no such object or prefix"


def target(source: DataSource, config: RepoConfig | None = None) -> S3Target | None:
    """The S3 location of ``source``'s batch source, or None for a local one."""
    opts = storage_options(source, config)
    if opts is None:
        return None
    batch = source.batch
    path: str = batch.path  # type: ignore[attr-defined]  # storage_options checked FileSource
    return S3Target(batch.name, S3Url.parse(path, f"source {batch.name!r}: "), opts)


def _short(text: str) -> str:
    """A library's message on one line, without its request id (noise in our errors)."""
    line = " ".join(text.split())
    cut = line.find(" (Request ID")
    return line[:cut] if cut >= 0 else line


def exists(t: S3Target) -> bool:
    """The object or prefix is there (a missing bucket counts as not there)."""
    import pyarrow.fs as pafs

    try:
        return bool(t.fs.get_file_info(t.url.fs_path).type != pafs.FileType.NotFound)
    except OSError as e:
        raise t.error(e, "looking up") from None


def dataset(t: S3Target) -> pds.Dataset:
    """The Parquet object, or every Parquet object under the prefix (hive partitions too),
    as a pyarrow dataset over S3: the same pruning as a local folder."""
    import pyarrow.dataset as ds

    if not exists(t):
        raise t.error(FileNotFoundError(str(t.url)), "reading")
    try:
        return ds.dataset(t.url.fs_path, filesystem=t.fs, format="parquet", partitioning="hive")
    except OSError as e:
        raise t.error(e, "reading") from None
    except Exception as e:  # pyarrow raises several types for unreadable files
        raise DataSourceError(
            f"source {t.source_name!r}: cannot read {t.url} as Parquet: {_short(str(e))}"
        ) from None


def append(t: S3Target, rows: pa.Table) -> None:
    """An offline push: a single-object source is rewritten with the rows added (one PUT
    replaces it whole, so readers see the old or the new object); a prefix gets a new object."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from banquet.offline.file import fit_rows
    from banquet.push import new_part_name

    try:
        kind = t.fs.get_file_info(t.url.fs_path).type
    except OSError as e:
        raise t.error(e, "looking up") from None
    if kind == pafs.FileType.File:
        try:
            existing = pq.read_table(t.url.fs_path, filesystem=t.fs)
        except OSError as e:
            raise t.error(e, "reading") from None
        rows = pa.concat_tables(
            [existing, fit_rows(rows, existing.schema, t.source_name, str(t.url))]
        )
        dest = t.url.fs_path
    else:
        if kind == pafs.FileType.Directory:
            schema = dataset(t).schema
            rows = rows.select([n for n in schema.names if n in rows.column_names])
            rows = rows.cast(pa.schema([schema.field(n) for n in rows.column_names]))
        dest = f"{t.url.fs_path}/{new_part_name()}"
    try:
        pq.write_table(rows, dest, filesystem=t.fs)
    except OSError as e:
        raise t.error(e, "writing", f"{SCHEME}{dest}") from None
