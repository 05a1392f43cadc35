"""Shared pytest fixtures.

Sections are kept apart so that several people can add fixtures here; put new ones in a
section of their own.
"""

from __future__ import annotations

import os

import pytest

# ---------------------------------------------------------------------------------------------
# Local servers: Postgres and Redis started by `make services` (scripts/services.sh).
# Connection settings come from scripts/services.env, which the Makefile sources before pytest;
# the defaults below are the same, so a bare `pytest` works too once the servers are up.
# A server that does not answer FAILS the tests that need it (it is never skipped silently).
# ---------------------------------------------------------------------------------------------

DEFAULT_PG_DSN = "postgresql://banquet:banquet@127.0.0.1:55432/banquet"
DEFAULT_REDIS_URL = "redis://127.0.0.1:56379/0"
_START_HINT = "run `make services` (scripts/services.sh start) to start the local servers"


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """DSN of the local Postgres (BANQUET_PG_DSN), checked to answer `SELECT 1`."""
    import psycopg

    dsn = os.environ.get("BANQUET_PG_DSN", DEFAULT_PG_DSN)
    error = None
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as e:
        error = str(e).strip()
    if error is not None:
        pytest.fail(f"Postgres at {dsn} does not answer: {_START_HINT} ({error})", pytrace=False)
    return dsn


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the local Redis (BANQUET_REDIS_URL), checked to answer PING."""
    import redis

    url = os.environ.get("BANQUET_REDIS_URL", DEFAULT_REDIS_URL)
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    error = None
    try:
        client.ping()
    except redis.RedisError as e:
        error = str(e).strip()
    finally:
        client.close()
    if error is not None:
        pytest.fail(f"Redis at {url} does not answer: {_START_HINT} ({error})", pytrace=False)
    return url


# ---------------------------------------------------------------------------------------------
# (end of the local servers section)
# ---------------------------------------------------------------------------------------------
