"""Event times over HTTP: every pushed time is either refused with a 4xx (nothing written) or
served back as the same instant; a stored time the server cannot render is reported per
value, never a 500 for the batch; ``overwrite`` in a write body corrects a future-dated value."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from server_support import NOW, T0, Server, make_repo

from banquet import FeatureStore, _core
from banquet.online.base import rows_batch

UTC = timezone.utc
US = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("ts") / "repo", "ts_http")


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server], repo: Path) -> Server:
    return start_server(repo)


_ids = itertools.count(1000)


@pytest.fixture
def uid() -> Iterator[int]:
    yield next(_ids)


def push(server: Server, user: int, ts: Any, clicks: int = 1, **extra: Any) -> tuple[int, Any]:
    """One row to the push source (it feeds both ``stats`` and ``stats_small``)."""
    df = {
        "user_id": [user],
        "event_timestamp": [ts],
        "clicks": [clicks],
        "score": [0.5],
        "label": ["a"],
        "seen": [T0.isoformat()],
        "blob": ["AA=="],
        "tags": [["x"]],
    }
    return server.post("/push", {"push_source_name": "stats_push", "df": df, **extra})


def served(server: Server, users: list[int]) -> tuple[int, Any]:
    return server.post(
        "/get-online-features", {"features": ["stats_small:clicks"], "entities": {"user_id": users}}
    )


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_far_future_push_is_a_400_and_serving_goes_on(server: Server, uid: int) -> None:
    # was: 200, then every read touching the key answered 500
    status, body = push(server, uid, "9999-12-31T23:59:59Z")
    assert status == 400, body
    assert body["error"]["type"] == "InvalidTimestamp"
    assert "outside the range" in body["error"]["message"]
    status, body = served(server, [1, uid])
    assert status == 200
    assert body["results"][1]["statuses"] == ["PRESENT", "NOT_FOUND"]


def test_beyond_the_skew_is_a_400_naming_the_setting(server: Server, uid: int) -> None:
    status, body = push(server, uid, (NOW + timedelta(days=3)).isoformat())
    assert status == 400 and "max_future_skew" in body["error"]["message"]
    assert push(server, uid, (NOW + timedelta(hours=1)).isoformat())[0] == 200


def test_write_to_online_store_checks_too(server: Server, uid: int) -> None:
    df = {"user_id": [uid], "event_timestamp": ["9999-01-01T00:00:00"], "clicks": [1]}
    status, body = server.post(
        "/write-to-online-store", {"feature_view_name": "stats_small", "df": df}
    )
    assert status == 400 and body["error"]["type"] == "InvalidTimestamp"


def test_an_offset_is_the_same_instant(server: Server, uid: int) -> None:
    local = (T0 + timedelta(hours=5, minutes=30)).replace(tzinfo=None).isoformat() + "+05:30"
    assert push(server, uid, local)[0] == 200
    status, body = served(server, [uid])
    assert instant(body["results"][1]["event_timestamps"][0]) == T0


def test_overwrite_in_the_body(server: Server, uid: int) -> None:
    soon = (NOW + timedelta(hours=6)).isoformat()
    assert push(server, uid, soon, 66)[0] == 200
    assert push(server, uid, T0.isoformat(), 1)[0] == 200  # older: ignored
    assert served(server, [uid])[1]["results"][1]["values"] == [66]
    assert push(server, uid, T0.isoformat(), 1, overwrite=True)[0] == 200
    assert served(server, [uid])[1]["results"][1]["values"] == [1]
    df = {"user_id": [uid], "event_timestamp": [T0.isoformat()], "clicks": [2]}
    body = {"feature_view_name": "stats_small", "df": df, "overwrite": True}
    assert server.post("/write-to-online-store", body)[0] == 200
    assert served(server, [uid])[1]["results"][1]["values"] == [2]
    assert push(server, uid, T0.isoformat(), overwrite="yes")[0] == 400


def test_materialize_overwrite_in_the_body(server: Server) -> None:
    soon = (NOW + timedelta(hours=6)).isoformat()
    df = {"user_id": [1], "event_timestamp": [soon], "age": [99], "segment": ["wrong"]}
    body: dict[str, Any] = {"feature_view_name": "profile", "df": df}
    assert server.post("/write-to-online-store", body)[0] == 200
    window = {"start_ts": (T0 - timedelta(days=1)).isoformat(), "end_ts": NOW.isoformat()}
    age = {"features": ["profile:age"], "entities": {"user_id": [1]}}
    assert server.post("/materialize", window)[0] == 200
    assert server.post("/get-online-features", age)[1]["results"][1]["values"] == [99]
    assert server.post("/materialize", {**window, "overwrite": True})[0] == 200
    assert server.post("/get-online-features", age)[1]["results"][1]["values"] == [30]


def test_an_unrenderable_stored_time_is_reported_per_value(
    server: Server, repo: Path, uid: int
) -> None:
    store = FeatureStore(repo_path=repo)
    view = store.get_feature_view("stats_small")
    far = 253402300799000000  # 9999-12-31T23:59:59Z, as the unchecked push stored it
    ev = pa.array([far], pa.int64()).cast(US)
    keys = _core.serialize_entity_keys(["user_id"], [pa.array([uid], pa.int64())])
    blobs = _core.encode_values(ev, None, [pa.array([5], pa.int64())], view.value_schema())
    store.online_store.write(
        store.project, getattr(view, "storage_name", view.name), rows_batch(keys, ev, None, blobs)
    )
    store.online_store.close()
    status, body = served(server, [1, uid])
    assert status == 200, body
    result = body["results"][1]
    assert result["statuses"] == ["PRESENT", "INVALID"]
    assert result["values"] == [10, None]
    assert result["event_timestamps"][1] == "1970-01-01T00:00:00Z"
    assert push(server, uid, T0.isoformat(), 3, overwrite=True)[0] == 200
    assert served(server, [uid])[1]["results"][1]["statuses"] == ["PRESENT"]


# --- the property: refused with a 4xx, or served back as the same instant ----------------------

_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_near = st.datetimes(datetime(1960, 1, 1), datetime(2040, 1, 1))
_any = st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999))


@st.composite
def spelled_times(draw: st.DrawFn) -> tuple[Any, datetime | None]:
    """(what is sent, the instant it means or None when it has none in Python)."""
    kind = draw(st.sampled_from(["naive", "z", "offset", "seconds", "float", "extreme"]))
    if kind == "extreme":
        return draw(
            st.sampled_from(
                [
                    ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
                    ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
                    ("0001-01-01T00:00:00+05:30", None),
                    ("9999-12-31T23:59:59-05:00", None),
                    (0, datetime(1970, 1, 1, tzinfo=UTC)),
                    (-1, datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
                    (-(2**62), None),
                    (2**62, None),
                    (1e300, None),
                    ("1677-09-21T00:12:43.145224Z", datetime(1677, 9, 21, 0, 12, 43, 145224, UTC)),
                    ("2262-04-11T23:47:16Z", datetime(2262, 4, 11, 23, 47, 16, tzinfo=UTC)),
                ]
            )
        )
    dt = draw(st.one_of(_near, _any))
    if kind in ("seconds", "float"):
        utc = dt.replace(tzinfo=UTC)
        us = (utc - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        if kind == "seconds":
            return us // 1_000_000, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
                seconds=us // 1_000_000
            )
        value = us / 1e6
        return value, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=round(value * 1e6))
    if kind == "naive":
        return dt.isoformat(), dt.replace(tzinfo=UTC)
    if kind == "z":
        return dt.isoformat() + "Z", dt.replace(tzinfo=UTC)
    tz = draw(_offsets)
    try:
        meant: datetime | None = (dt - tz.utcoffset(None)).replace(tzinfo=UTC)
    except OverflowError:
        meant = None
    return dt.replace(tzinfo=tz).isoformat(), meant


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sent=spelled_times())
def test_every_pushed_time_is_refused_or_served_back(
    server: Server, sent: tuple[Any, datetime | None]
) -> None:
    value, meant = sent
    user = next(_ids)
    status, body = push(server, user, value)
    event("refused" if status != 200 else "accepted")
    if status != 200:
        assert 400 <= status < 500, body
        assert body["error"]["type"] == "InvalidTimestamp", body
        assert served(server, [user])[1]["results"][1]["statuses"] == ["NOT_FOUND"]
        return
    assert meant is not None, f"{value!r} was accepted"
    status, body = served(server, [user])
    assert status == 200, body
    result = body["results"][1]
    assert result["statuses"] == ["PRESENT"]
    assert instant(result["event_timestamps"][0]) == meant, value
