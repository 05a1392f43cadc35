"""The feature server: Feast's HTTP endpoints over a :class:`~banquet.FeatureStore`.

``banquet serve`` runs it; ``create_app(repo_path)`` returns the ASGI app for any ASGI server.
Modules: ``app`` (ASGI, routing, auth and metrics hooks), ``routes`` (the endpoints),
``payload`` (request parsing), ``encode`` (response JSON), ``errors`` (status codes),
``auth``, ``metrics``, ``refresher`` (background registry reads), ``openapi``, ``run``.
"""

from __future__ import annotations

from banquet.server.app import FeatureServer, create_app

__all__ = ["FeatureServer", "create_app"]
