"""Definition objects: construction, registry records (to_dict/from_dict), projections, types,
and a typed error naming the object for every definition mistake."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

import banquet
from banquet import (
    DataSource,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PostgreSQLSource,
    PushSource,
    RequestSource,
    ValueType,
)
from banquet import types as bt
from banquet.errors import (
    BanquetError,
    DefinitionError,
    DuplicateNameError,
    FeatureNotFound,
    FeatureViewNotFound,
    NotFoundError,
)
from banquet.repo import RepoContents
from banquet.types import (
    Array,
    Bool,
    Bytes,
    Float32,
    Float64,
    Int32,
    Int64,
    String,
    UnixTimestamp,
)

# --- helpers ---------------------------------------------------------------------------------


def _user() -> Entity:
    return Entity(name="user", join_keys=["user_id"])


def _src(**kw: object) -> FileSource:
    args: dict[str, object] = {
        "name": "tx",
        "path": "data/tx.parquet",
        "timestamp_field": "event_timestamp",
    }
    args.update(kw)
    return FileSource(**args)  # type: ignore[arg-type]


def _view(name: str = "tx_stats", **kw: object) -> FeatureView:
    args: dict[str, object] = {
        "name": name,
        "entities": [_user()],
        "source": _src(),
        "schema": [Field(name="count", dtype=Int64), Field(name="spend", dtype=Float32)],
    }
    args.update(kw)
    return FeatureView(**args)  # type: ignore[arg-type]


def _roundtrip_source(src: DataSource) -> DataSource:
    again = DataSource.from_dict(src.to_dict())
    assert type(again) is type(src)
    assert again == src
    assert again.to_dict() == src.to_dict()
    return again


# --- types -----------------------------------------------------------------------------------


SCALARS = [
    (String, "string", ValueType.STRING, pa.string()),
    (Bytes, "bytes", ValueType.BYTES, pa.binary()),
    (Bool, "bool", ValueType.BOOL, pa.bool_()),
    (Int32, "int32", ValueType.INT32, pa.int32()),
    (Int64, "int64", ValueType.INT64, pa.int64()),
    (Float32, "float32", ValueType.FLOAT, pa.float32()),
    (Float64, "float64", ValueType.DOUBLE, pa.float64()),
    (UnixTimestamp, "timestamp", ValueType.UNIX_TIMESTAMP, pa.timestamp("us", tz="UTC")),
]


@pytest.mark.parametrize(("t", "name", "vt", "arrow"), SCALARS, ids=[s[1] for s in SCALARS])
def test_scalar_types(t: bt.BanquetType, name: str, vt: ValueType, arrow: pa.DataType) -> None:
    assert t.name == name
    assert t.value_type == vt
    assert t.to_arrow() == arrow
    assert bt.from_name(name) is t
    assert bt.from_value_type(vt) is t
    assert bt.from_arrow(arrow) == t
    assert str(t) == repr(t) and str(t)[0].isupper()


@pytest.mark.parametrize(("t", "name", "vt", "arrow"), SCALARS, ids=[s[1] for s in SCALARS])
def test_array_types(t: bt.BanquetType, name: str, vt: ValueType, arrow: pa.DataType) -> None:
    a = Array(t)
    assert a.name == f"array<{name}>"
    assert a.base is t
    assert a.value_type == ValueType(int(vt) + 10)
    assert a.value_type.name == f"{vt.name}_LIST"
    assert a.to_arrow() == pa.list_(arrow)
    assert a == Array(t) and hash(a) == hash(Array(t))
    assert a != t
    assert bt.from_name(a.name) == a
    assert bt.from_value_type(a.value_type) == a
    assert bt.from_arrow(pa.list_(arrow)) == a
    assert bt.from_arrow(pa.large_list(arrow)) == a
    assert repr(a) == f"Array({t!r})"


def test_array_of_array_or_non_type_is_rejected() -> None:
    with pytest.raises(TypeError, match="scalar"):
        Array(Array(Int64))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Array("int64")  # type: ignore[arg-type]


def test_value_type_codes_are_feasts() -> None:
    assert ValueType.UNKNOWN == 0
    assert ValueType.BYTES == 1 and ValueType.STRING == 2 and ValueType.INT32 == 3
    assert ValueType.INT64 == 4 and ValueType.DOUBLE == 5 and ValueType.FLOAT == 6
    assert ValueType.BOOL == 7 and ValueType.UNIX_TIMESTAMP == 8
    assert ValueType.INT64_LIST == 14 and ValueType.NULL == 19
    assert banquet.ValueType is bt.ValueType


def test_unknown_type_names() -> None:
    with pytest.raises(ValueError, match="decimal"):
        bt.from_name("decimal")
    with pytest.raises(ValueError):
        bt.from_value_type(ValueType.UNKNOWN)
    with pytest.raises(TypeError):
        bt.from_arrow(pa.decimal128(10, 2))


# --- Field / Feature ---------------------------------------------------------------------------


def test_field_roundtrip_and_equality() -> None:
    f = Field(name="spend", dtype=Array(Float32), description="d", tags={"a": "b"})
    d = f.to_dict()
    assert d == {"name": "spend", "dtype": "array<float32>", "description": "d", "tags": {"a": "b"}}
    assert Field.from_dict(d) == f
    assert Field(name="x", dtype=Int64).to_dict() == {"name": "x", "dtype": "int64"}
    assert Field(name="x", dtype=Int64) != Field(name="x", dtype=Int32)
    assert hash(Field(name="x", dtype=Int64)) == hash(Field(name="x", dtype=Int64))


def test_field_accepts_value_type() -> None:
    assert Field(name="x", dtype=ValueType.INT64).dtype is Int64  # type: ignore[arg-type]
    assert Field(name="x", dtype=ValueType.FLOAT_LIST).dtype == Array(Float32)  # type: ignore[arg-type]


def test_feature_is_a_field_alias() -> None:
    f = Feature("age", ValueType.INT64, description="years", labels={"pii": "no"})
    assert isinstance(f, Field)
    assert f == Field(name="age", dtype=Int64, description="years", tags={"pii": "no"})
    assert Feature(name="score", dtype=Float64).dtype is Float64
    assert banquet.Feature is Feature
    view = _view(schema=[Feature("count", ValueType.INT64)])
    assert [f.name for f in view.features] == ["count"]


@pytest.mark.parametrize("dtype", [int, "int64", None, 3, ValueType.UNKNOWN])
def test_field_wrong_dtype(dtype: object) -> None:
    with pytest.raises(DefinitionError, match="'spend'"):
        Field(name="spend", dtype=dtype)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "1abc", "a:b", None, 7, "é"])
def test_field_bad_name(name: object) -> None:
    with pytest.raises(DefinitionError, match="Field name"):
        Field(name=name, dtype=Int64)  # type: ignore[arg-type]


def test_field_bad_tags() -> None:
    with pytest.raises(DefinitionError, match="Field 'x'.*tags"):
        Field(name="x", dtype=Int64, tags={"a": 1})  # type: ignore[dict-item]


# --- Entity ------------------------------------------------------------------------------------


def test_entity_defaults_and_roundtrip() -> None:
    e = Entity(name="driver")
    assert e.join_keys == ["driver"] and e.join_key == "driver"
    assert e.dtype is None and e.value_type == ValueType.UNKNOWN
    assert e.to_dict() == {"name": "driver", "join_key": "driver"}
    assert Entity.from_dict(e.to_dict()) == e

    full = Entity(
        name="user",
        join_keys=["user_id"],
        value_type=ValueType.INT64,
        description="a customer",
        tags={"team": "risk"},
        owner="me@example.com",
    )
    assert full.dtype is Int64 and full.value_type == ValueType.INT64
    again = Entity.from_dict(full.to_dict())
    assert again == full
    assert again.to_dict() == full.to_dict()
    assert (again.description, again.tags, again.owner) == (
        "a customer",
        {"team": "risk"},
        "me@example.com",
    )
    assert full != Entity(name="user", join_keys=["user_id"])


def test_entity_join_key_forms() -> None:
    assert Entity(name="u", join_keys="uid").join_keys == ["uid"]  # type: ignore[arg-type]
    assert Entity(name="u", value_type=String).dtype is String
    assert Entity(name="u", value_type=ValueType.UNKNOWN).dtype is None


@pytest.mark.parametrize("keys", [[], ["a", "b"]])
def test_entity_needs_exactly_one_join_key(keys: list[str]) -> None:
    with pytest.raises(DefinitionError, match="Entity 'user'.*join_keys"):
        Entity(name="user", join_keys=keys)


@pytest.mark.parametrize(
    "vt", [ValueType.FLOAT, ValueType.BOOL, ValueType.INT64_LIST, Float64, "int64", 4.5]
)
def test_entity_bad_value_type(vt: object) -> None:
    with pytest.raises(DefinitionError, match="Entity 'user'"):
        Entity(name="user", value_type=vt)  # type: ignore[arg-type]


def test_entity_bad_names() -> None:
    with pytest.raises(DefinitionError, match="Entity name"):
        Entity(name="bad name")
    with pytest.raises(DefinitionError, match="Entity 'user' join key"):
        Entity(name="user", join_keys=["user id"])


# --- sources -----------------------------------------------------------------------------------


def test_file_source_roundtrip() -> None:
    src = FileSource(
        name="tx",
        path="data/tx.parquet",
        timestamp_field="ts",
        created_timestamp_column="created",
        field_mapping={"amount_usd": "spend"},
        description="transactions",
        tags={"k": "v"},
        owner="o",
    )
    assert src.to_dict()["kind"] == "file"
    again = _roundtrip_source(src)
    assert isinstance(again, FileSource) and again.path == "data/tx.parquet"
    assert again.field_mapping == {"amount_usd": "spend"}
    assert src.source_column("spend") == "amount_usd"
    assert src.source_column("other") == "other"
    assert src.batch is src


def test_file_source_name_from_path() -> None:
    assert FileSource(path="data/driver_stats.parquet").name == "driver_stats"
    assert FileSource(path="/abs/dir/partitioned/").name == "partitioned"
    assert FileSource(path="data/2024 stats.parquet").name == "_2024_stats"


def test_file_source_errors() -> None:
    with pytest.raises(DefinitionError, match="FileSource 'x'.*path"):
        FileSource(name="x", path="")
    with pytest.raises(DefinitionError, match="FileSource 'x'.*Parquet"):
        FileSource(name="x", path="a.csv", file_format="csv")
    with pytest.raises(DefinitionError, match="FileSource 'x'.*field_mapping"):
        FileSource(name="x", path="a.parquet", field_mapping={"a": "c", "b": "c"})
    with pytest.raises(DefinitionError, match="FileSource name"):
        FileSource(name="bad name", path="a.parquet")


def test_postgres_source_roundtrip() -> None:
    t = PostgreSQLSource(name="pg_t", table="public.tx", timestamp_field="ts")
    assert _roundtrip_source(t).table == "public.tx"  # type: ignore[attr-defined]
    q = PostgreSQLSource(name="pg_q", query="SELECT * FROM tx", timestamp_field="ts")
    again = _roundtrip_source(q)
    assert again.query == "SELECT * FROM tx" and again.table == ""  # type: ignore[attr-defined]
    assert t.to_dict()["kind"] == "postgres"


@pytest.mark.parametrize("kw", [{}, {"table": "t", "query": "SELECT 1"}])
def test_postgres_source_needs_exactly_one_of_table_and_query(kw: dict[str, str]) -> None:
    with pytest.raises(
        DefinitionError, match="PostgreSQLSource 'pg'.*exactly one of table= or query="
    ):
        PostgreSQLSource(name="pg", timestamp_field="ts", **kw)


def test_push_source_roundtrip() -> None:
    batch = _src(created_timestamp_column="created", field_mapping={"a": "b"})
    push = PushSource(name="tx_push", batch_source=batch, description="live")
    assert push.batch is batch
    assert push.timestamp_field == "event_timestamp"
    assert push.created_timestamp_column == "created"
    again = _roundtrip_source(push)
    assert isinstance(again, PushSource) and again.batch_source == batch
    assert again.timestamp_field == "event_timestamp"


@pytest.mark.parametrize(
    "batch",
    [
        None,
        RequestSource(name="req", schema=[Field(name="x", dtype=Int64)]),
        PushSource(name="inner", batch_source=FileSource(path="a.parquet", timestamp_field="ts")),
    ],
    ids=["none", "request", "push"],
)
def test_push_source_batch_source_kind(batch: object) -> None:
    with pytest.raises(DefinitionError, match="PushSource 'p'.*batch_source"):
        PushSource(name="p", batch_source=batch)  # type: ignore[arg-type]


def test_request_source_roundtrip() -> None:
    req = RequestSource(
        name="req",
        schema=[Field(name="amount", dtype=Float64), Field(name="ids", dtype=Array(Int64))],
    )
    again = _roundtrip_source(req)
    assert isinstance(again, RequestSource)
    assert [f.dtype for f in again.schema] == [Float64, Array(Int64)]
    with pytest.raises(DefinitionError, match="RequestSource 'req'.*schema"):
        RequestSource(name="req", schema=[])
    with pytest.raises(DefinitionError, match="RequestSource 'req'.*schema"):
        RequestSource(name="req", schema=["amount"])  # type: ignore[list-item]


# --- FeatureView -------------------------------------------------------------------------------


def test_feature_view_basics() -> None:
    fv = _view(ttl=timedelta(days=2), tags={"team": "x"}, description="d", owner="o")
    assert fv.join_keys == ["user_id"]
    assert [f.name for f in fv.features] == ["count", "spend"]
    assert fv.entity_columns == []  # the entity has no type: it comes from the source at apply
    assert fv.key_dtype("user_id") is None
    assert fv.ttl == timedelta(days=2) and fv.ttl_us == 2 * 86_400_000_000
    assert fv.online and fv.offline
    assert fv.batch_source is fv.source
    assert fv.projected_name == "tx_stats"
    assert fv.feature("spend").dtype is Float32
    with pytest.raises(FeatureNotFound, match="'tx_stats' has no feature 'nope'"):
        fv.feature("nope")


def test_feature_view_entity_columns_from_typed_entities() -> None:
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    fv = _view(entities=[user])
    assert fv.entity_columns == [Field(name="user_id", dtype=Int64)]
    assert fv.key_dtype("user_id") is Int64
    # a schema field named like the join key is the key column, not a feature
    merchant = Entity(name="merchant", join_keys=["merchant_id"])
    fv2 = _view(
        entities=[user, merchant],
        schema=[Field(name="merchant_id", dtype=String), Field(name="count", dtype=Int64)],
    )
    assert [f.name for f in fv2.features] == ["count"]
    assert {c.name: c.dtype for c in fv2.entity_columns} == {
        "merchant_id": String,
        "user_id": Int64,
    }
    assert [f.name for f in fv2.schema] == ["merchant_id", "user_id", "count"]


@pytest.mark.parametrize("ttl", [None, timedelta(0), 0])
def test_feature_view_no_ttl_means_unbounded(ttl: object) -> None:
    fv = _view(ttl=ttl)
    assert fv.ttl is None and fv.ttl_us is None


def test_feature_view_ttl_in_seconds() -> None:
    assert _view(ttl=3600).ttl == timedelta(hours=1)


def test_feature_view_roundtrip() -> None:
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    merchant = Entity(name="merchant", join_keys=["merchant_id"])
    fv = FeatureView(
        name="pair_stats",
        entities=[user, merchant],
        source=PushSource(name="pair_push", batch_source=_src(created_timestamp_column="created")),
        schema=[
            Field(name="merchant_id", dtype=String),
            Field(name="amounts", dtype=Array(Float64)),
            Field(name="flag", dtype=Bool, description="flagged"),
        ],
        ttl=timedelta(hours=5, microseconds=7),
        online=False,
        offline=False,
        description="pairs",
        tags={"a": "b"},
        owner="team",
    )
    d = fv.to_dict()
    assert d["entities"] == ["user", "merchant"]
    assert d["ttl_us"] == 5 * 3_600_000_000 + 7
    again = FeatureView.from_dict(d, {"user": user, "merchant": merchant})
    assert again == fv
    assert again.to_dict() == d
    assert (again.online, again.offline, again.ttl) == (False, False, fv.ttl)
    assert isinstance(again.source, PushSource)
    assert [f.name for f in again.features] == ["amounts", "flag"]
    assert again.key_dtype("merchant_id") is String and again.key_dtype("user_id") is Int64

    plain = _view()
    assert FeatureView.from_dict(plain.to_dict(), {"user": _user()}) == plain
    assert FeatureView.from_dict(plain.to_dict(), {"user": _user()}).online is True


def test_projection_subset() -> None:
    fv = _view()
    sub = fv[["spend"]]
    assert sub is not fv and sub.name == fv.name
    assert [f.name for f in sub.projected_features] == ["spend"]
    assert [f.name for f in fv.projected_features] == ["count", "spend"]  # original untouched
    assert fv.projection.is_default() and not sub.projection.is_default()
    assert sub.projection_dict() == {"view": "tx_stats", "features": ["spend"]}
    assert sub != fv and sub.to_dict() == fv.to_dict()
    assert [f.name for f in fv["count"].projected_features] == ["count"]
    with pytest.raises(FeatureNotFound, match="'tx_stats' has no feature 'nope'"):
        fv[["spend", "nope"]]
    with pytest.raises(KeyError):
        fv[["nope"]]


def test_projection_with_name_and_join_key_map() -> None:
    fv = _view()
    aliased = fv.with_name("tx_other")
    assert aliased.name == "tx_stats" and aliased.projected_name == "tx_other"
    assert fv.projected_name == "tx_stats"
    mapped = fv.with_join_key_map({"user_id": "buyer_id"})
    assert mapped.entity_column("user_id") == "buyer_id"
    assert fv.entity_column("user_id") == "user_id"
    chained = fv[["count"]].with_name("b").with_join_key_map({"user_id": "seller_id"})
    assert chained.projection_dict() == {
        "view": "tx_stats",
        "alias": "b",
        "features": ["count"],
        "join_key_map": {"user_id": "seller_id"},
    }
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats'.*not join keys"):
        fv.with_join_key_map({"merchant_id": "x"})
    with pytest.raises(DefinitionError, match="alias name"):
        fv.with_name("bad name")


def test_feature_view_duplicate_field() -> None:
    with pytest.raises(DuplicateNameError, match="FeatureView 'tx_stats'.*field 'count'"):
        _view(schema=[Field(name="count", dtype=Int64), Field(name="count", dtype=Float32)])


def test_feature_view_duplicate_entities() -> None:
    with pytest.raises(DuplicateNameError, match="FeatureView 'tx_stats'.*entity 'user'"):
        _view(entities=[_user(), _user()])
    with pytest.raises(DuplicateNameError, match="FeatureView 'tx_stats'.*join key 'user_id'"):
        _view(entities=[_user(), Entity(name="buyer", join_keys=["user_id"])])


def test_feature_view_key_field_with_wrong_type() -> None:
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats'.*'user_id'.*entity 'user'"):
        _view(entities=[user], schema=[Field(name="user_id", dtype=String)])


@pytest.mark.parametrize("col", ["event_timestamp", "created"])
def test_feature_view_feature_named_like_timestamp(col: str) -> None:
    with pytest.raises(DefinitionError, match=f"FeatureView 'tx_stats'.*{col!r}"):
        _view(
            source=_src(created_timestamp_column="created"),
            schema=[Field(name=col, dtype=UnixTimestamp)],
        )


@pytest.mark.parametrize("ttl", [timedelta(seconds=-1), -5])
def test_feature_view_negative_ttl(ttl: object) -> None:
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats'.*negative"):
        _view(ttl=ttl)


def test_feature_view_ttl_wrong_type() -> None:
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats'.*ttl"):
        _view(ttl="1d")


def test_feature_view_source_without_timestamp_field() -> None:
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats'.*'tx'.*timestamp_field"):
        _view(source=FileSource(name="tx", path="data/tx.parquet"))
    pg = PostgreSQLSource(name="pg", table="t")
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats'.*'pg'.*timestamp_field"):
        _view(source=pg)
    push = PushSource(name="p", batch_source=FileSource(name="b", path="b.parquet"))
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats'.*'b'.*timestamp_field"):
        _view(source=push)


@pytest.mark.parametrize(
    "source",
    [None, "data/tx.parquet", RequestSource(name="req", schema=[Field(name="x", dtype=Int64)])],
    ids=["none", "str", "request"],
)
def test_feature_view_bad_source(source: object) -> None:
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats'.*source"):
        _view(source=source)


@pytest.mark.parametrize("entities", [None, [], ["user"]], ids=["none", "empty", "strings"])
def test_feature_view_bad_entities(entities: object) -> None:
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats'.*entities"):
        _view(entities=entities)


def test_feature_view_schema_must_hold_fields() -> None:
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats'.*Field"):
        _view(schema=["count"])


@pytest.mark.parametrize("name", ["", "has space", "9lives", None, "a/b"])
def test_feature_view_bad_name(name: object) -> None:
    with pytest.raises(DefinitionError, match="FeatureView name"):
        _view(name=name)  # type: ignore[arg-type]


# --- FeatureService ----------------------------------------------------------------------------


def test_feature_service_roundtrip() -> None:
    a, b = _view("a"), _view("b")
    svc = FeatureService(
        name="model",
        features=[a[["count"]], b.with_name("b2").with_join_key_map({"user_id": "other"}), b],
        description="d",
        tags={"t": "1"},
        owner="o",
    )
    d = svc.to_dict()
    assert d["features"] == [
        {"view": "a", "features": ["count"]},
        {"view": "b", "alias": "b2", "join_key_map": {"user_id": "other"}},
        {"view": "b"},
    ]
    again = FeatureService.from_dict(d, {"a": a, "b": b})
    assert again == svc
    assert [v.projected_name for v in again.feature_views] == ["a", "b2", "b"]
    assert [f.name for f in again.feature_views[0].projected_features] == ["count"]
    assert again.feature_views[1].entity_column("user_id") == "other"
    assert (again.description, again.tags, again.owner) == ("d", {"t": "1"}, "o")


def test_feature_service_from_dict_unknown_view() -> None:
    svc = FeatureService(name="model", features=[_view("a")])
    with pytest.raises(FeatureViewNotFound, match="'model'.*'a'") as info:
        FeatureService.from_dict(svc.to_dict(), {})
    assert isinstance(info.value, KeyError)


def test_feature_service_errors() -> None:
    v = _view("a")
    with pytest.raises(DefinitionError, match="FeatureService 'svc'.*at least one"):
        FeatureService(name="svc", features=[])
    with pytest.raises(DefinitionError, match="FeatureService 'svc'.*feature views"):
        FeatureService(name="svc", features=["a:count"])  # type: ignore[list-item]
    with pytest.raises(DefinitionError, match="FeatureService 'svc'.*'a' is listed twice"):
        FeatureService(name="svc", features=[v, v[["count"]]])
    FeatureService(name="svc", features=[v, v.with_name("a_again")])  # an alias makes it legal
    with pytest.raises(DefinitionError, match="FeatureService name"):
        FeatureService(name="", features=[v])


# --- cross-object checks (what `apply` and `load_repo` run) ------------------------------------


def test_repo_contents_collects_views_sources_and_services() -> None:
    user = _user()
    fv = _view(entities=[user])
    svc = FeatureService(name="svc", features=[fv[["count"]]])
    contents = RepoContents.from_objects([user, fv, svc, "not a definition", 42])
    assert list(contents.entities) == ["user"]
    assert list(contents.feature_views) == ["tx_stats"]
    assert list(contents.data_sources) == ["tx"]  # a view's source comes with it
    assert list(contents.feature_services) == ["svc"]
    records = contents.records()
    assert records["feature_views"]["tx_stats"] == fv.to_dict()
    assert records["entities"]["user"] == user.to_dict()


def test_same_object_twice_is_fine() -> None:
    user = _user()
    fv = _view(entities=[user])
    contents = RepoContents.from_objects([user, fv, fv, user, _user()])
    assert list(contents.feature_views) == ["tx_stats"]


def test_projected_view_next_to_its_view_is_not_a_duplicate() -> None:
    user = _user()
    fv = _view(entities=[user])
    contents = RepoContents.from_objects([user, fv, fv[["count"]], fv.with_name("alias")])
    assert list(contents.feature_views) == ["tx_stats"]
    assert contents.records()["feature_views"]["tx_stats"] == fv.to_dict()


@pytest.mark.parametrize(
    ("first", "second", "label"),
    [
        (Entity(name="user", join_keys=["a"]), Entity(name="user", join_keys=["b"]), "entities"),
        (
            FileSource(name="s", path="a.parquet", timestamp_field="ts"),
            FileSource(name="s", path="b.parquet", timestamp_field="ts"),
            "data sources",
        ),
    ],
)
def test_duplicate_names_across_objects(first: object, second: object, label: str) -> None:
    with pytest.raises(DuplicateNameError, match=f"two different {label} are named"):
        RepoContents.from_objects([first, second])


def test_duplicate_view_names() -> None:
    user = _user()
    a = _view(entities=[user])
    b = _view(entities=[user], schema=[Field(name="other", dtype=Int64)])
    with pytest.raises(DuplicateNameError, match="feature views are named 'tx_stats'"):
        RepoContents.from_objects([user, a, b])


def test_duplicate_service_names() -> None:
    user = _user()
    fv = _view(entities=[user])
    s1 = FeatureService(name="svc", features=[fv])
    s2 = FeatureService(name="svc", features=[fv[["count"]]])
    with pytest.raises(DuplicateNameError, match="feature services are named 'svc'"):
        RepoContents.from_objects([user, fv, s1, s2])


def test_two_views_sharing_a_source_name_differently() -> None:
    user = _user()
    a = _view("a", entities=[user], source=_src(timestamp_field="ts1"))
    b = _view("b", entities=[user], source=_src(timestamp_field="ts2"))
    with pytest.raises(DuplicateNameError, match="data sources are named 'tx'"):
        RepoContents.from_objects([user, a, b])


def test_feature_named_like_a_join_key() -> None:
    user = _user()
    merchant = Entity(name="merchant", join_keys=["merchant_id"])
    fv = _view(entities=[user], schema=[Field(name="merchant_id", dtype=Int64)])
    with pytest.raises(
        DefinitionError, match="FeatureView 'tx_stats': feature 'merchant_id'.*entity 'merchant'"
    ):
        RepoContents.from_objects([user, merchant, fv])


def test_view_with_unknown_entity() -> None:
    fv = _view()  # its entity `user` is not among the objects
    with pytest.raises(DefinitionError, match="FeatureView 'tx_stats' uses entity 'user'"):
        RepoContents.from_objects([fv])


def test_view_with_entity_defined_differently() -> None:
    fv = _view(entities=[Entity(name="user", join_keys=["uid"])])
    with pytest.raises(DefinitionError, match="'user'"):
        RepoContents.from_objects([_user(), fv])


def test_service_with_unknown_view() -> None:
    user = _user()
    fv = _view(entities=[user])
    svc = FeatureService(name="svc", features=[fv])
    with pytest.raises(DefinitionError, match="FeatureService 'svc' uses feature view 'tx_stats'"):
        RepoContents.from_objects([user, svc])


def test_errors_are_banquet_and_builtin_errors() -> None:
    with pytest.raises(BanquetError):
        Field(name="x", dtype=int)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Field(name="x", dtype=int)  # type: ignore[arg-type]
    assert issubclass(DuplicateNameError, DefinitionError)
    assert issubclass(FeatureNotFound, NotFoundError) and issubclass(FeatureNotFound, KeyError)
    # KeyError subclasses print their message without quotes
    assert str(FeatureNotFound("view 'a' has no feature 'b'")) == "view 'a' has no feature 'b'"


def test_service_projecting_a_feature_the_view_no_longer_has() -> None:
    user = _user()
    old = _view(entities=[user])
    svc = FeatureService(name="svc", features=[old[["spend"]]])
    new = _view(entities=[user], schema=[Field(name="count", dtype=Int64)])  # `spend` removed
    with pytest.raises(
        DefinitionError, match="FeatureService 'svc' uses feature 'spend'.*'tx_stats'"
    ):
        RepoContents.from_objects([user, new, svc])
