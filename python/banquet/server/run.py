"""``banquet serve``: the app on uvicorn (uvloop + httptools), one or more worker processes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from banquet.errors import ConfigError

_ENV = "BANQUET_SERVE_ARGS"  # how worker processes learn what the parent was asked to serve


def serve(
    repo_path: str | Path | None,
    fs_yaml_file: str | Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 6566,
    workers: int = 1,
    registry_ttl_sec: float | None = None,
    access_log: bool = False,
) -> None:
    try:
        import uvicorn
    except ImportError:
        raise ConfigError(
            "banquet serve needs the server extras: pip install 'banquet[server]'"
        ) from None
    args = {
        "repo_path": str(Path(repo_path).resolve()) if repo_path is not None else None,
        "fs_yaml_file": str(Path(fs_yaml_file).resolve()) if fs_yaml_file is not None else None,
        "registry_ttl_sec": registry_ttl_sec,
    }
    # Fail here, with a one-line error, on a bad config, missing tokens or an unreadable
    # registry, rather than in every worker.
    app = app_from_args(args)
    app.start()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "auto",  # uvloop and httptools when installed (the server extras)
        "http": "auto",
        "access_log": access_log,
        "log_level": "info",
        "lifespan": "on",
    }
    if workers > 1:
        app.stop()
        os.environ[_ENV] = json.dumps(args)
        uvicorn.run("banquet.server.run:app_from_env", factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, **options)


def app_from_args(args: dict[str, Any]) -> Any:
    from banquet.server.app import create_app

    return create_app(
        args["repo_path"], args["fs_yaml_file"], registry_ttl_sec=args["registry_ttl_sec"]
    )


def app_from_env() -> Any:
    """The factory each worker process calls (uvicorn imports it by name)."""
    return app_from_args(json.loads(os.environ[_ENV]))
