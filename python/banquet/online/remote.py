"""``online_store: {type: remote, path: http://host:port}``: banquet as a client of a feature
server (banquet's ``banquet serve`` or Feast's ``feast serve``).

Reads go to the server's ``POST /get-online-features`` (Feast's request and response JSON);
the answer becomes an ordinary :class:`~banquet.serving.OnlineResponse` (values, statuses,
event times). The server's repo owns the data: this store creates, drops and writes nothing,
so materializing or pushing online through a remote store is a NotSupportedError naming
the server-side way (its ``/push``, ``/materialize``), and ``teardown`` leaves the server's
data alone."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from banquet.errors import NotSupportedError, StoreUnavailable
from banquet.online.base import OnlineStore

if TYPE_CHECKING:
    from banquet.config import RepoConfig
    from banquet.feature_service import FeatureService
    from banquet.feature_view import FeatureView
    from banquet.request import ResolvedRequest
    from banquet.serving import OnlineResponse


class RemoteOnlineStore(OnlineStore):
    def __init__(self, config: RepoConfig) -> None:
        super().__init__(config)
        cfg = config.online_store
        self.url = str(getattr(cfg, "path", "")).rstrip("/")
        self.timeout = float(getattr(cfg, "timeout_seconds", 10.0))
        cert = str(getattr(cfg, "cert", "") or "")
        self._ssl = ssl.create_default_context(cafile=cert) if cert else None

    # --- the server owns storage ------------------------------------------------------------

    def create_view(self, project: str, view: FeatureView) -> None:
        return None

    def ensure_view(self, project: str, view: FeatureView) -> None:
        self._refuse_write()

    def drop_view(self, project: str, view_name: str) -> None:
        return None

    def teardown(self, project: str) -> None:
        return None

    def write(self, project: str, view: str, batch: Any, *, overwrite: bool = False) -> None:
        self._refuse_write()

    def read(self, project: str, reads: Any) -> Any:
        raise NotSupportedError(
            "the remote online store is read through get_online_features (the server answers "
            "whole requests), not key by key"
        )

    def _refuse_write(self) -> None:
        raise NotSupportedError(
            f"online_store type 'remote' ({self.url}) writes nothing: push to the server "
            "(POST /push or /write-to-online-store) or materialize in the server's repo "
            "(`banquet materialize-incremental` there, or POST /materialize-incremental)"
        )

    # --- reads --------------------------------------------------------------------------

    def get_online_features(
        self,
        request: ResolvedRequest,
        features: Sequence[str] | FeatureService,
        entity_rows: Any,
        full_feature_names: bool,
    ) -> OnlineResponse:
        """One request to the server; the answer in banquet's column order (entity columns,
        then the features as requested) with Map / Json / Struct values as Python objects
        (the registry's types say which)."""
        from banquet.documents import normalize
        from banquet.feature_service import FeatureService
        from banquet.serving import OnlineResponse, entity_columns

        body: dict[str, Any] = {
            "entities": entity_columns(entity_rows),
            "full_feature_names": full_feature_names,
        }
        if isinstance(features, FeatureService):
            body["feature_service"] = features.name
        else:
            body["features"] = [features] if isinstance(features, str) else list(features)
        doc = self._post("/get-online-features", body)
        try:
            names = list(doc["metadata"]["feature_names"])
            results = doc["results"]
            columns = {n: list(r["values"]) for n, r in zip(names, results)}
            rows = [
                ([n], list(r["statuses"]), [_us(t) for t in r["event_timestamps"]])
                for n, r in zip(names, results)
            ]
        except (KeyError, TypeError) as e:
            raise StoreUnavailable(
                f"feature server {self.url} answered with JSON that is not a "
                f"get-online-features response ({type(e).__name__}: {e})"
            ) from None
        wanted = set(request.names)
        order = [n for n in names if n not in wanted] + [n for n in request.names if n in columns]
        by_name = {r[0][0]: r for r in rows}
        documents = {
            name: f.dtype
            for g in request.groups
            for name, f in zip(g.names, g.features)
            if f.dtype.document and name in columns
        }
        for name, dtype in documents.items():
            columns[name] = normalize(dtype, columns[name])
        resp = OnlineResponse(
            {n: columns[n] for n in order},
            {},
            [by_name[n] for n in order],
        )
        resp.json_names = tuple(n for n, t in documents.items() if t.name == "json")
        return resp

    def _post(self, route: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.url + route,
            data=json.dumps(body, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            detail = e.read()[:500].decode(errors="replace")
            if e.code in (400, 404, 413, 422):
                from banquet.errors import BanquetError

                raise BanquetError(
                    f"feature server {self.url}{route} refused the request ({e.code}): {detail}"
                ) from None
            raise StoreUnavailable(
                f"feature server {self.url}{route} failed ({e.code}): {detail}"
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise StoreUnavailable(
                f"feature server {self.url} is unreachable ({reason}); check online_store.path "
                "and that the server runs"
            ) from None


def _us(stamp: Any) -> int | None:
    """An event time of the response (ISO text or seconds) as UTC microseconds; the epoch
    (Feast's "no time") as None."""
    if stamp is None:
        return None
    if isinstance(stamp, (int, float)):
        us = int(stamp * 1_000_000)
    else:
        text = str(stamp).replace("Z", "+00:00")
        dt = datetime.fromisoformat(text)
        us = int(dt.timestamp() * 1_000_000)
    return us or None
