"""banquet-feast: `import feast` and the `feast` command give banquet (issue #16, Deliver 1)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import banquet
import banquet.aggregation
import banquet.data_format
import banquet.errors as errors
import banquet.stream

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / "compat" / "feast"

# Feast's module paths users import, and a name each must give (banquet's object).
PATHS = {
    "feast": ("FeatureStore", banquet.FeatureStore),
    "feast.types": ("Float32", banquet.types.Float32),
    "feast.value_type": ("ValueType", banquet.ValueType),
    "feast.data_source": ("PushMode", banquet.store.PushMode),
    "feast.on_demand_feature_view": ("on_demand_feature_view", banquet.on_demand_feature_view),
    "feast.feature_view": ("FeatureView", banquet.FeatureView),
    "feast.entity": ("Entity", banquet.Entity),
    "feast.field": ("Field", banquet.Field),
    "feast.feature": ("Feature", banquet.Feature),
    "feast.feature_service": ("FeatureService", banquet.FeatureService),
    "feast.feature_store": ("FeatureStore", banquet.FeatureStore),
    "feast.repo_config": ("RepoConfig", banquet.RepoConfig),
    "feast.errors": ("FeatureViewNotFoundException", errors.FeatureViewNotFound),
    "feast.online_response": ("OnlineResponse", banquet.serving.OnlineResponse),
    "feast.infra.offline_stores.file_source": ("FileSource", banquet.FileSource),
    "feast.infra.offline_stores.offline_store": ("RetrievalJob", None),
    "feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source": (
        "PostgreSQLSource",
        banquet.PostgreSQLSource,
    ),
    "feast.infra.offline_stores.file": ("FileOfflineStoreConfig", None),
    "feast.infra.offline_stores.contrib.postgres_offline_store.postgres": (
        "PostgreSQLOfflineStoreConfig",
        None,
    ),
    "feast.infra.online_stores.sqlite": ("SqliteOnlineStoreConfig", None),
    "feast.infra.online_stores.remote": ("RemoteOnlineStoreConfig", None),
    "feast.infra.offline_stores.contrib.spark_offline_store.spark_source": (
        "SparkSource",
        None,
    ),
    "feast.infra.offline_stores.contrib.spark_offline_store.spark": (
        "SparkOfflineStoreConfig",
        None,
    ),
    "feast.data_format": ("JsonFormat", banquet.data_format.JsonFormat),
    "feast.stream_feature_view": ("StreamFeatureView", banquet.stream.StreamFeatureView),
    "feast.aggregation": ("Aggregation", banquet.aggregation.Aggregation),
    "feast.batch_feature_view": ("BatchFeatureView", banquet.BatchFeatureView),
    "feast.infra.online_stores.redis": ("RedisOnlineStoreConfig", None),
    "feast.infra.online_stores.postgres_online_store.postgres": (
        "PostgreSQLOnlineStoreConfig",
        None,
    ),
}


@pytest.mark.parametrize("module", sorted(PATHS))
def test_feast_paths_give_banquet_objects(module: str) -> None:
    mod = importlib.import_module(module)
    name, expected = PATHS[module]
    obj = getattr(mod, name)
    assert getattr(obj, "__module__", "").startswith("banquet"), (module, name, obj)
    if expected is not None:
        assert obj is expected


def test_feast_parquet_format_in_a_file_source() -> None:
    """Feast's docs write ``FileSource(..., file_format=ParquetFormat())``."""
    from feast import FileSource
    from feast.data_format import ParquetFormat

    src = FileSource(path="d.parquet", timestamp_field="ts", file_format=ParquetFormat())
    assert src.to_dict() == FileSource(path="d.parquet", timestamp_field="ts").to_dict()
    assert ParquetFormat() == ParquetFormat() and str(ParquetFormat()) == "parquet"


def test_feast_comes_from_banquet_feast() -> None:
    import feast

    assert Path(feast.__file__).resolve().is_relative_to(COMPAT / "feast")
    assert feast.__version__ == banquet.__version__
    assert feast.FeatureStore is banquet.FeatureStore


def test_names_banquet_lacks_fail_naming_them() -> None:
    import feast.types

    with pytest.raises(AttributeError, match=r"feast.types.NoSuchType.*Switching from Feast"):
        feast.types.NoSuchType  # noqa: B018
    with pytest.raises(ImportError, match="NoSuchThing"):
        exec("from feast import NoSuchThing", {})


def test_later_banquet_names_appear_under_feast_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name banquet adds (Deliver 2's Project, Map ...) is found without a change here."""
    import feast
    import feast.types

    marker = object()
    monkeypatch.setattr(banquet.types, "NewType", marker, raising=False)
    monkeypatch.setattr(banquet, "NewThing", marker, raising=False)
    assert feast.types.NewType is marker
    assert feast.NewThing is marker


def test_feast_exception_names_catch_what_banquet_raises(tmp_repo) -> None:  # type: ignore[no-untyped-def]
    from feast import FeatureStore
    from feast.errors import (
        EntityNotFoundException,
        FeastError,
        FeastObjectNotFoundException,
        FeatureServiceNotFoundException,
        FeatureViewNotFoundException,
        OnDemandFeatureViewNotFoundException,
    )

    store = FeatureStore(repo_path=tmp_repo())
    store.apply()
    cases = [
        (store.get_feature_view, FeatureViewNotFoundException),
        (store.get_entity, EntityNotFoundException),
        (store.get_feature_service, FeatureServiceNotFoundException),
        (store.get_on_demand_feature_view, OnDemandFeatureViewNotFoundException),
    ]
    for call, exc in cases:
        with pytest.raises(exc) as info:
            call("nope")
        assert isinstance(info.value, FeastObjectNotFoundException | FeastError | KeyError)
        assert isinstance(info.value, errors.BanquetError)
    # an on-demand view that is not found is still a FeatureViewNotFound (banquet's class)
    assert issubclass(OnDemandFeatureViewNotFoundException, FeatureViewNotFoundException)


def test_feast_command_is_banquets(feast_command: list[str], tmp_repo) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_repo()
    out = subprocess.run(
        [*feast_command, "apply"], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "+ Feature view user_profile" in out.stdout
    helped = subprocess.run([*feast_command, "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: feast ")


# --- never over a real Feast --------------------------------------------------------------------


def _fake_feast_dist(site: Path) -> None:
    info = site / "feast-0.67.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: feast\nVersion: 0.67.0\n")


def test_import_refuses_a_real_feast_alongside(tmp_path: Path) -> None:
    _fake_feast_dist(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.run(
        [sys.executable, "-c", "import feast"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "Feast 0.67.0 is installed too" in proc.stderr
    assert "pip uninstall feast banquet-feast" in proc.stderr


def test_install_refuses_an_environment_with_a_real_feast(tmp_path: Path) -> None:
    """pip builds banquet-feast with the target interpreter; the backend finds Feast there and
    fails the install, naming the fix."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    _fake_feast_dist(site)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            str(COMPAT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "Uninstall Feast first (pip uninstall feast)" in proc.stdout + proc.stderr
    assert not (site / "feast").exists()


def test_wheel_holds_the_package_and_the_command(tmp_path: Path) -> None:
    sys.path.insert(0, str(COMPAT / "_build"))
    try:
        import banquet_feast_backend as backend
    finally:
        sys.path.remove(str(COMPAT / "_build"))
    name = backend.build_wheel(str(tmp_path))
    assert name == "banquet_feast-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(tmp_path / name) as zf:
        names = set(zf.namelist())
        entry_points = zf.read("banquet_feast-0.1.0.dist-info/entry_points.txt").decode()
        metadata = zf.read("banquet_feast-0.1.0.dist-info/METADATA").decode()
    assert {"feast/__init__.py", "feast/data_source.py", "feast/types.py"} <= names
    assert "feast/infra/offline_stores/file_source.py" in names
    assert not any("__pycache__" in n for n in names)
    assert "feast = feast._command:main" in entry_points
    assert "Requires-Dist: banquet" in metadata
