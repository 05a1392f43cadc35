"""``banquet audit``: does the online store hold what the offline data says it should?

For each online feature view: the instant the online store claims to be current for is the
view's materialization watermark (the end of its latest materialized interval, from the
registry). A sample of entity keys is drawn from the offline rows inside the materialized
intervals; for each key the online row (values and event time) is read and decoded, and the
offline point-in-time value at the watermark is computed by ``get_historical_features`` (the
join training sets use, with the view's ttl). Every feature whose values differ is reported
with a reason:

* ``stale``: the online row's event time is older than the offline row at the watermark (a
  materialization lost, or an older value written over the newer one);
* ``missing``: the offline side has a value, the online store has no row for the key (or
  only one older than the ttl at the watermark);
* ``different``: the online row is not older than the offline one, yet the values differ
  (same event time and other bytes, or an online row the offline data does not have);
* ``newer_online``: the online row's event time is past the watermark (written by a push,
  ``write_to_online_store`` or stream ingestion since). Such a row is compared with the
  offline value at its own event time: equal (the push went to the offline store as well)
  is clean; otherwise the difference is reported as ``newer_online`` and, by default, is
  not an error: an online-only push is a legitimate way to serve fresher values than any
  batch source has. ``strict=True`` (``--strict``) makes it one.

The report is typed (``AuditReport``); ``banquet audit`` prints it as a table or ``--json``
and exits 1 when it holds an error.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from banquet import _core
from banquet.errors import InvalidArgument

if TYPE_CHECKING:
    from banquet.feature_view import FeatureView
    from banquet.store import FeatureStore

STALE = "stale"
MISSING = "missing"
DIFFERENT = "different"
NEWER_ONLINE = "newer_online"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ROW = "__banquet_audit_row"  # entity_df column keeping the sample's order through the join
US = pa.timestamp("us", tz="UTC")


def _dt(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True)
class Difference:
    """One feature of one key whose online value is not the offline one."""

    view: str
    key: dict[str, Any]
    feature: str
    online_value: Any
    offline_value: Any
    reason: str  # STALE, MISSING, DIFFERENT or NEWER_ONLINE
    online_ts: datetime | None  # the online row's event time (None: no row)
    offline_ts: datetime | None  # the offline row's event time where known
    error: bool  # counts against the audit (newer_online only under strict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "key": {k: _json(v) for k, v in self.key.items()},
            "feature": self.feature,
            "online_value": _json(self.online_value),
            "offline_value": _json(self.offline_value),
            "reason": self.reason,
            "online_ts": _json(self.online_ts),
            "offline_ts": _json(self.offline_ts),
            "error": self.error,
        }


@dataclass(frozen=True)
class ViewAudit:
    """What was checked for one view: its watermark and how many keys (``skipped`` says why
    a view was not checked)."""

    view: str
    watermark: datetime | None
    keys_checked: int
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "watermark": _json(self.watermark),
            "keys_checked": self.keys_checked,
            "skipped": self.skipped,
        }


@dataclass
class AuditReport:
    views: list[ViewAudit] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    @property
    def errors(self) -> list[Difference]:
        return [d for d in self.differences if d.error]

    @property
    def ok(self) -> bool:
        """No difference that counts as an error: the exit status of ``banquet audit``."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "views": [v.to_dict() for v in self.views],
            "differences": [d.to_dict() for d in self.differences],
        }

    def to_table(self) -> str:
        """A readable report: one line per view, then one per difference."""
        lines = []
        for v in self.views:
            mark = f"skipped: {v.skipped}" if v.skipped else f"{v.keys_checked} keys"
            wm = v.watermark.isoformat() if v.watermark else "-"
            lines.append(f"{v.view}: watermark {wm}, {mark}")
        if not self.differences:
            lines.append("no differences")
            return "\n".join(lines)
        head = ("view", "key", "feature", "online", "offline", "reason")
        rows = [
            (
                d.view,
                ",".join(f"{k}={v!r}" for k, v in d.key.items()),
                d.feature,
                _cell(d.online_value, d.online_ts),
                _cell(d.offline_value, d.offline_ts),
                d.reason + ("" if d.error else " (not an error)"),
            )
            for d in self.differences
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines.append("")
        for r in [head, *rows]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        n, e = len(self.differences), len(self.errors)
        lines.append(f"\n{n} difference(s), {e} error(s)")
        return "\n".join(lines)


def _cell(value: Any, ts: datetime | None) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return text if ts is None else f"{text} @ {ts.isoformat()}"


def _json(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, list):
        return [_json(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    return v


def _same(a: Any, b: Any) -> bool:
    """Equality as stored: NaN equals NaN (the codec keeps NaNs), lists element-wise."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def audit(
    store: FeatureStore,
    sample: int = 100,
    views: list[str] | None = None,
    seed: int | None = 0,
    strict: bool = False,
) -> AuditReport:
    """Compare a sample of ``sample`` keys per online view (``views``: these only) between
    the online store and the offline point-in-time values at the view's watermark.
    ``seed`` makes the sample repeatable (None: a fresh one each run)."""
    if sample < 1:
        raise InvalidArgument(f"audit: sample must be at least 1, got {sample}")
    catalog = store.catalog()
    if views:
        chosen = [catalog.get("feature_views", n) for n in views]
        for v in chosen:
            if not v.online:
                raise InvalidArgument(
                    f"audit: feature view {v.name!r} has online=False; there is no online "
                    "value to audit (leave it out of --views)"
                )
    else:
        chosen = [v for v in catalog.feature_views.values() if v.online]
    # fresh, not the cached catalog: another process may have just materialized
    recorded = store.registry.read(store.project)["materializations"]
    report = AuditReport()
    rng = random.Random(seed)
    for view in sorted(chosen, key=lambda v: v.name):
        intervals = recorded.get(view.name) or []
        if not intervals:
            report.views.append(ViewAudit(view.name, None, 0, "never materialized"))
            continue
        _audit_view(store, view, intervals, sample, rng, strict, report)
    return report


def _audit_view(
    store: FeatureStore,
    view: FeatureView,
    intervals: list[list[int]],
    sample: int,
    rng: random.Random,
    strict: bool,
    report: AuditReport,
) -> None:
    from banquet.offline.base import view_rows

    lo = min(a for a, _ in intervals)
    watermark = max(b for _, b in intervals)
    # keys only (no feature columns): the sample comes from rows inside the materialized span
    reader = store.offline_store.scan_view(view, [], lo, watermark)
    try:
        table = reader.read_all()
    finally:
        reader.close()
    rows = view_rows(view, table)
    in_span = [(a, b) for a, b in intervals]
    first = _core.latest_per_key(rows.keys, rows.event_ts, None, None, None)  # one per key
    ts = rows.event_ts.take(first).cast(pa.int64()).to_pylist()
    candidates = [
        int(i)
        for i, t in zip(first.to_pylist(), ts)
        if any(a <= t <= b for a, b in in_span)  # a key's latest row in the span suffices
    ]
    picked = rng.sample(sorted(candidates), min(sample, len(candidates)))
    # reported in key order: tuples of one view's key values compare (same types, no nulls)
    values = [k.take(pa.array(picked, pa.uint32())).to_pylist() for k in rows.keys]
    picked = [p for _, p in sorted(zip(zip(*values), picked))]
    idx = pa.array(picked, pa.uint32())
    keys = [k.take(idx) for k in rows.keys]
    report.views.append(ViewAudit(view.name, _dt(watermark), len(picked)))
    if not picked:
        return
    key_bytes = _core.serialize_entity_keys(view.join_keys, keys).to_pylist()
    key_dicts = [dict(zip(view.join_keys, vals)) for vals in zip(*[k.to_pylist() for k in keys])]

    names = [f.name for f in view.features]
    if view.is_aggregated:
        _audit_tiles(store, view, keys, key_bytes, key_dicts, watermark, report)
        return
    online_ts, online_vals = _read_online(store, view, key_bytes)
    ttl = view.ttl_us

    at_mark = _offline_at(store, view, keys, [watermark] * len(picked))
    mark_ts = _offline_event_times(store, view, keys, watermark)
    newer = [i for i, t in enumerate(online_ts) if t is not None and t > watermark]
    at_own: dict[int, list[Any]] = {}
    if newer:
        own = _offline_at(
            store,
            view,
            [k.take(pa.array(newer, pa.uint32())) for k in keys],
            [online_ts[i] for i in newer],  # type: ignore[misc]
        )
        at_own = {i: [col[j] for col in own] for j, i in enumerate(newer)}

    for i in range(len(picked)):
        ots = online_ts[i]
        if ots is not None and ttl is not None and ots < watermark - ttl:
            ots = None  # expired at the watermark: served as absent
        for f, name in enumerate(names):
            on = online_vals[f][i] if ots is not None else None
            if i in at_own:
                off = at_own[i][f]
                if not _same(on, off):
                    report.differences.append(
                        Difference(
                            view.name,
                            key_dicts[i],
                            name,
                            on,
                            off,
                            NEWER_ONLINE,
                            _dt(ots),
                            None,
                            strict,
                        )
                    )
                continue
            off = at_mark[f][i]
            if _same(on, off):
                continue
            fts = mark_ts[i]
            if ots is None:
                reason = MISSING
            elif fts is not None and ots < fts:
                reason = STALE
            else:
                reason = DIFFERENT
            report.differences.append(
                Difference(view.name, key_dicts[i], name, on, off, reason, _dt(ots), _dt(fts), True)
            )


def _audit_tiles(
    store: FeatureStore,
    view: FeatureView,
    keys: list[pa.Array],
    key_bytes: list[bytes],
    key_dicts: list[dict[str, Any]],
    watermark: int,
    report: AuditReport,
) -> None:
    """An aggregated view: the tiles read at the watermark against the historical join's
    aggregates there. A read at the watermark merges only tiles ending at or before it, so
    rows pushed since do not count: every difference is an error. Its reason: ``missing``
    when the key has no tiles; ``stale`` when the tiles' newest event time is older than the
    key's newest offline row at or before the watermark within the longest window (the
    tiles lack rows the source has: a materialization lost or older tiles written back);
    else ``different``."""
    from banquet.online.tiles import read_at

    stamps, online_vals = read_at(store, view, key_bytes, watermark)
    offline = _offline_at(store, view, keys, [watermark] * len(key_bytes))
    longest = max(a.window_us for a in view.aggregations)
    newest_offline = _offline_event_times(store, view, keys, watermark, longest)
    for i, stamp in enumerate(stamps):
        for f, feature in enumerate(view.features):
            on, off = online_vals[f][i], offline[f][i]
            if _same(on, off) or (stamp is None and on is None and off in (0, None)):
                continue
            # compensated sums and Welford's updates round differently on the two sides
            close = isinstance(on, float) and isinstance(off, float)
            if close and math.isclose(on, off, rel_tol=1e-12, abs_tol=1e-12):
                continue
            fts = newest_offline[i]
            if stamp is None:
                reason = MISSING
            elif fts is not None and stamp < fts:
                reason = STALE
            else:
                reason = DIFFERENT
            report.differences.append(
                Difference(
                    view.name,
                    key_dicts[i],
                    feature.name,
                    on,
                    off,
                    reason,
                    _dt(stamp),
                    _dt(fts),
                    True,
                )
            )


def _read_online(
    store: FeatureStore, view: FeatureView, key_bytes: list[bytes]
) -> tuple[list[int | None], list[list[Any]]]:
    """Per key: the online row's event time (UTC µs, None when absent) and, per feature, its
    value as served (documents parsed)."""
    blobs = store.online_store.read(store.project, [(view.storage_name, key_bytes)])[0]
    event_ts, _, columns = _core.decode_values(pa.array(blobs, pa.binary()), view.value_schema())
    stamps = event_ts.cast(pa.int64()).to_pylist()
    return stamps, [_served(view, f, col.to_pylist()) for f, col in zip(view.features, columns)]


def _served(view: FeatureView, f: Any, values: list[Any]) -> list[Any]:
    if f.dtype.document:
        from banquet.documents import decode

        return decode(f.dtype, values)
    return values


def _offline_at(
    store: FeatureStore, view: FeatureView, keys: list[pa.Array], at_us: list[int]
) -> list[list[Any]]:
    """Per feature, the point-in-time value of each key at its instant, through
    ``get_historical_features`` (ttl and tie rules of training sets)."""
    n = len(at_us)
    entity = pa.table(
        {
            **{k: arr for k, arr in zip(view.join_keys, keys)},
            "event_timestamp": pa.array(at_us, pa.int64()).cast(US),
            _ROW: pa.array(range(n), pa.int64()),
        }
    )
    refs = [f"{view.name}:{f.name}" for f in view.features]
    out = store.get_historical_features(entity, refs, full_feature_names=True).to_arrow()
    out = out.sort_by(_ROW)
    return [
        _served(view, f, out.column(f"{view.name}__{f.name}").to_pylist()) for f in view.features
    ]


def _offline_event_times(
    store: FeatureStore,
    view: FeatureView,
    keys: list[pa.Array],
    watermark: int,
    lookback_us: int | None = None,
) -> list[int | None]:
    """The event time of each key's latest offline row at the watermark (within
    ``lookback_us``, by default the ttl), for telling a stale online row from a different
    one."""
    from banquet.offline.base import view_rows

    lookback = view.ttl_us if lookback_us is None else lookback_us
    start = None if lookback is None else watermark - lookback
    reader = store.offline_store.scan_view(view, [], start, watermark, keys)
    try:
        table = reader.read_all()
    finally:
        reader.close()
    rows = view_rows(view, table)
    idx = _core.latest_per_key(rows.keys, rows.event_ts, rows.created_ts, start, watermark)
    found = _core.serialize_entity_keys(view.join_keys, [k.take(idx) for k in rows.keys])
    stamp = dict(zip(found.to_pylist(), rows.event_ts.take(idx).cast(pa.int64()).to_pylist()))
    wanted = _core.serialize_entity_keys(view.join_keys, keys).to_pylist()
    return [stamp.get(k) for k in wanted]
