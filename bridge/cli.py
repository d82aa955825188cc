"""Every command-line entry point: `bridge serve`, `bridge worker`, `bridge sandbox`, `bridge check`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask.cli import FlaskGroup

from .settings import Settings


def _create_app():
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False, load_dotenv=False)
def cli():
    """Receive shop, CRM and HR webhooks and turn them into LMS actions."""


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as error:
        raise click.UsageError(str(error)) from None


@cli.command(with_appcontext=False)
@click.option("--port", type=int, help="Port to listen on (default: $PORT or 8000).")
@click.option("--host", default=None, help="Address to bind (default: 127.0.0.1 embedded, 0.0.0.0 with REDIS_URL).")
def serve(port: int | None, host: str | None):
    """Run the bridge: with REDIS_URL only the receiver, without it everything embedded."""
    settings = _settings()
    port = port or settings.port
    if settings.redis_url:
        os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host or '0.0.0.0'}:{port}", "bridge:create_app()"])
    from .embedded import serve_embedded

    sys.exit(serve_embedded(settings, host or "127.0.0.1", port))


@cli.command(with_appcontext=False)
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool):
    """Run a worker that performs queued LMS actions (with RQ's scheduler, so retries fire)."""
    from rq import Queue, Worker

    from . import jobs
    from .errors import ConfigErrors
    from .redis_client import connect, redis_url

    settings = _settings()
    try:
        url = redis_url(settings)
    except RuntimeError as error:
        raise click.UsageError(str(error)) from None
    context = jobs.configure(settings)
    try:
        context.rules.get()
    except ConfigErrors as errors:
        click.echo(f"error: the rule files have errors:\n{errors.message}", err=True)
        sys.exit(1)
    connection = connect(url)
    queue = Queue(settings.queue_name, connection=connection)
    Worker([queue], connection=connection).work(burst=burst, with_scheduler=True, logging_level="INFO")


@cli.command(with_appcontext=False)
@click.option("--port", type=int, default=8001, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def sandbox(port: int, host: str):
    """Run the LMS sandbox alone (both LMS APIs, calls listed at /sandbox/calls)."""
    from werkzeug.serving import run_simple

    from .sandbox import create_sandbox_app

    click.echo(f"LMS sandbox on http://{host}:{port}/sandbox (calls: GET /sandbox/calls)")
    run_simple(host, port, create_sandbox_app(), threaded=True)


@cli.command(with_appcontext=False)
@click.argument("directory", required=False, type=click.Path(path_type=Path))
def check(directory: Path | None):
    """Check the rule files; print every error as file:line:column: message."""
    from .errors import ConfigErrors
    from .rules import load_rules

    directory = directory or _settings().rules_dir
    try:
        ruleset = load_rules(directory)
    except ConfigErrors as errors:
        for error in errors.errors:
            click.echo(error.message, err=True)
        click.echo(f"{len(errors.errors)} error(s) in {directory}", err=True)
        sys.exit(1)
    click.echo(
        f"ok: {len(ruleset.files)} file(s), {len(ruleset.sources)} source(s), "
        f"{len(ruleset.connections)} connection(s), {len(ruleset.rules)} rule(s); version {ruleset.version}"
    )


def main() -> None:
    """Run the `bridge` command."""
    cli(prog_name="bridge")
