"""The ``banquet`` command."""

from __future__ import annotations

import json
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from banquet.errors import BanquetError


class _Group(click.Group):
    """Turns banquet errors into one line on stderr and exit status 1 (traceback with -v)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # usage errors and --help: click reports them itself
        except BanquetError as e:
            _fail(ctx, str(e))
        except Exception as e:  # not expected: still one line unless --verbose
            _fail(ctx, f"{type(e).__name__}: {e} (run with --verbose for the traceback)")


def _fail(ctx: click.Context, message: str) -> None:
    if ctx.obj and ctx.obj.get("verbose"):
        traceback.print_exc()
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    click.secho(f"Error: {one_line}", fg="red", err=True)
    sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--chdir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="FEATURE_REPO_DIR_ENV_VAR",  # Feast's variable
    help="Feature repo folder (default: the folder of -f, else the current one; "
    "or $FEATURE_REPO_DIR_ENV_VAR).",
)
@click.option(
    "-f",
    "--feature-store-yaml",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="FEAST_FS_YAML_FILE_PATH",  # Feast's variable
    help="Path to feature_store.yaml (default: in the repo folder; or $FEAST_FS_YAML_FILE_PATH).",
)
@click.option("-v", "--verbose", is_flag=True, help="Print full tracebacks on errors.")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    default=None,
    help="Print log messages of this level and above (Feast's option; default: "
    "warnings and errors only).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    chdir: str | None,
    feature_store_yaml: str | None,
    verbose: bool,
    log_level: str | None,
) -> None:
    """banquet: define features once, train on history, serve online."""
    if log_level is not None:
        import logging

        logging.basicConfig(level=log_level.upper())
    ctx.obj = {
        "repo": Path(chdir) if chdir else None,
        "yaml": feature_store_yaml,
        "verbose": verbose,
    }


def _store(ctx: click.Context) -> Any:
    from banquet.store import FeatureStore

    return FeatureStore(repo_path=ctx.obj["repo"], fs_yaml_file=ctx.obj["yaml"])


@cli.command()
def version() -> None:
    """Print the banquet version."""
    from banquet import __version__

    click.echo(f"banquet {__version__}")


@cli.command()
@click.argument("name")
@click.option(
    "--template",
    "-t",
    type=click.Choice(["local", "postgres"]),
    default="local",
    show_default=True,
    help="local: Parquet + SQLite, no server. postgres: offline, online and registry in "
    "Postgres (connection from BANQUET_PG_* environment variables).",
)
@click.pass_context
def init(ctx: click.Context, name: str, template: str) -> None:
    """Create a working example feature repo in the folder NAME."""
    from banquet.templates import create_repo

    target = (ctx.obj["repo"] or Path(".")) / name
    create_repo(target, name, template)
    load = "python load_data.py && " if template == "postgres" else ""
    click.echo(
        f"Created feature repo {target}/ ({template} template). Next:\n"
        f"  cd {target} && {load}banquet apply"
    )


@cli.command()
@click.pass_context
def plan(ctx: click.Context) -> None:
    """Show what `apply` would change in the registry; change nothing."""
    click.echo(_store(ctx).plan().render())


@cli.command()
@click.pass_context
def apply(ctx: click.Context) -> None:
    """Register the repo's definitions (and remove those deleted from the code)."""
    store = _store(ctx)
    d = store.apply()
    click.echo(d.render() if d.empty else "Applied:\n" + d.render())
    # The hashes to pin where a process outside this repo must run them (`banquet functions`).
    odfvs = store.catalog().on_demand_feature_views
    for name in d.added.get("on_demand_feature_views", []) + list(
        d.changed.get("on_demand_feature_views", {})
    ):
        if name in odfvs:
            click.echo(f"  function of {name}: sha256 {odfvs[name].udf.sha256}")


@cli.command()
@click.pass_context
def functions(ctx: click.Context) -> None:
    """List the registered on-demand functions: hash, how it compares with the repo's
    definition, whether this process trusts it (and why)."""
    from banquet.trust import describe

    store = _store(ctx)
    rows = [("NAME", "SHA256", "REPO", "TRUSTED")]
    rows += describe(store.trust_policy, store.catalog().on_demand_feature_views)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[3]]))


@cli.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def teardown(ctx: click.Context, yes: bool) -> None:
    """Delete the project's online data and registry records (asks first when run at a
    terminal; scripts run it without asking, as Feast's does)."""
    store = _store(ctx)
    if not yes and sys.stdin.isatty():
        click.confirm(
            f"Delete all online data and registry records of project {store.project!r}?", abort=True
        )
    store.teardown()
    click.echo(f"Project {store.project!r} torn down.")


@cli.command("registry-dump")
@click.pass_context
def registry_dump(ctx: click.Context) -> None:
    """Print the project's registry as JSON."""
    click.echo(json.dumps(_store(ctx).registry_dump(), indent=2, sort_keys=True))


def _lister(kind: str, columns: list[tuple[str, Any]]) -> click.Command:
    @click.command("list")
    @click.pass_context
    def _list(ctx: click.Context) -> None:
        objs = getattr(_store(ctx), f"list_{kind}")()
        rows = [[h for h, _ in columns]] + [[str(get(o)) for _, get in columns] for o in objs]
        widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
        for r in rows:
            click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())

    _list.help = f"List the registered {kind.replace('_', ' ')}."
    return _list


def _describer(kind: str) -> click.Command:
    label = kind[:-1].replace("_", " ") if kind != "entities" else "entity"

    @click.command("describe")
    @click.argument("name")
    @click.pass_context
    def _describe(ctx: click.Context, name: str) -> None:
        import yaml

        store = _store(ctx)
        obj = store.catalog().get(kind, name)  # unknown name: a NotFoundError naming the known
        click.echo(yaml.safe_dump(obj.to_dict(), sort_keys=False, default_flow_style=False))

    _describe.help = f"Print the registered {label} NAME (its registry record, as YAML)."
    return _describe


_GROUPS = {
    "entities": [
        ("NAME", lambda o: o.name),
        ("JOIN KEY", lambda o: o.join_key),
        ("TYPE", lambda o: o.dtype or "-"),
        ("DESCRIPTION", lambda o: o.description),
    ],
    "feature_views": [
        ("NAME", lambda o: o.name),
        ("ENTITIES", lambda o: ",".join(e.name for e in o.entities)),
        ("FEATURES", lambda o: ",".join(f.name for f in o.features)),
        ("TTL", lambda o: o.ttl or "-"),
        ("ONLINE", lambda o: o.online),
    ],
    "on_demand_feature_views": [
        ("NAME", lambda o: o.name),
        ("MODE", lambda o: o.mode),
        (
            "SOURCES",
            lambda o: ",".join(getattr(s, "projected_name", s.name) for s in o.sources),
        ),
        ("FEATURES", lambda o: ",".join(f.name for f in o.features)),
    ],
    "feature_services": [
        ("NAME", lambda o: o.name),
        (
            "FEATURES",
            lambda o: ",".join(
                f"{v.projected_name}:{f.name}"
                for v in o.feature_views
                for f in v.projected_features
            ),
        ),
    ],
    "data_sources": [
        ("NAME", lambda o: o.name),
        ("KIND", lambda o: type(o).__name__),
        (
            "WHERE",
            lambda o: (
                getattr(o, "path", "") or getattr(o, "table", "") or getattr(o, "query", "") or "-"
            ),
        ),
    ],
}
for _kind, _cols in _GROUPS.items():
    _g = click.Group(_kind.replace("_", "-"), help=f"Inspect registered {_kind.replace('_', ' ')}.")
    _g.add_command(_lister(_kind, _cols))
    _g.add_command(_describer(_kind))
    cli.add_command(_g)


def _parse_time(value: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time such as 2024-01-31T00:00:00"
        ) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


@cli.command()
@click.argument("start")
@click.argument("end")
@click.option("--views", "-v", "views", multiple=True, help="Only this feature view (repeatable).")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace stored values even where they are newer (corrects future-dated values).",
)
@click.pass_context
def materialize(
    ctx: click.Context, start: str, end: str, views: tuple[str, ...], overwrite: bool
) -> None:
    """Load feature values with event times in [START, END] into the online store."""
    _store(ctx).materialize(
        _parse_time(start),
        _parse_time(end),
        feature_views=list(views) or None,
        progress=True,
        overwrite=overwrite,
    )


@cli.command("migrate-from-feast")
@click.argument("source", required=False)
@click.option(
    "--materialize",
    is_flag=True,
    help="Then load the online store up to now (Feast's online store is not read).",
)
@click.pass_context
def migrate_from_feast(ctx: click.Context, source: str | None, materialize: bool) -> None:
    """Import a Feast registry: SOURCE is its registry.db, sqlite:///PATH or a
    postgresql:// URL (default: this repo's registry path)."""
    from banquet.migrate.command import import_into, summary

    store = _store(ctx)
    click.echo(f"Imported from Feast: {summary(import_into(store, source))}")
    if materialize:
        store.materialize_incremental(datetime.now(timezone.utc), progress=True)


@cli.command("materialize-incremental")
@click.argument("end")
@click.option("--views", "-v", "views", multiple=True, help="Only this feature view (repeatable).")
@click.pass_context
def materialize_incremental(ctx: click.Context, end: str, views: tuple[str, ...]) -> None:
    """Load everything since each view's last materialization, up to END."""
    _store(ctx).materialize_incremental(
        _parse_time(end), feature_views=list(views) or None, progress=True
    )


@cli.command()
@click.option("--sample", default=100, show_default=True, help="Keys sampled per view.")
@click.option("--views", "-v", "views", multiple=True, help="Only this feature view (repeatable).")
@click.option("--seed", default=0, show_default=True, help="Seed of the key sample.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--strict", is_flag=True, help="Rows pushed past the watermark must match too.")
@click.pass_context
def audit(
    ctx: click.Context, sample: int, views: tuple[str, ...], seed: int, as_json: bool, strict: bool
) -> None:
    """Compare online values with the offline point-in-time values at each view's
    materialization watermark; exit 1 on a difference."""
    store = _store(ctx)
    try:
        report = store.audit(sample, list(views) or None, seed, strict)
    finally:  # connections closed here, not by the interpreter's exit (tests run it in-process)
        store.online_store.close()
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.to_table())
    if not report.ok:
        sys.exit(1)


# Feast's flags: -h is --host here (only --help shows the help), as in `feast serve`.
@cli.command(context_settings={"help_option_names": ["--help"]})
@click.option(
    "--host",
    "-h",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback by default; 0.0.0.0 listens on every interface).",
)
@click.option("--port", "-p", default=6566, show_default=True, type=int, help="Port.")
@click.option(
    "--type",
    "-t",
    "type_",
    default="http",
    show_default=True,
    type=click.Choice(["http"], case_sensitive=False),
    help="Server type (Feast's flag; only http is served).",
)
@click.option(
    "--workers",
    "-w",
    default=1,
    show_default=True,
    type=click.IntRange(-1),
    help="Worker processes (-1: one per CPU core).",
)
@click.option(
    "--registry-ttl-sec",
    "--registry_ttl_sec",
    "-r",
    "registry_ttl_sec",
    type=click.FloatRange(0),
    default=None,
    help="Seconds between background registry reads (default: "
    "feature_server.registry_ttl_sec, 5; 0 never re-reads).",
)
@click.option("--access-log", is_flag=True, help="Log every request (costs throughput).")
@click.option("--no-access-log", is_flag=True, help="No request log (the default).")
@click.option("--worker-connections", type=int, help="Accepted for Feast; uvicorn's default.")
@click.option("--max-requests", type=int, help="Accepted for Feast; workers are not recycled.")
@click.option("--max-requests-jitter", type=int, help="Accepted for Feast; no effect.")
@click.option("--keep-alive-timeout", type=int, help="Accepted for Feast; uvicorn's default.")
@click.option("--metrics", "-m", is_flag=True, help="Accepted for Feast: /metrics is always on.")
@click.option("--key", "-k", "tls_key", help="TLS key: not supported (use a TLS proxy).")
@click.option("--cert", "-c", "tls_cert", help="TLS certificate: not supported.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    type_: str,
    workers: int,
    registry_ttl_sec: float | None,
    access_log: bool,
    no_access_log: bool,
    worker_connections: int | None,
    max_requests: int | None,
    max_requests_jitter: int | None,
    keep_alive_timeout: int | None,
    metrics: bool,
    tls_key: str | None,
    tls_cert: str | None,
) -> None:
    """Run the feature server (Feast's HTTP endpoints) for this repo."""
    import os

    from banquet.server.run import serve as run

    if tls_key or tls_cert:
        raise click.UsageError(
            "TLS (--key/--cert) is not served by banquet; put a TLS-terminating proxy in front"
        )
    if workers == 0:
        raise click.BadParameter("0 workers; pass 1 or more, or -1 for one per CPU core")
    if workers == -1:
        workers = os.cpu_count() or 1

    run(
        ctx.obj["repo"],
        ctx.obj["yaml"],
        host=host,
        port=port,
        workers=workers,
        registry_ttl_sec=registry_ttl_sec,
        access_log=access_log and not no_access_log,
    )


@cli.command()
@click.option(
    "--views",
    "views",
    multiple=True,
    help="Stream feature view(s) to ingest (repeat, or comma-separated; default: every "
    "online StreamFeatureView).",
)
@click.option("--batch-rows", default=10_000, show_default=True, type=click.IntRange(1),
              help="Messages per micro-batch (one online write each).")  # fmt: skip
@click.option("--linger-ms", default=100, show_default=True, type=click.IntRange(0),
              help="Longest wait to fill a micro-batch.")  # fmt: skip
@click.option("--to", "to", type=click.Choice(["online", "online_and_offline"]),
              default="online", show_default=True,
              help="online_and_offline also appends each batch to the view's batch source.")  # fmt: skip
@click.option("--dlq-topic", default=None,
              help="Dead-letter topic (default: <topic>.banquet-dlq).")  # fmt: skip
@click.option("--no-dlq", is_flag=True, help="Log and skip bad messages instead of a DLQ.")
@click.option("--bootstrap-servers", default=None,
              help="Brokers to use instead of each KafkaSource's kafka_bootstrap_servers.")  # fmt: skip
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--metrics-port", default=8890, show_default=True, type=click.IntRange(0, 65535),
              help="Port of the Prometheus /metrics endpoint (0: none).")  # fmt: skip
@click.option("--log-interval", default=10.0, show_default=True, type=click.FloatRange(0),
              help="Seconds between progress lines on stderr (0: none).")  # fmt: skip
@click.pass_context
def ingest(
    ctx: click.Context,
    views: tuple[str, ...],
    batch_rows: int,
    linger_ms: int,
    to: str,
    dlq_topic: str | None,
    no_dlq: bool,
    bootstrap_servers: str | None,
    metrics_host: str,
    metrics_port: int,
    log_interval: float,
) -> None:
    """Consume the Kafka topics of stream feature views into the online store (runs until
    SIGTERM or Ctrl-C, which finish and commit the batch in hand)."""
    import signal
    import threading

    from banquet.stream.consumer import IngestOptions
    from banquet.stream.consumer import ingest as run

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    opts = IngestOptions(
        views=[n.strip() for v in views for n in v.split(",") if n.strip()],
        batch_rows=batch_rows,
        linger_ms=linger_ms,
        to=to,
        dlq_topic=dlq_topic,
        no_dlq=no_dlq,
        bootstrap_servers=bootstrap_servers,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        log_interval=log_interval,
    )
    unfinished = run(_store(ctx), opts, stop)
    if unfinished:
        raise click.ClickException(
            f"stopped with {unfinished} message(s) not written (the online store was failing); "
            "their offsets were not committed, so the next run reads them again"
        )


def main() -> None:
    cli(prog_name="banquet")


if __name__ == "__main__":
    main()
