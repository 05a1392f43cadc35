"""The SparkSession the Spark offline store runs on.

``offline_store.spark_conf`` (Feast's key) is applied to a session built on first use; without
it an active session (a notebook's, spark-submit's) is used as it is. Two settings are always
made, because the results depend on them: the session time zone is UTC (naive timestamps are
UTC everywhere in banquet) and Arrow is on. On a ``local[...]`` master the Python workers are
this interpreter unless ``spark.pyspark.python`` / ``PYSPARK_PYTHON`` say otherwise (the
executors must import banquet); on a cluster, ``spark.pyspark.python`` names the executors'
interpreter (README, "Running on Spark").
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

from banquet.errors import StoreError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_FIXED = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
_lock = threading.Lock()


def spark_session(conf: dict[str, str]) -> SparkSession:
    """The session for ``conf``: the active one when ``conf`` is empty and one exists, else
    ``SparkSession.builder`` with ``conf`` (``getOrCreate``: a session already running in this
    process is reused, its runtime settings updated)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise StoreError(
            "the Spark offline store needs pyspark: pip install 'pyspark>=4' (and Java 17+)"
        ) from None
    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None and not conf:
            session = active
        else:
            builder = SparkSession.builder
            settings = dict(conf)
            master = settings.get("spark.master", "")
            # The executors run the interpreter the driver names in PYSPARK_PYTHON (read
            # when the context starts): spark.pyspark.python if given, else on a local
            # master this one (which has banquet).
            if settings.get("spark.pyspark.python"):
                os.environ["PYSPARK_PYTHON"] = settings["spark.pyspark.python"]
            elif master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
                os.environ["PYSPARK_PYTHON"] = sys.executable
            for key, value in settings.items():
                if not key.startswith("banquet."):  # banquet's own settings stay here
                    builder = builder.config(key, str(value))
            for key, value in _FIXED.items():
                builder = builder.config(key, value)
            try:
                session = builder.getOrCreate()
            except Exception as e:  # Java missing, master unreachable ...
                raise StoreError(
                    f"cannot start a Spark session (spark.master={master or 'default'}): "
                    f"{' '.join(str(e).split())[:500]}"
                ) from None
        for key, value in _FIXED.items():
            session.conf.set(key, value)
        return session
