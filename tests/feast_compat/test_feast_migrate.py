"""A Feast 0.67 registry (data/feast_067_registry.db: made by the real Feast from its
`feast init` template, see data/README.md) imported into banquet without re-applying:
transparently at the file registry's first read, and by `banquet migrate-from-feast` from a
file or a Feast SQL registry; the protobuf reader's typed errors (issue #16, Deliver 6)."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from feast_template import write_template

import banquet.feature_logging
from banquet import FeatureStore
from banquet.cli import cli
from banquet.errors import RegistryCorrupt, RegistryError
from banquet.feature_logging import FileLoggingDestination, LoggingConfig
from banquet.labeling import LabelView
from banquet.migrate.command import import_into
from banquet.migrate.feast_registry import SQL_TABLES, blobs_from_file, is_feast_registry
from banquet.migrate.protowire import Msg, parse
from banquet.types import Json, Map, String, Struct

DATA = Path(__file__).parent / "data"
FEAST_DB = DATA / "feast_067_registry.db"


@pytest.fixture(autouse=True)
def _logging_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    # the fixture's driver_activity_v1 has a logging config: warn-once is tested elsewhere
    monkeypatch.setattr(banquet.feature_logging, "_warned", True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The template's repo and data under Feast's project name 'demo' (the fixture's)."""
    return write_template(tmp_path, project="demo")


def _check_imported(store: FeatureStore) -> None:
    views = {v.name: v for v in store.list_feature_views()}
    assert set(views) == {
        "driver_hourly_stats",
        "driver_hourly_stats_fresh",
        "driver_quality_labels",
    }
    stats = views["driver_hourly_stats"]
    types = {f.name: f.dtype for f in stats.features}
    assert types["driver_metadata"] is Map and types["driver_config"] is Json
    assert types["driver_profile"] == Struct({"name": String, "age": String})
    assert stats.ttl is not None and stats.ttl.days == 1 and stats.enable_validation
    assert stats.source.name == "driver_hourly_stats_source"
    assert views["driver_hourly_stats_fresh"].source.name == "driver_stats_push_source"
    labels = store.get_feature_view("driver_quality_labels")
    assert isinstance(labels, LabelView) and labels.labeler_field == "labeler"
    assert {o.name for o in store.list_on_demand_feature_views()} == {
        "transformed_conv_rate",
        "transformed_conv_rate_fresh",
    }
    v1 = store.get_feature_service("driver_activity_v1")
    assert [(v.name, [f.name for f in v.projected_features]) for v in v1.feature_views][0] == (
        "driver_hourly_stats",
        ["conv_rate"],
    )
    assert v1.logging_config == LoggingConfig(FileLoggingDestination(path="data"))
    assert {e.name for e in store.list_entities()} == {"driver"}
    assert {s.name for s in store.list_data_sources()} >= {
        "driver_hourly_stats_source",
        "driver_stats_push_source",
        "vals_to_add",
    }


def test_feast_registry_db_is_imported_at_first_read(repo: Path) -> None:
    shutil.copy(FEAST_DB, repo / "data" / "registry.db")
    store = FeatureStore(repo_path=repo)
    _check_imported(store)
    assert (repo / "data" / "registry.db.feast").read_bytes() == FEAST_DB.read_bytes()
    assert (repo / "data" / "registry.db").read_bytes()[:1] == b"{"  # banquet's now
    # served after one materialization, no apply
    store.materialize_incremental(end_date=datetime.now(timezone.utc))
    got = store.get_online_features(
        features=["driver_hourly_stats:conv_rate", "driver_hourly_stats:driver_profile"],
        entity_rows=[{"driver_id": 1001}],
    ).to_dict()
    assert got["conv_rate"][0] is not None and got["driver_profile"][0]["name"] == "driver_1001"
    # a later apply from the repo's files works on the imported registry
    store.apply()


def test_migrate_command_from_a_file_then_materialize(repo: Path) -> None:
    result = CliRunner().invoke(
        cli, ["-c", str(repo), "migrate-from-feast", str(FEAST_DB), "--materialize"]
    )
    assert result.exit_code == 0, result.output
    assert "project 'demo': 14 objects" in result.output
    store = FeatureStore(repo_path=repo)
    _check_imported(store)
    got = store.get_online_features(
        features=["driver_hourly_stats:acc_rate"], entity_rows=[{"driver_id": 1002}]
    ).to_dict()
    assert got["acc_rate"][0] is not None


def test_migrate_from_a_feast_sql_registry(repo: Path, tmp_path: Path) -> None:
    """A Feast SQL registry's tables (one protobuf per row), rebuilt from the file fixture
    with Feast's table and column names."""
    db = tmp_path / "feast_sql.db"
    blobs = blobs_from_file(FEAST_DB.read_bytes())["demo"]
    with sqlite3.connect(db) as conn:
        for table, column in SQL_TABLES.items():
            conn.execute(f"CREATE TABLE {table} (name TEXT, project_id TEXT, {column} BLOB)")
            for i, blob in enumerate(blobs.get(table, [])):
                conn.execute(f"INSERT INTO {table} VALUES (?, 'demo', ?)", (str(i), blob))
    store = FeatureStore(repo_path=repo)
    assert import_into(store, f"sqlite:///{db}") == {"demo": 14}
    _check_imported(store)


def test_not_a_feast_registry(repo: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\xff\xff\xff")
    assert not is_feast_registry(junk.read_bytes())
    result = CliRunner().invoke(cli, ["-c", str(repo), "migrate-from-feast", str(junk)])
    assert result.exit_code != 0 and "not a Feast registry" in result.output
    with pytest.raises(RegistryError, match="no SQLite registry"):
        import_into(FeatureStore(repo_path=repo), f"sqlite:///{tmp_path}/none.db")


def test_protowire_reader() -> None:
    # field 1 varint 150, field 2 "hi", field 3 fixed32, field 1 again (the last wins)
    raw = b"\x08\x96\x01\x12\x02hi\x1d\x00\x00\x80\x3f\x08\x01"
    assert parse(raw) == {1: [150, 1], 2: [b"hi"], 3: [0x3F800000]}
    msg = Msg(raw)
    assert msg.int(1) == 1 and msg.str(2) == "hi" and msg.float(3) == 1.0
    for bad in (b"\x08", b"\x12\x05ab", b"\x0b", b"\x00\x01"):
        with pytest.raises(RegistryCorrupt):
            parse(bad)
