"""The OnlineStore interface's own hooks: ``fast_reader`` (which store serving reads through
in one Rust call) and the per-process ``ensure_view`` record; and the rule that no module
hangs a cache off another object's ``__dict__``."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import banquet
from banquet import FeatureStore
from banquet.online.base import rows_batch
from banquet.online.sqlite import SqliteOnlineStore

if TYPE_CHECKING:
    from conftest import Backend

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_fast_reader_is_the_embedded_stores_native_object_only(backend: Backend) -> None:
    store = backend.open()
    if backend.kind == "sqlite":
        assert isinstance(store, SqliteOnlineStore)
        assert store.fast_reader() is store.native
    else:
        assert store.fast_reader() is None


class _CountingSqlite(SqliteOnlineStore):
    """The embedded store without its fast path: serving must go through ``read``."""

    reads = 0

    def fast_reader(self) -> None:
        return None

    def read(
        self, project: str, requests: Sequence[tuple[str, Sequence[bytes]]]
    ) -> list[list[bytes | None]]:
        type(self).reads += 1
        return super().read(project, requests)


def test_serving_asks_the_store_for_its_fast_reader(
    tmp_repo: Callable[..., Path], repo_features: str
) -> None:
    repo = tmp_repo({"features.py": repo_features.replace("ttl=timedelta(days=30),", "")})
    fs = FeatureStore(repo_path=repo)
    fs.apply()
    fs.materialize(T0, T0 + timedelta(days=1))
    refs = ["user_profile:age", "user_activity:clicks"]
    fast = fs.get_online_features(refs, {"user_id": [1, 2, 99]}).to_dict()
    fs.online_store.close()
    fs._online = _CountingSqlite(fs.config)
    slow = fs.get_online_features(refs, {"user_id": [1, 2, 99]}).to_dict()
    assert _CountingSqlite.reads == 1  # the general path, chosen by the store's method
    assert slow == fast and fast["age"][2] is None
    fs.online_store.close()


def test_ensure_view_creates_again_after_drop_view(backend: Backend) -> None:
    from store_support import view

    store = backend.open()
    v = view("v")
    store.ensure_view(backend.project, v)
    store.ensure_view(backend.project, v)  # once per process: no second create
    store.drop_view(backend.project, "v")
    store.ensure_view(backend.project, v)  # forgotten by drop_view: created again
    store.write(backend.project, "v", rows_batch([b"k"], [1], [0], [b"x"]))
    assert store.read(backend.project, [("v", [b"k"])]) == [[b"x"]]


def test_no_cache_hangs_off_an_objects_dict() -> None:
    """Caches are explicit attributes of the class that holds them (they once went through
    ``obj.__dict__`` from other modules: invisible to readers and to type checks)."""
    root = Path(banquet.__file__).parent
    found = [
        f"{path.relative_to(root)}:{n}"
        for path in sorted(root.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.__dict__\b", line)
    ]
    assert found == []
