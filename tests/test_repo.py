"""Feature repos: loading definition files, plan/apply diffs through ``FeatureStore``, partial
applies, listing and lookups, teardown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from banquet import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, _core
from banquet.errors import (
    DataSourceNotFound,
    DefinitionError,
    DuplicateNameError,
    EntityNotFound,
    FeatureServiceNotFound,
    FeatureViewNotFound,
    NotFoundError,
    RepoError,
    SourceColumnMissing,
    SourceFileNotFound,
)
from banquet.repo import Diff, load_repo, repo_files
from banquet.types import Int64, String

MakeRepo = Callable[..., Path]


def _tables(repo: Path) -> set[str]:
    db = repo / "data" / "online_store.db"
    if not db.exists():
        return set()
    # through banquet's own SQLite: Python's sqlite3 in this process would break the store's locks
    probe = _core.SqliteStore(str(db))
    try:
        return {r[0] for r in probe.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        probe.close()


def _store(repo: Path) -> FeatureStore:
    return FeatureStore(repo_path=repo)


def _edit(repo: Path, old: str, new: str, file: str = "features.py") -> None:
    path = repo / file
    text = path.read_text()
    assert old in text, f"{old!r} not in {file}"
    path.write_text(text.replace(old, new))


# --- load_repo ---------------------------------------------------------------------------------

SPLIT_REPO = {
    "entities.py": """\
        from banquet import Entity

        user = Entity(name="user", join_keys=["user_id"])
        """,
    "views/profile.py": """\
        from banquet import FeatureView, Field, FileSource
        from banquet.types import Int64, String

        from entities import user

        user_profile = FeatureView(
            name="user_profile",
            entities=[user],
            schema=[Field(name="age", dtype=Int64), Field(name="segment", dtype=String)],
            source=FileSource(path="data/profiles.parquet", timestamp_field="event_timestamp"),
        )
        """,
    "services.py": """\
        from banquet import FeatureService

        from views.profile import user_profile

        age_only = user_profile[["age"]]
        model = FeatureService(name="model", features=[age_only])
        NOT_A_DEFINITION = {"user": 1}
        """,
    ".banquetignore": """\
        # scratch work and broken experiments
        scratch/
        broken_*.py

        """,
    "scratch/experiment.py": "this is not python\n",
    "broken_one.py": "raise RuntimeError('must not be imported')\n",
    "data/generate.py": "raise RuntimeError('data/ is never imported')\n",
    ".hidden/x.py": "raise RuntimeError('hidden folders are never imported')\n",
    "venv/lib.py": "raise RuntimeError('virtualenvs are never imported')\n",
}


def test_repo_files_respects_ignores(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(SPLIT_REPO)
    files = [p.relative_to(repo).as_posix() for p in repo_files(repo)]
    assert files == ["entities.py", "services.py", "views/profile.py"]


def test_load_repo_several_files(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(SPLIT_REPO)
    contents = load_repo(repo)
    assert list(contents.entities) == ["user"]
    assert list(contents.feature_views) == ["user_profile"]
    assert list(contents.data_sources) == ["profiles"]  # named after its file, found via the view
    assert list(contents.feature_services) == ["model"]
    # the service's projection is kept; the projected copy is not a second view
    svc = contents.feature_services["model"]
    assert [f.name for f in svc.feature_views[0].projected_features] == ["age"]
    assert contents.feature_views["user_profile"].projection.is_default()
    assert contents.origin[("entities", "user")] == "entities.py"


def test_load_repo_twice_sees_edits(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    assert [f.name for f in load_repo(repo).feature_views["user_profile"].features] == [
        "age",
        "segment",
    ]
    _edit(
        repo,
        'Field(name="segment", dtype=String)',
        'Field(name="segment", dtype=String), Field(name="x", dtype=Int64)',
    )
    assert [f.name for f in load_repo(repo).feature_views["user_profile"].features] == [
        "age",
        "segment",
        "x",
    ]


def test_same_size_edit_in_the_same_second_is_seen(
    tmp_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python's bytecode cache checks only a source's mtime (in seconds) and size; an edit
    that keeps both (a script running `sed` then `banquet apply`) must still be seen."""
    import os
    import sys

    monkeypatch.setattr(
        sys, "dont_write_bytecode", False
    )  # as for users (not PYTHONDONTWRITEBYTECODE)
    repo = tmp_repo()
    path = repo / "features.py"
    stat = path.stat()
    assert load_repo(repo).feature_views["user_profile"].features[1].name == "segment"
    _edit(repo, 'Field(name="segment", dtype=String)', 'Field(name="segmenu", dtype=String)')
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert load_repo(repo).feature_views["user_profile"].features[1].name == "segmenu"
    assert not list(repo.rglob("__pycache__"))  # and the repo is not littered with .pyc files
    assert sys.dont_write_bytecode is False  # restored


def test_two_repos_with_the_same_file_names(tmp_repo: MakeRepo) -> None:
    """Each repo's `features.py` is its own module, whichever was loaded first."""
    first = tmp_repo()
    second = tmp_repo(
        {
            "features.py": """\
                from banquet import Entity
                other = Entity(name="other")
                """
        }
    )
    assert list(load_repo(first).entities) == ["user"]
    assert list(load_repo(second).entities) == ["other"]
    assert list(load_repo(first).entities) == ["user"]


def test_load_repo_leaves_sys_path_alone(tmp_repo: MakeRepo) -> None:
    import sys

    before = list(sys.path)
    load_repo(tmp_repo())
    assert sys.path == before


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "from banquet import Entity\nuser = Entity(name='user', join_keys=['user_id']\n",
            "SyntaxError",
        ),
        ("from banquet import Entity\nuser = Entitty(name='user')\n", "NameError.*Entitty"),
        ("import banquet_does_not_exist\n", "ModuleNotFoundError"),
    ],
    ids=["syntax", "typo", "import"],
)
def test_load_repo_broken_file(tmp_repo: MakeRepo, text: str, match: str) -> None:
    repo = tmp_repo({"features.py": text})
    with pytest.raises(RepoError, match=f"^features.py: importing it failed with {match}"):
        load_repo(repo)


def test_load_repo_definition_error_names_the_file(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(
        {
            "defs/bad.py": "from banquet import Entity\nuser = Entity(name='user', join_keys=['a', 'b'])\n"
        }
    )
    with pytest.raises(DefinitionError, match=r"^defs/bad.py: Entity 'user': join_keys"):
        load_repo(repo)


def test_load_repo_duplicate_names_across_files(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(
        {
            "a.py": "from banquet import Entity\nuser = Entity(name='user', join_keys=['user_id'])\n",
            "b.py": "from banquet import Entity\ncustomer = Entity(name='user', join_keys=['customer_id'])\n",
        }
    )
    with pytest.raises(DuplicateNameError, match=r"entities are named 'user' \(a.py and b.py\)"):
        load_repo(repo)


def test_load_repo_same_object_in_two_files_is_fine(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(
        {
            "a.py": "from banquet import Entity\nuser = Entity(name='user', join_keys=['user_id'])\n",
            "b.py": "from a import user\nalso_user = user\n",
        }
    )
    assert list(load_repo(repo).entities) == ["user"]


def test_load_repo_view_with_undefined_entity(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(
        {
            "features.py": """\
                from banquet import Entity, FeatureView, Field, FileSource
                from banquet.types import Int64

                view = FeatureView(
                    name="user_profile",
                    entities=[Entity(name="user", join_keys=["user_id"])],
                    schema=[Field(name="age", dtype=Int64)],
                    source=FileSource(path="data/profiles.parquet", timestamp_field="event_timestamp"),
                )
                """
        }
    )
    with pytest.raises(DefinitionError, match="FeatureView 'user_profile' uses entity 'user'"):
        load_repo(repo)


def test_load_repo_feature_named_like_a_join_key(tmp_repo: MakeRepo, repo_features: str) -> None:
    repo = tmp_repo(
        {
            "features.py": repo_features
            + '\nmerchant = Entity(name="merchant", join_keys=["segment"])\n'
        }
    )
    with pytest.raises(
        DefinitionError, match="FeatureView 'user_profile': feature 'segment'.*'merchant'"
    ):
        load_repo(repo)


# --- plan / apply of the repo folder -----------------------------------------------------------


def test_plan_writes_nothing(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    before = sorted(
        p.relative_to(repo).as_posix() for p in repo.rglob("*") if "__pycache__" not in p.parts
    )
    d = _store(repo).plan()
    assert d.added == {
        "entities": ["user"],
        "data_sources": ["activity", "profiles"],
        "feature_views": ["user_activity", "user_profile"],
        "feature_services": ["model_v1"],
    }
    assert not d.changed and not d.removed
    after = sorted(
        p.relative_to(repo).as_posix() for p in repo.rglob("*") if "__pycache__" not in p.parts
    )
    assert after == before
    assert not (repo / "data" / "registry.db").exists()
    assert _store(repo).list_feature_views() == []


def test_apply_then_no_changes(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    store = _store(repo)
    d = store.apply()
    assert isinstance(d, Diff) and not d.empty
    text = d.render()
    for line in (
        "+ Entity user",
        "+ Data source activity",
        "+ Data source profiles",
        "+ Feature view user_activity",
        "+ Feature view user_profile",
        "+ Feature service model_v1",
        "6 to add, 0 to change, 0 to remove",
    ):
        assert line in text
    assert (repo / "data" / "registry.db").is_file()
    assert {"test_project:user_profile", "test_project:user_activity"} <= _tables(repo)
    assert store.registry.read("test_project")["version"] == 1

    again = _store(repo).apply()
    assert again.empty
    assert again.render() == "No changes: the registry already matches the repo."
    assert store.registry.read("test_project")["version"] == 1  # nothing written
    assert _store(repo).plan().empty


def test_apply_infers_key_types_from_the_source(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    store = _store(repo)
    store.apply()
    fv = store.get_feature_view("user_profile")
    assert fv.key_dtype("user_id") is Int64
    record = store.registry_dump()["feature_views"]["user_profile"]
    assert record["entity_columns"] == [{"name": "user_id", "dtype": "int64"}]


def test_editing_a_feature_shows_as_changed(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    _store(repo).apply()
    _edit(
        repo,
        'Field(name="score", dtype=Float64)',
        'Field(name="score", dtype=Float64, description="new")',
    )
    d = _store(repo).plan()
    assert d.changed == {"feature_views": {"user_activity": ["features"]}}
    assert not d.added and not d.removed
    assert "~ Feature view user_activity (features)" in d.render()
    assert "0 to add, 1 to change, 0 to remove" in d.render()

    applied = _store(repo).apply()
    assert applied.changed == d.changed
    store = _store(repo)
    assert store.get_feature_view("user_activity").feature("score").description == "new"
    assert store.registry.read("test_project")["version"] == 2
    assert _store(repo).apply().empty


def test_editing_a_feature_type_recreates_online_storage(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    _store(repo).apply()
    _edit(repo, 'Field(name="segment", dtype=String)', 'Field(name="segment", dtype=Int64)')
    d = _store(repo).apply()
    assert d.changed == {"feature_views": {"user_profile": ["features"]}}
    assert _store(repo).get_feature_view("user_profile").feature("segment").dtype is Int64
    # new storage under the view's next generation name; the old table is gone
    tables = _tables(repo)
    assert "test_project:user_profile@1" in tables and "test_project:user_profile" not in tables


def test_editing_other_fields(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    _store(repo).apply()
    _edit(repo, "ttl=timedelta(days=30)", "ttl=timedelta(days=7)")
    _edit(repo, 'description="a customer"', 'description="a paying customer"')
    d = _store(repo).apply()
    assert d.changed == {
        "entities": {"user": ["description"]},
        "feature_views": {"user_profile": ["ttl_us"]},
    }
    store = _store(repo)
    assert store.get_entity("user").description == "a paying customer"
    assert store.get_feature_view("user_profile").ttl is not None
    assert store.get_feature_view("user_profile").ttl.days == 7  # type: ignore[union-attr]


def test_deleting_from_the_code_removes_from_the_registry(
    tmp_repo: MakeRepo, repo_features: str
) -> None:
    repo = tmp_repo()
    _store(repo).apply()
    # drop the activity source and view; the service keeps only the profile view
    a, b = repo_features.index("activity_source = "), repo_features.index("user_profile = ")
    c = repo_features.index("user_activity = FeatureView(")
    text = repo_features[:a] + repo_features[b:c]
    text += 'model_v1 = FeatureService(name="model_v1", features=[user_profile[["age"]]])\n'
    (repo / "features.py").write_text(text)
    d = _store(repo).plan()
    assert d.removed == {"data_sources": ["activity"], "feature_views": ["user_activity"]}
    assert d.changed == {"feature_services": {"model_v1": ["features"]}}
    _store(repo).apply()
    store = _store(repo)
    assert [v.name for v in store.list_feature_views()] == ["user_profile"]
    assert [s.name for s in store.list_data_sources()] == ["profiles"]
    with pytest.raises(FeatureViewNotFound):
        store.get_feature_view("user_activity")
    assert "test_project:user_activity" not in _tables(repo)
    assert "test_project:user_profile" in _tables(repo)
    assert "- Feature view user_activity" in d.render()


def test_removing_everything(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    _store(repo).apply()
    (repo / "features.py").write_text("# nothing left\n")
    d = _store(repo).apply()
    assert d.removed == {
        "entities": ["user"],
        "data_sources": ["activity", "profiles"],
        "feature_views": ["user_activity", "user_profile"],
        "feature_services": ["model_v1"],
    }
    store = _store(repo)
    assert store.list_entities() == [] and store.list_feature_views() == []
    assert store.list_feature_services() == [] and store.list_data_sources() == []


def test_apply_checks_source_columns(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    _edit(
        repo,
        'Field(name="clicks", dtype=Int64)',
        'Field(name="clicks", dtype=Int64), Field(name="clickz", dtype=Int64)',
    )
    with pytest.raises(SourceColumnMissing, match="'user_activity'.*'activity'.*'clickz'"):
        _store(repo).plan()
    with pytest.raises(SourceColumnMissing):
        _store(repo).apply()
    assert not (repo / "data" / "registry.db").exists()


def test_apply_refuses_one_entity_with_two_key_types(
    tmp_repo: MakeRepo, write_parquet: Callable[..., Path]
) -> None:
    import pyarrow as pa

    repo = tmp_repo({})
    ts = pa.array([0], pa.timestamp("us", tz="UTC"))
    write_parquet(
        repo / "data" / "s.parquet", {"user_id": pa.array(["1"]), "event_timestamp": ts, "n": [1]}
    )
    user, profile, _ = _objects()
    other = FeatureView(
        name="other",
        entities=[user],
        schema=[Field(name="n", dtype=Int64)],
        source=FileSource(path="data/s.parquet", timestamp_field="event_timestamp"),
    )
    with pytest.raises(
        DefinitionError, match="entity 'user'.*Int64.*'user_profile'.*String.*'other'"
    ):
        _store(repo).apply([user, profile, other])
    assert _store(repo).list_feature_views() == []


def test_apply_checks_source_files(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    (repo / "data" / "activity.parquet").unlink()
    with pytest.raises(SourceFileNotFound, match="'activity'"):
        _store(repo).apply()
    assert not (repo / "data" / "registry.db").exists()


def test_apply_a_broken_repo_changes_nothing(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    _store(repo).apply()
    raw = (repo / "data" / "registry.db").read_bytes()
    _edit(repo, "from datetime import timedelta", "from datetime import timedelta\nundefined_name")
    with pytest.raises(RepoError, match="features.py.*NameError"):
        _store(repo).apply()
    assert (repo / "data" / "registry.db").read_bytes() == raw


# --- partial applies: FeatureStore.apply([objects]) -------------------------------------------


def _objects() -> tuple[Entity, FeatureView, FeatureView]:
    user = Entity(name="user", join_keys=["user_id"])
    profile = FeatureView(
        name="user_profile",
        entities=[user],
        schema=[Field(name="age", dtype=Int64), Field(name="segment", dtype=String)],
        source=FileSource(
            name="profiles", path="data/profiles.parquet", timestamp_field="event_timestamp"
        ),
    )
    activity = FeatureView(
        name="user_activity",
        entities=[user],
        schema=[Field(name="clicks", dtype=Int64)],
        source=FileSource(
            name="activity", path="data/activity.parquet", timestamp_field="event_timestamp"
        ),
    )
    return user, profile, activity


def test_partial_apply_adds_and_keeps(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo({})
    store = _store(repo)
    user, profile, activity = _objects()
    d = store.apply([user, profile])
    assert d.added == {
        "entities": ["user"],
        "data_sources": ["profiles"],
        "feature_views": ["user_profile"],
    }
    d2 = store.apply([activity])  # nothing else is removed
    assert d2.added == {"data_sources": ["activity"], "feature_views": ["user_activity"]}
    assert not d2.removed
    assert [v.name for v in store.list_feature_views()] == ["user_activity", "user_profile"]
    assert store.apply([user, profile, activity]).empty
    # a single object works too
    svc = FeatureService(name="svc", features=[profile[["age"]], activity])
    assert store.apply(svc).added == {"feature_services": ["svc"]}
    assert store.get_feature_service("svc").feature_views[0].projected_features[0].name == "age"


def test_partial_apply_of_an_edited_entity(tmp_repo: MakeRepo) -> None:
    """Views are registered with their entity's name: editing the entity's description alone
    keeps them valid."""
    repo = tmp_repo({})
    store = _store(repo)
    user, profile, _ = _objects()
    store.apply([user, profile])
    d = store.apply([Entity(name="user", join_keys=["user_id"], description="new")])
    assert d.changed == {"entities": {"user": ["description"]}}
    assert _store(repo).get_feature_view("user_profile").entities[0].description == "new"
    # a different join key would leave the registered view reading the wrong column
    with pytest.raises(DefinitionError, match="'user_profile' uses entity 'user'"):
        store.apply([Entity(name="user", join_keys=["customer_id"])])


def test_partial_apply_with_an_unregistered_entity(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo({})
    store = _store(repo)
    _, profile, _ = _objects()
    with pytest.raises(DefinitionError, match="FeatureView 'user_profile' uses entity 'user'"):
        store.apply([profile])
    assert store.list_feature_views() == []


def test_partial_apply_service_with_an_unregistered_view(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo({})
    store = _store(repo)
    user, profile, activity = _objects()
    store.apply([user, profile])
    with pytest.raises(
        DefinitionError, match="FeatureService 'svc' uses feature view 'user_activity'"
    ):
        store.apply([FeatureService(name="svc", features=[activity])])


def test_partial_apply_updates(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo({})
    store = _store(repo)
    user, profile, _ = _objects()
    store.apply([user, profile])
    changed = FeatureView(
        name="user_profile",
        entities=[user],
        schema=[Field(name="age", dtype=Int64)],
        source=profile.source,
        online=False,
    )
    d = store.apply([changed])
    assert d.changed == {"feature_views": {"user_profile": ["features", "online"]}}
    assert store.get_feature_view("user_profile").online is False
    assert "test_project:user_profile" not in _tables(repo)


def test_partial_apply_delete(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo({})
    store = _store(repo)
    user, profile, activity = _objects()
    store.apply([user, profile, activity])
    d = store.apply([], objects_to_delete=[activity])
    assert d.removed == {"feature_views": ["user_activity"]}
    assert [v.name for v in store.list_feature_views()] == ["user_profile"]
    assert "test_project:user_activity" not in _tables(repo)
    assert store.apply([], objects_to_delete=[activity]).empty  # already gone


def test_partial_delete_of_a_view_a_service_uses(tmp_repo: MakeRepo) -> None:
    """Deleting a view that a registered service still uses would leave a registry that can
    no longer be loaded; it must be refused and change nothing."""
    repo = tmp_repo({})
    store = _store(repo)
    user, profile, activity = _objects()
    store.apply([user, profile, activity, FeatureService(name="svc", features=[activity])])
    with pytest.raises(DefinitionError, match="'svc'.*'user_activity'"):
        store.apply([], objects_to_delete=[activity])
    fresh = _store(repo)
    assert [v.name for v in fresh.list_feature_views()] == ["user_activity", "user_profile"]
    assert [s.name for s in fresh.list_feature_services()] == ["svc"]


def test_partial_delete_of_an_entity_a_view_uses(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo({})
    store = _store(repo)
    user, profile, _ = _objects()
    store.apply([user, profile])
    with pytest.raises(DefinitionError, match="'user_profile'.*'user'"):
        store.apply([], objects_to_delete=[user])
    assert [e.name for e in _store(repo).list_entities()] == ["user"]


def test_partial_apply_validates_against_the_registry_it_writes(
    tmp_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process deletes the entity between this apply's start and its write: the
    check must see that (it runs under the registry lock), not the state read before."""
    repo = tmp_repo({})
    user, profile, _ = _objects()
    _store(repo).apply([user])
    store = _store(repo)
    assert store.list_entities() == [user]  # cached: the entity is there
    real_update = store.registry.update

    def racing_update(project: str, change: Callable[..., bool]) -> object:
        _store(repo).apply([], objects_to_delete=[user])  # legal: no view uses it yet
        return real_update(project, change)

    monkeypatch.setattr(store.registry, "update", racing_update)
    with pytest.raises(DefinitionError, match="'user_profile' uses entity 'user'"):
        store.apply([profile])
    fresh = _store(repo)
    assert fresh.list_entities() == [] and fresh.list_feature_views() == []


def test_full_apply_of_a_list(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo({})
    store = _store(repo)
    user, profile, activity = _objects()
    store.apply([user, profile, activity])
    d = store.apply([user, profile], partial=False)
    assert d.removed == {"data_sources": ["activity"], "feature_views": ["user_activity"]}
    # a full apply validates references like a repo load does
    with pytest.raises(DefinitionError, match="uses entity 'user'"):
        store.apply([profile], partial=False)
    assert [e.name for e in _store(repo).list_entities()] == ["user"]


def test_partial_apply_checks_sources(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo({})
    user, _, _ = _objects()
    bad = FeatureView(
        name="bad",
        entities=[user],
        schema=[Field(name="nope", dtype=Int64)],
        source=FileSource(
            name="profiles", path="data/profiles.parquet", timestamp_field="event_timestamp"
        ),
    )
    with pytest.raises(SourceColumnMissing, match="'nope'"):
        _store(repo).apply([user, bad])


def test_non_definitions_are_refused_for_delete(tmp_repo: MakeRepo) -> None:
    store = _store(tmp_repo({}))
    with pytest.raises(TypeError, match="not a banquet definition"):
        store.apply([], objects_to_delete=["user"])


# --- list_* / get_* ----------------------------------------------------------------------------


def test_list_and_get(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    _store(repo).apply()
    store = _store(repo)
    assert [e.name for e in store.list_entities()] == ["user"]
    assert [v.name for v in store.list_feature_views()] == ["user_activity", "user_profile"]
    assert [s.name for s in store.list_feature_services()] == ["model_v1"]
    assert [s.name for s in store.list_data_sources()] == ["activity", "profiles"]
    assert store.list_on_demand_feature_views() == []
    assert [v.name for v in store.list_feature_views(tags={"team": "growth"})] == ["user_profile"]
    assert store.list_feature_views(tags={"team": "nobody"}) == []

    user = store.get_entity("user")
    assert user.join_key == "user_id" and user.description == "a customer"
    fv = store.get_feature_view("user_profile")
    assert [f.name for f in fv.features] == ["age", "segment"]
    assert fv.entities == [user]
    src = store.get_data_source("profiles")
    assert isinstance(src, FileSource) and src.created_timestamp_column == "created"
    svc = store.get_feature_service("model_v1")
    assert [
        (v.projected_name, [f.name for f in v.projected_features]) for v in svc.feature_views
    ] == [
        ("user_profile", ["age"]),
        ("user_activity", ["clicks", "score"]),
    ]
    # what comes back equals what the code defines
    contents = load_repo(repo)
    registered = store.get_feature_view("user_activity").to_dict()
    assert registered.pop("entity_columns") == [{"name": "user_id", "dtype": "int64"}]  # inferred
    assert registered == contents.feature_views["user_activity"].to_dict()
    assert store.get_feature_service("model_v1") == contents.feature_services["model_v1"]


@pytest.mark.parametrize(
    ("method", "error"),
    [
        ("get_entity", EntityNotFound),
        ("get_feature_view", FeatureViewNotFound),
        ("get_feature_service", FeatureServiceNotFound),
        ("get_data_source", DataSourceNotFound),
        ("get_on_demand_feature_view", FeatureViewNotFound),
    ],
)
def test_get_unknown_name(tmp_repo: MakeRepo, method: str, error: type[NotFoundError]) -> None:
    repo = tmp_repo()
    _store(repo).apply()
    with pytest.raises(error, match="'nope' is not registered in project 'test_project'") as info:
        getattr(_store(repo), method)("nope")
    assert isinstance(info.value, KeyError) and isinstance(info.value, NotFoundError)
    assert "banquet apply" in str(info.value)
    assert not str(info.value).startswith(("'", '"'))  # KeyError's quoting is undone


def test_get_names_what_is_registered(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    _store(repo).apply()
    with pytest.raises(FeatureViewNotFound, match="registered: user_activity, user_profile"):
        _store(repo).get_feature_view("user_profil")
    with pytest.raises(EntityNotFound, match=r"registered: none"):
        _store(tmp_repo({})).get_entity("user")


def test_registry_cache_and_refresh(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    reader = _store(repo)
    # allow_cache=True: cached for registry.cache_ttl_seconds
    assert reader.list_feature_views(allow_cache=True) == []
    _store(repo).apply()
    assert reader.list_feature_views(allow_cache=True) == []
    reader.refresh_registry()
    assert len(reader.list_feature_views(allow_cache=True)) == 2
    _store(repo).apply([Entity(name="extra", join_keys=["extra_id"])])
    assert "extra" not in [e.name for e in reader.list_entities(allow_cache=True)]
    # Feast's default, allow_cache=False, reads the registry again
    assert "extra" in [e.name for e in reader.list_entities()]


def test_registry_dump(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    store = _store(repo)
    store.apply()
    dump = store.registry_dump()
    assert dump["project"] == "test_project" and dump["version"] == 1
    assert set(dump["feature_views"]) == {"user_activity", "user_profile"}
    assert dump["entities"]["user"] == {
        "name": "user",
        "join_key": "user_id",
        "description": "a customer",
    }


# --- teardown ----------------------------------------------------------------------------------


def test_teardown(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    other = tmp_repo(project="other_project", name="other")
    # a second project sharing the online store file must survive
    (other / "feature_store.yaml").write_text(
        (other / "feature_store.yaml")
        .read_text()
        .replace("data/online_store.db", str(repo / "data" / "online_store.db"))
    )
    store = _store(repo)
    store.apply()
    _store(other).apply()
    assert any(t.startswith("test_project:") for t in _tables(repo))
    store.teardown()
    assert store.list_feature_views() == [] and store.list_entities() == []
    assert _store(repo).registry.projects() == []
    assert not any(t.startswith("test_project:") for t in _tables(repo))
    assert {"other_project:user_profile", "other_project:user_activity"} <= _tables(repo)
    assert len(_store(other).list_feature_views()) == 2
    # applying again starts over
    again = _store(repo).apply()
    assert sum(map(len, again.added.values())) == 6
    assert _store(repo).registry.read("test_project")["version"] == 1
