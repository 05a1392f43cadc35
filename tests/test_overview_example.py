"""The overview's example (shared/seed/feast-overview.md), end to end on the local Postgres.

The feature definitions below are the overview's "Defining Features" code with ``feast``
replaced by ``banquet`` in the import lines (Feast's module path for ``PostgreSQLSource``
exists as an alias), and the source query also selecting ``event_timestamp`` (the column it
names as ``timestamp_field``). Its original query omits that column: apply must say so.
``transactions.user_id`` is ``integer``, ``training_data.user_id`` is ``bigint``: they join.
Expected values come from plain SQL in Postgres (LATERAL ... ORDER BY ... LIMIT 1).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from banquet import FeatureStore
from banquet.cli import cli

pytestmark = pytest.mark.postgres

DEFINITIONS = """\
from banquet import Entity, Feature, FeatureView, Field
from banquet.types import Float32, Int64
from banquet.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

# Define data source
user_transactions = PostgreSQLSource(
    name="user_transactions",
    query="{query}",
    timestamp_field="event_timestamp"
)

# Define an Entity (primary key)
user = Entity(name="user_id", join_keys=["user_id"])

# Define Feature View
user_transactions_view = FeatureView(
    name="user_transactions",
    entities=[user],
    schema=[
        Field(name="transaction_count", dtype=Int64),
        Field(name="avg_spend", dtype=Float32),
    ],
    source=user_transactions
)
"""
QUERY_AS_WRITTEN = "SELECT user_id, transaction_count, avg_spend FROM transactions"
QUERY_FIXED = "SELECT user_id, transaction_count, avg_spend, event_timestamp FROM transactions"
FEATURES = ["user_transactions:transaction_count", "user_transactions:avg_spend"]
T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema holding ``transactions`` and ``training_data``; dropped afterwards."""
    import numpy as np
    import psycopg

    schema = f"overview_{uuid.uuid4().hex[:10]}"
    rng = np.random.default_rng(123)
    users = np.arange(100, 160)  # 123 among them
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')  # type: ignore[arg-type]
        conn.execute(f'SET search_path TO "{schema}"')  # type: ignore[arg-type]
        conn.execute(
            "CREATE TABLE transactions (user_id integer, transaction_count bigint, "
            "avg_spend real, event_timestamp timestamptz)"
        )
        conn.execute("CREATE TABLE training_data (user_id bigint, event_timestamp timestamptz)")
        with conn.cursor() as cur:
            with cur.copy("COPY transactions FROM STDIN") as copy:
                for u in users:
                    # distinct times per user, so "the latest row" has one answer
                    hours = rng.choice(24 * 30, size=int(rng.integers(1, 15)), replace=False)
                    for h in hours:
                        copy.write_row(
                            (
                                int(u),
                                int(rng.integers(0, 50)),
                                float(np.float32(rng.gamma(2.0, 20.0))),
                                T0 + timedelta(hours=int(h)),
                            )
                        )
            with cur.copy("COPY training_data FROM STDIN") as copy:
                for _ in range(400):  # some users (160..169) have no transactions
                    u = int(rng.integers(100, 170))
                    h = int(rng.integers(-24, 24 * 32))
                    copy.write_row((u, T0 + timedelta(hours=h, minutes=int(rng.integers(60)))))
    yield schema
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')  # type: ignore[arg-type]


def write_repo(root: Path, dsn: str, schema: str, query: str) -> Path:
    import yaml
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(dsn)
    conn = {
        "host": d.get("host", "127.0.0.1"),
        "port": int(d.get("port", 5432)),
        "database": d.get("dbname"),
        "user": d.get("user"),
        "password": d.get("password", ""),
        "db_schema": schema,
    }
    config = {
        "project": "overview",
        "provider": "local",
        "registry": {"registry_type": "sql", "path": f"{dsn}?schema={schema}"},
        "offline_store": {"type": "postgres", **conn},
        "online_store": {"type": "postgres", **conn},
        "entity_key_serialization_version": 3,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "features.py").write_text(DEFINITIONS.replace("{query}", query))
    return root


def expected_rows(dsn: str, schema: str) -> list[tuple[Any, ...]]:
    """For each training row (in the order Postgres returns them), the latest transaction of
    that user at or before its timestamp, computed by Postgres alone."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')  # type: ignore[arg-type]
        return conn.execute(
            """
            SELECT t.user_id, t.event_timestamp, f.transaction_count, f.avg_spend
            FROM (SELECT user_id, event_timestamp FROM training_data) t
            LEFT JOIN LATERAL (
                SELECT x.transaction_count, x.avg_spend FROM transactions x
                WHERE x.user_id = t.user_id AND x.event_timestamp <= t.event_timestamp
                ORDER BY x.event_timestamp DESC LIMIT 1
            ) f ON true
            """
        ).fetchall()


def test_overview_query_as_written_fails_at_apply_naming_source_and_column(
    pg_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    repo = write_repo(tmp_path / "repo", pg_dsn, pg_schema, QUERY_AS_WRITTEN)
    result = CliRunner().invoke(cli, ["-c", str(repo), "apply"])
    assert result.exit_code == 1
    assert "source 'user_transactions' has no column 'event_timestamp'" in result.output
    assert "Traceback" not in result.output


def test_overview_example_end_to_end(
    pg_dsn: str, pg_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    repo = write_repo(tmp_path / "repo", pg_dsn, pg_schema, QUERY_FIXED)
    # Register Features: `banquet apply`
    result = CliRunner().invoke(cli, ["-c", str(repo), "apply"])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(repo)

    # Load Historical Features (the overview's code, unchanged)
    store = FeatureStore(repo_path=".")
    training_df = store.get_historical_features(
        entity_df="SELECT user_id, event_timestamp FROM training_data",
        features=["user_transactions:transaction_count", "user_transactions:avg_spend"],
    ).to_df()

    want = expected_rows(pg_dsn, pg_schema)
    assert list(training_df.columns) == [
        "user_id",
        "event_timestamp",
        "transaction_count",
        "avg_spend",
    ]
    assert len(training_df) == len(want) == 400
    got = list(training_df.itertuples(index=False, name=None))
    for g, w in zip(got, want):
        assert (g[0], g[1].to_pydatetime()) == (w[0], w[1])  # input order, keys unchanged
        assert _same(g[2], w[2]) and _same(g[3], w[3]), (g, w)
    assert sum(w[2] is None for w in want) > 0  # some rows have no match: nulls, not dropped

    # Materialize, then Load Real-time Features (the overview's code, unchanged)
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=40))
    feature_vector = store.get_online_features(
        features=["user_transactions:transaction_count", "user_transactions:avg_spend"],
        entity_rows=[{"user_id": 123}],
    ).to_dict()

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')  # type: ignore[arg-type]
        latest = conn.execute(
            "SELECT transaction_count, avg_spend FROM transactions WHERE user_id = 123 "
            "ORDER BY event_timestamp DESC LIMIT 1"
        ).fetchone()
    assert latest is not None
    assert feature_vector == {
        "user_id": [123],
        "transaction_count": [latest[0]],
        "avg_spend": [pytest.approx(latest[1], rel=1e-6)],
    }
    assert _same(feature_vector["avg_spend"][0], latest[1])


def _same(got: Any, want: Any) -> bool:
    """pandas gives NaN for a missing number, Postgres None; a ``real`` is compared as the
    float32 it is (psycopg prints it in its shortest decimal form)."""
    import numpy as np

    if want is None:
        return got is None or (isinstance(got, float) and math.isnan(got))
    if isinstance(want, float):
        return bool(np.float32(got) == np.float32(want))
    return bool(got == want)
