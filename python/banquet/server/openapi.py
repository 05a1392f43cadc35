"""The OpenAPI 3.1 document served at ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_COLUMNS = {
    "type": "object",
    "description": "Column name -> list of values; every list has the same length.",
    "additionalProperties": {"type": "array", "items": {}},
}
_ERRORS = {
    str(code): {
        "description": text,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    for code, text in (
        (400, "Malformed JSON or an invalid request (the message names the field)"),
        (401, "Missing or invalid bearer token (when token auth is on)"),
        (404, "Unknown feature view, feature, feature service or push source"),
        (
            413,
            "Request body larger than feature_server.max_request_bytes, or more features or "
            "entity rows than feature_server.max_features_per_request / "
            "max_entities_per_request (TooManyFeatures, TooManyEntities)",
        ),
        (
            503,
            "A store or the registry cannot be reached, or every worker is busy (ServerBusy); "
            "retry later",
        ),
        (
            504,
            "No answer within feature_server.request_timeout_seconds (RequestTimeout), or a "
            "store timed out (StoreTimeout); retry later",
        ),
    )
}


def _post(summary: str, schema: str, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(schema)}},
            },
            "responses": {
                "200": ok or {"description": "Done (body: null)"},
                **_ERRORS,
            },
        }
    }


def document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "banquet feature server",
            "version": version,
            "description": "Feast-compatible HTTP API for online features.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["type", "message"],
                            "properties": {
                                "type": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "GetOnlineFeaturesRequest": {
                    "type": "object",
                    "required": ["entities"],
                    "properties": {
                        "features": {"type": "array", "items": {"type": "string"}},
                        "feature_service": {"type": "string"},
                        "entities": _COLUMNS,
                        "full_feature_names": {"type": "boolean", "default": False},
                    },
                    "description": "Give exactly one of features ('view:feature') or feature_service.",
                },
                "GetOnlineFeaturesResponse": {
                    "type": "object",
                    "properties": {
                        "metadata": {
                            "type": "object",
                            "properties": {
                                "feature_names": {"type": "array", "items": {"type": "string"}}
                            },
                        },
                        "results": {
                            "type": "array",
                            "description": "One per column: join keys first, then features in request order.",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "values": {"type": "array", "items": {}},
                                    "statuses": {
                                        "type": "array",
                                        "items": {
                                            "enum": [
                                                "PRESENT",
                                                "NULL_VALUE",
                                                "NOT_FOUND",
                                                "OUTSIDE_MAX_AGE",
                                            ]
                                        },
                                    },
                                    "event_timestamps": {
                                        "type": "array",
                                        "items": {"type": "string", "format": "date-time"},
                                    },
                                },
                            },
                        },
                    },
                },
                "PushRequest": {
                    "type": "object",
                    "required": ["push_source_name", "df"],
                    "properties": {
                        "push_source_name": {"type": "string"},
                        "df": _COLUMNS,
                        "to": {
                            "enum": ["online", "offline", "online_and_offline"],
                            "default": "online",
                        },
                        "overwrite": {"type": "boolean", "default": False},
                        "allow_registry_cache": {"type": "boolean"},
                        "transform_on_write": {"type": "boolean"},
                    },
                },
                "WriteToOnlineStoreRequest": {
                    "type": "object",
                    "required": ["feature_view_name", "df"],
                    "properties": {
                        "feature_view_name": {"type": "string"},
                        "df": _COLUMNS,
                        "overwrite": {"type": "boolean", "default": False},
                        "allow_registry_cache": {"type": "boolean"},
                        "transform_on_write": {"type": "boolean"},
                    },
                },
                "MaterializeRequest": {
                    "type": "object",
                    "required": ["start_ts", "end_ts"],
                    "properties": {
                        "start_ts": {"type": "string", "format": "date-time"},
                        "end_ts": {"type": "string", "format": "date-time"},
                        "feature_views": {"type": "array", "items": {"type": "string"}},
                        "overwrite": {"type": "boolean", "default": False},
                    },
                },
                "MaterializeIncrementalRequest": {
                    "type": "object",
                    "required": ["end_ts"],
                    "properties": {
                        "end_ts": {"type": "string", "format": "date-time"},
                        "feature_views": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/get-online-features": _post(
                "Latest feature values for entity rows",
                "GetOnlineFeaturesRequest",
                {
                    "description": "Values, statuses and event times, column-major",
                    "content": {"application/json": {"schema": _ref("GetOnlineFeaturesResponse")}},
                },
            ),
            "/push": _post("Write rows to the views a push source feeds", "PushRequest"),
            "/write-to-online-store": _post(
                "Write rows to one feature view's online store", "WriteToOnlineStoreRequest"
            ),
            "/materialize": _post(
                "Load [start_ts, end_ts] into the online store", "MaterializeRequest"
            ),
            "/materialize-incremental": _post(
                "Load everything since the last materialization", "MaterializeIncrementalRequest"
            ),
            "/health": {
                "get": {
                    "summary": "Liveness, no I/O: 200 while the registry is readable, 503 "
                    "when its background refreshes fail (serving goes on)",
                    "security": [],
                    "responses": {"200": {"description": "Healthy"}, "503": _ERRORS["503"]},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: 200 when the registry is current and the online store "
                    "answers a point lookup within 1 s, else 503 (the body names no address)",
                    "security": [],
                    "responses": {"200": {"description": "Ready"}, "503": _ERRORS["503"]},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text format 0.0.4)",
                    "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}},
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}
            },
        },
    }
