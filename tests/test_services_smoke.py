"""The local servers from `make services` answer and do what the online/offline stores need."""

from __future__ import annotations

import uuid

import pytest


@pytest.mark.postgres
def test_postgres_roundtrip(pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, connect_timeout=5) as conn:
        user, version = conn.execute(
            "SELECT current_user, current_setting('server_version_num')::int"
        ).fetchone()
        assert user == "banquet"
        assert version >= 140000

        conn.execute(
            "CREATE TEMP TABLE smoke (entity_id bigint PRIMARY KEY, value double precision,"
            " event_ts timestamptz NOT NULL DEFAULT now())"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO smoke (entity_id, value) VALUES (%s, %s)",
                [(1, 0.5), (2, 1.5), (3, None)],
            )
        rows = conn.execute("SELECT entity_id, value FROM smoke ORDER BY entity_id").fetchall()
        assert rows == [(1, 0.5), (2, 1.5), (3, None)]
        conn.rollback()


@pytest.mark.redis
def test_redis_roundtrip(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"banquet:smoke:{uuid.uuid4().hex}"
    try:
        assert client.set(key, b"\x00value\xff", ex=60)
        assert client.get(key) == b"\x00value\xff"
        assert client.delete(key) == 1
        assert client.get(key) is None
    finally:
        client.delete(key)
        client.close()
