"""The Spark offline store: ``SparkSource`` reads, and ``get_historical_features`` run on the
executors (``join.py``), for histories larger than one machine.

Reads for materialization (``read``) and the column checks at ``apply`` (``source_schema``)
go through the same session; ``read`` collects the window's rows to the driver as Arrow.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from banquet.errors import (
    BanquetError,
    ConfigError,
    DataSourceError,
    SourceColumnMissing,
    SourceFileNotFound,
    StoreError,
)
from banquet.offline.base import OfflineStore
from banquet.offline.spark.source import SparkSource

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from banquet.config import RepoConfig
    from banquet.feature_view import FeatureView
    from banquet.field import Field
    from banquet.materialize import Window
    from banquet.offline.base import RetrievalJob, ViewRows
    from banquet.request import ResolvedRequest
    from banquet.sources import DataSource
    from banquet.store import FeatureStore

T = TypeVar("T")
# A key with about this many feature rows or more is split by time across tasks (join.py).
HOT_KEY_ROWS = 500_000
_SCHEME = r"^[A-Za-z][A-Za-z0-9+.-]*:/*"  # file:/, file:///, hdfs://, s3a:// ...


class SparkOfflineStore(OfflineStore):
    def __init__(self, config: RepoConfig) -> None:
        super().__init__(config)
        conf = getattr(config.offline_store, "spark_conf", None) or {}
        if not isinstance(conf, dict):
            raise ConfigError(
                "'offline_store.spark_conf' must be a mapping of Spark settings "
                "(spark.master: local[2], ...)"
            )
        self.spark_conf: dict[str, str] = {str(k): str(v) for k, v in conf.items()}
        # banquet's own settings ride in spark_conf under "banquet." (not passed to Spark)
        hot = self.spark_conf.get("banquet.hot_key_rows", str(HOT_KEY_ROWS))
        try:
            self.hot_key_rows = int(hot)
        except ValueError:
            raise ConfigError(
                f"'offline_store.spark_conf.banquet.hot_key_rows' is {hot!r}; expected a "
                "number of rows (0 turns hot-key splitting off)"
            ) from None
        parts = self.spark_conf.get("banquet.join_partitions", "0")
        try:
            self.join_partitions = int(parts)
        except ValueError:
            raise ConfigError(
                f"'offline_store.spark_conf.banquet.join_partitions' is {parts!r}; expected a "
                "number of partitions (0: chosen from the data size and the cores)"
            ) from None
        # a folder the driver writes and every executor reads at the same path
        self.staging_path = self.spark_conf.get("banquet.staging_path", "")
        self._staging: str | None = None
        self._session: SparkSession | None = None

    @property
    def spark(self) -> SparkSession:
        if self._session is None:
            from banquet.offline.spark.session import spark_session

            self._session = spark_session(self.spark_conf)
        return self._session

    def staging_dir(self) -> str | None:
        """A folder for local entity rows written as Parquet, which Spark then reads in
        parallel (``createDataFrame`` of a large local table ships the rows inside the task
        plan: one 55 MB task per 1M rows, and a slow plan on the driver). It must be visible
        to the executors at the same path: ``banquet.staging_path`` when set (a shared
        mount); else, on a ``local[...]`` master or a cluster on this machine (loopback), a
        temporary folder under ``spark.local.dir``. None elsewhere: the rows then go through
        ``createDataFrame``."""
        if self._staging is not None:
            return self._staging
        base = self.staging_path
        if not base:
            master = self.spark.sparkContext.master or ""
            if not re.match(r"^(local(\[.*\])?$|spark://(127\.0\.0\.1|localhost)[:/])", master):
                return None
            local = self.spark.sparkContext.getConf().get("spark.local.dir")
            base = (local or "").split(",")[0] or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        self._staging = tempfile.mkdtemp(prefix="banquet-spark-", dir=base)
        atexit.register(shutil.rmtree, self._staging, True)
        return self._staging

    # --- sources -------------------------------------------------------------------------

    def frame(self, source: DataSource) -> DataFrame:
        """All rows of ``source`` as a Spark DataFrame (lazy: nothing is read yet)."""
        src = _spark_source(source)
        spark = self.spark
        with spark_errors(src.describe()):
            if src.table:
                return spark.table(src.table)
            if src.path:
                return spark.read.format(src.file_format).load(self.config.location(src.path))
            return spark.sql(src.query.strip().rstrip(";"))

    def source_schema(self, source: DataSource) -> pa.Schema | None:
        src = _spark_source(source.batch)
        with spark_errors(src.describe()):
            return self.frame(src).limit(0).toArrow().schema

    def check_view(self, config: RepoConfig, fv: FeatureView) -> None:
        # an aggregated view's tiles are built and written by the driver (window.py)
        if config.online_store.type == "sqlite" and fv.online and not fv.is_aggregated:
            raise ConfigError(
                f"feature view {fv.name!r}: the Spark offline store cannot materialize into "
                "the SQLite online store (a local file the executors cannot share); set "
                "online_store to redis or postgres, or online=False on the view"
            )
        super().check_view(config, fv)

    def read(
        self,
        source: DataSource,
        columns: list[str],
        start_us: int | None,
        end_us: int | None,
    ) -> pa.Table:
        src = _spark_source(source)
        df = self._rows(src, columns, start_us, end_us)
        with spark_errors(src.describe()):
            return self.frame_order(df, src).select(*columns).toArrow()

    def read_view(
        self, view: FeatureView, features: list[Field], start_us: int | None, end_us: int | None
    ) -> ViewRows:
        """``OfflineStore.read_view``; an aggregated view's rows (its online tiles are built
        on the driver, at materialize and audit) are counted first and refused past
        ``banquet.driver_rows``. A plain view's read runs no count job."""
        if view.is_aggregated:
            from banquet.offline.base import view_source_columns
            from banquet.offline.spark.window import check_driver_read

            src = _spark_source(view.batch_source)
            columns = view_source_columns(view, features)
            check_driver_read(self, self._rows(src, columns, start_us, end_us), src.describe())
        return super().read_view(view, features, start_us, end_us)

    def _rows(
        self, src: SparkSource, columns: list[str], start_us: int | None, end_us: int | None
    ) -> DataFrame:
        """``src``'s rows with ``start_us <= timestamp <= end_us`` (lazy), after checking it
        has ``columns``."""
        from pyspark.sql import functions as F

        from banquet.offline.spark.join import ts_literal

        df = self.frame(src)
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise SourceColumnMissing(
                f"{src.describe()} has no column {missing[0]!r}; its columns are "
                f"{sorted(df.columns)}"
            )
        ts = F.col(src.timestamp_field).cast("timestamp")
        if start_us is not None:
            df = df.where(ts >= ts_literal(start_us))
        if end_us is not None:
            df = df.where(ts <= ts_literal(end_us))
        return df

    def frame_order(self, df: DataFrame, src: SparkSource) -> DataFrame:
        """``df`` (rows of ``src``) in source order, as the file store reads them."""
        from banquet.offline.spark.join import SEQ

        return df.withColumn(SEQ, self.sequence(df, src)).orderBy(SEQ).drop(SEQ)

    def sequence(self, df: DataFrame, src: SparkSource) -> Any:
        """A Column numbering ``src``'s rows in source order (its file, sorted by path, then
        the row in the file), so the last of fully tied rows is the file store's choice. A
        query's or a non-Parquet table's rows are numbered in the order Spark reads them."""
        from pyspark.sql import functions as F

        if src.query or (src.path and src.file_format != "parquet"):
            return F.monotonically_increasing_id()
        try:
            files = sorted(df.inputFiles())
        except Exception:
            return F.monotonically_increasing_id()
        if not files:
            return F.monotonically_increasing_id()
        try:  # file sources have the hidden _metadata column; a view over them may not
            df.select("_metadata.file_path", "_metadata.row_index").schema  # noqa: B018
        except Exception:
            return F.monotonically_increasing_id()
        # inputFiles() says file:///x where _metadata says file:/x: the map holds both
        # spellings (a lookup per row; a regexp per row doubled the scan's time)
        spellings: dict[str, int] = {}
        for i, p in enumerate(files):
            m = re.match(_SCHEME, p)
            rest = p[m.end() :] if m else p
            scheme = p[: m.end()].rstrip("/") if m else ""
            for variant in (p, f"{scheme}/{rest}", f"{scheme}//{rest}", f"{scheme}///{rest}"):
                spellings.setdefault(variant, i)
        ranks = F.create_map(*(x for p, i in spellings.items() for x in (F.lit(p), F.lit(i))))
        rank = F.coalesce(ranks[F.col("_metadata.file_path")], F.lit(0)).cast("long")
        return F.shiftleft(rank, 40) + F.col("_metadata.row_index")

    def query(self, sql: str) -> pa.Table:
        with spark_errors("entity_df query"):
            return self.spark.sql(sql.strip().rstrip(";")).toArrow()

    def materialize_windows(
        self, store: FeatureStore, windows: list[Window], progress: bool, overwrite: bool
    ) -> None:
        """Materialization on the executors (``materialize.py`` of this package)."""
        from banquet.offline.spark.materialize import materialize_windows

        materialize_windows(store, windows, progress, overwrite)

    def historical_job(self, request: ResolvedRequest, entity_df: Any) -> RetrievalJob:
        from banquet.offline.spark.retrieval import SparkRetrievalJob

        return SparkRetrievalJob(self, request, entity_df)


def _spark_source(source: DataSource) -> SparkSource:
    src = source.batch
    if not isinstance(src, SparkSource):
        raise DataSourceError(
            f"source {source.name!r} is a {type(src).__name__}, which the Spark offline store "
            "cannot read; use SparkSource (table=, path= or query=)"
        )
    return src


@contextlib.contextmanager
def spark_errors(what: str) -> Iterator[None]:
    """Spark's errors as banquet's: a missing path, table or column, a query Spark rejects,
    a failed job; one line each, naming ``what``."""
    error: BanquetError | None = None
    try:
        yield
    except BanquetError:
        raise
    except Exception as e:
        error = _translate(what, e)
    if error is not None:
        raise error  # outside the handler: no Java stack trace as __context__


def _translate(what: str, e: Exception) -> BanquetError:
    text = " ".join(str(e).split())
    cls = getattr(e, "getErrorClass", None)
    code = ""
    with contextlib.suppress(Exception):
        code = (cls() if callable(cls) else "") or ""
    short = text[:600]
    if type(e).__name__ == "PythonException":  # an executor's Python failed: its last line
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else text
        hint = (
            "; the executors' Python must have banquet (and pyarrow) installed: see README "
            "'Running on Spark'"
            if "ModuleNotFoundError" in last
            else ""
        )
        return StoreError(f"{what}: a Spark task failed in Python: {last[:400]}{hint}")
    if code == "PATH_NOT_FOUND" or "Path does not exist" in text:
        return SourceFileNotFound(f"{what}: no such path: {short}")
    if code.startswith("UNRESOLVED_COLUMN"):
        return SourceColumnMissing(f"{what}: {short}")
    if code.startswith("TABLE_OR_VIEW_NOT_FOUND") or code.startswith("PARSE_SYNTAX_ERROR"):
        return DataSourceError(f"{what}: Spark rejected it: {short}")
    if type(e).__module__.startswith("pyspark.errors") and "Exception" in type(e).__name__:
        if "AnalysisException" in type(e).__name__:
            return DataSourceError(f"{what}: Spark rejected it: {short}")
        return StoreError(f"{what}: the Spark job failed: {short}")
    return StoreError(f"{what}: Spark failed: {type(e).__name__}: {short}")


def run_spark(what: str, op: Callable[[], T]) -> T:
    with spark_errors(what):
        return op()
