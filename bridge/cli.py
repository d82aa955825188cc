"""Every command-line entry point: `bridge serve`, `bridge worker`, `bridge sandbox`, `bridge check`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import __version__
from .errors import BridgeError
from .settings import Settings, env_file_values


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bridge", message="%(prog)s %(version)s")
def cli():
    """Receive shop, CRM and HR webhooks and turn them into LMS actions."""


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as error:
        raise click.UsageError(str(error)) from None


@cli.command()
@click.option("--port", type=int, help="Port to listen on (default: $PORT or 8000).")
@click.option("--host", default=None, help="Address to bind (default: 127.0.0.1 embedded, 0.0.0.0 with REDIS_URL).")
def serve(port: int | None, host: str | None):
    """Run the bridge: with REDIS_URL only the receiver, without it everything embedded."""
    settings = _settings()
    port = port or settings.port
    if settings.redis_url:
        # A broken rule set stops here, before anything starts.
        _load(settings.rules_dir, env={**os.environ, **env_file_values(settings.env_file)})
        os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host or '0.0.0.0'}:{port}", "bridge:create_app()"])
    from .discovery import find_embedded
    from .embedded import embedded_env, refuse_public_demo_secrets, serve_embedded, with_rules

    found = find_embedded(settings)
    if found is not None and found.running:
        raise click.ClickException(f"an {found.describe()}: stop it first, or set BRIDGE_DATA_DIR to another folder")
    settings = with_rules(settings, os.environ)
    env = embedded_env(settings, port)
    _load(settings.rules_dir, env={**env, **env_file_values(Path(env["BRIDGE_ENV_FILE"]))})
    try:
        refuse_public_demo_secrets(host or "127.0.0.1", {**env, **env_file_values(Path(env["BRIDGE_ENV_FILE"]))})
        code = serve_embedded(settings, host or "127.0.0.1", port, env)
    except BridgeError as error:
        raise click.ClickException(error.message) from None
    sys.exit(code)


@cli.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool):
    """Run a worker that performs queued LMS actions (with RQ's scheduler, so retries fire)."""
    from .errors import ConfigErrors
    from .worker import run_worker

    settings = _settings()
    if not settings.redis_url:
        raise click.UsageError("REDIS_URL is not set: set it, or run `bridge serve` without it for the embedded mode")
    try:
        run_worker(settings, burst=burst)
    except ConfigErrors as errors:
        click.echo(f"error: the rule files have errors:\n{errors.message}", err=True)
        sys.exit(1)


@cli.command()
@click.option("--port", type=int, default=8001, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--state", type=click.Path(path_type=Path, dir_okay=False),
              help="Keep users, courses and enrolments in this file across restarts (default: in memory).")
def sandbox(port: int, host: str, state: Path | None):
    """Run the LMS sandbox alone (both LMS APIs, calls listed at /sandbox/calls)."""
    from werkzeug.serving import run_simple

    from .sandbox import create_sandbox_app
    from .sandbox_state import SandboxState

    click.echo(f"LMS sandbox on http://{host}:{port}/sandbox (calls: GET /sandbox/calls)")
    run_simple(host, port, create_sandbox_app(SandboxState(path=state)), threaded=True)


def _note(text: str | None) -> None:
    """Say once per command, on stderr, which embedded bridge it is about."""
    meta = click.get_current_context().meta
    if text and meta.get("bridge.note") != text:
        click.echo(text, err=True)
        meta["bridge.note"] = text


def _rules_and_env(directory: Path | None, stopped_too: bool = False) -> tuple[Path, dict]:
    """Return the rules folder and variables of a command: DIR, $RULES_DIR, the embedded bridge's here, or ./rules."""
    from .discovery import rules_and_env

    directory, env, note = rules_and_env(_settings(), os.environ, directory, stopped_too=stopped_too)
    _note(note)
    return directory, env


def _load(directory: Path | None, require_env: bool = True, env: dict | None = None, stopped_too: bool = False):
    from .errors import ConfigErrors
    from .rules import load_rules

    if env is None:
        directory, env = _rules_and_env(directory, stopped_too)
    try:
        return load_rules(directory, env, require_env=require_env)
    except ConfigErrors as errors:
        for error in errors.errors:
            click.echo(error.message, err=True)
        for warning in errors.warnings:
            click.echo(warning.line, err=True)
        click.echo(f"{len(errors.errors)} error(s) in {directory}", err=True)
        unset = sum("environment variable" in error.reason for error in errors.errors)
        if unset:
            click.echo(f"({unset} of them: variables the bridge reads its secrets from are not set; set them, "
                       "or add --allow-unset-env to check the files alone)", err=True)
        sys.exit(1)


@cli.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--allow-unset-env", is_flag=True, help="Do not report ${VARIABLES} that are unset (checking files, not a deploy).")
@click.option("--strict", is_flag=True, help="Fail on warnings too (likely mistakes that do not stop the rules loading).")
def check(directory: Path | None, allow_unset_env: bool, strict: bool):
    """Check the rule files; print every error and warning as file:line:column: message, with the fix."""
    directory, env = _rules_and_env(directory)
    ruleset = _load(directory, require_env=not allow_unset_env, env=env)
    for warning in ruleset.warnings:
        click.echo(warning.line, err=True)
    if strict and ruleset.warnings:
        click.echo(f"{len(ruleset.warnings)} warning(s) in {directory} (--strict fails on warnings)", err=True)
        sys.exit(1)
    if not ruleset.files:
        # A first deploy before any rule is written must not fail: say what that means instead.
        click.echo(f"ok: no rule files in {directory}: every /hooks/... URL answers 404 until you add some "
                   "(examples/rules/ has examples to copy)")
        return
    click.echo(
        f"ok: {len(ruleset.files)} file(s), {len(ruleset.sources)} source(s), "
        f"{len(ruleset.connections)} connection(s), {len(ruleset.rules)} rule(s); version {ruleset.version}"
        + (f"; {len(ruleset.warnings)} warning(s)" if ruleset.warnings else "")
    )


@cli.command("test")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--from-delivery", "delivery_id", metavar="ID",
              help="Print a tests: entry that pins down what the rules do with a stored delivery, instead of testing.")
def test_rules(directory: Path | None, delivery_id: str | None):
    """Run the tests written in the rule files, without Redis or any LMS."""
    from .ruletests import run_test

    ruleset = _load(directory, require_env=False, stopped_too=bool(delivery_id))
    if delivery_id:
        _print_test_entry(ruleset, delivery_id)
        return
    failed = 0
    for test in ruleset.tests:
        failures = run_test(ruleset, test)
        where = f"{test.file}:{test.line}"
        if failures:
            failed += 1
            click.echo(f"FAIL {where}: {test.name}")
            for failure in failures:
                click.echo(f"     {failure}")
        else:
            click.echo(f"ok   {where}: {test.name}")
    passed = len(ruleset.tests) - failed
    click.echo(f"{passed} passed, {failed} failed")
    untested = sorted(set(rule.name for rule in ruleset.rules) - _tested_rules(ruleset))
    if untested:
        click.echo(f"rules no test expects to match: {', '.join(untested)}")
    sys.exit(1 if failed else 0)


def _tested_rules(ruleset) -> set[str]:
    return {name for test in ruleset.tests for name in test.spec["expect"].get("rules", [])}


def _stored_delivery(delivery_id: str) -> dict:
    from .history import show as show_delivery

    record = show_delivery(_redis(_settings()), delivery_id)
    if record is None:
        raise click.UsageError(f"no delivery {delivery_id!r} (it may have expired; `bridge deliveries` lists them)")
    return record


def _print_test_entry(ruleset, delivery_id: str) -> None:
    from .ruletests import delivery_test, test_yaml

    record = _stored_delivery(delivery_id)
    if record["source"] not in ruleset.sources:
        raise click.UsageError(f"source {record['source']!r} of delivery {delivery_id} is not declared in the rule files")
    click.echo("# paste under tests: in a rule file (secrets in the stored body were replaced by [redacted])")
    click.echo(test_yaml(delivery_test(ruleset, record)), nl=False)


@cli.command()
@click.argument("source", required=False)
@click.argument("payload", type=click.File("rb"), required=False)
@click.option("--header", "-H", "headers", multiple=True, help="A header as 'Name: value' (repeatable).")
@click.option("--event", help="The event name, when the source reads it from a header you do not give.")
@click.option("--delivery", "delivery_id", metavar="ID", help="Use a stored delivery's event instead of SOURCE and PAYLOAD.")
@click.option("--step", "steps", multiple=True, metavar="NAME=FILE",
              help="What a step (as: NAME) answers, as a JSON file; lookup steps otherwise show as <steps.NAME...>.")
@click.option("--rules", "directory", type=click.Path(path_type=Path),
              help="Rules folder (default: $RULES_DIR, else the embedded bridge's here, else ./rules).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def simulate(source: str | None, payload, headers: tuple[str, ...], event: str | None, delivery_id: str | None,
             steps: tuple[str, ...], directory: Path | None, as_json: bool):
    """Show what each rule of SOURCE does with the webhook body in PAYLOAD (a file, or - for stdin).

    Exits 1 when a matched rule cannot render its actions (a missing field), naming the path that is missing.
    """
    import json

    from .errors import BridgeError
    from .ruletests import explain, sample_events, stored_event

    ruleset = _load(directory, require_env=False, stopped_too=bool(delivery_id))
    step_results = {}
    for step in steps:
        name, equals, filename = step.partition("=")
        try:
            step_results[name.strip()] = json.loads(Path(filename).read_text("utf-8"))
        except (OSError, ValueError) as error:
            raise click.BadParameter(f"{step!r}: {error if equals else 'expected NAME=FILE'}", param_hint="--step") from None
    if delivery_id:
        if source or payload:
            raise click.UsageError("give either --delivery or SOURCE and PAYLOAD")
        samples = [stored_event(_stored_delivery(delivery_id))]
    else:
        if not (source and payload):
            raise click.UsageError("give SOURCE and PAYLOAD (a file, or - for stdin), or --delivery ID")
        parsed = {}
        for header in headers:
            name, colon, value = header.partition(":")
            if not colon:
                raise click.BadParameter(f"{header!r} is not 'Name: value'", param_hint="--header")
            parsed[name.strip()] = value.strip()
        try:
            samples = sample_events(ruleset, source, raw=payload.read(), headers=parsed, event=event)
        except BridgeError as error:
            raise click.UsageError(error.message) from None
    explanations = [explain(ruleset, sample, step_results) for sample in samples]
    if as_json:
        click.echo(json.dumps([explanation.to_dict() for explanation in explanations], indent=2, default=str))
    else:
        if not samples:
            click.echo("the body holds no events")
        for explanation in explanations:
            _print_explanation(explanation)
    failed = [rule_run for explanation in explanations for rule_run in explanation.runs if rule_run.error]
    if failed:
        if not as_json:
            click.echo(f"{len(failed)} matched rule(s) cannot render their actions", err=True)
        sys.exit(1)


def _print_explanation(explanation) -> None:
    import json

    click.echo(f"source {explanation.event['source']}, event {explanation.event['event'] or '(none)'}")
    if not explanation.decisions:
        click.echo("  no rules for this source")
    runs = {rule_run.rule: rule_run for rule_run in explanation.runs}
    for decision in explanation.decisions:
        click.echo(f"  {'MATCH' if decision.matched else 'no   '} {decision.rule.name}: {decision.reason}")
        rule_run = runs.get(decision.rule.name)
        if rule_run and rule_run.error:
            click.echo(f"        error: {rule_run.error}")
        elif rule_run:
            for record in rule_run.run.records:
                if record.skipped:
                    click.echo(f"        skip {record.connection}.{record.action}: {record.skipped}")
                else:
                    click.echo(f"        {record.connection}.{record.action} {json.dumps(record.params, default=str)}")


def _redis(settings: Settings):
    """Return a Redis client: $REDIS_URL, else the Redis of the embedded bridge whose data folder is here."""
    from .discovery import embedded_redis
    from .redis_client import connect

    if settings.redis_url:
        return connect(settings.redis_url, settings)
    try:
        client, found = embedded_redis(settings)
    except BridgeError as error:
        raise click.ClickException(error.message) from None
    _note(found.describe())
    return client


def _when(text: str | None) -> float | None:
    from .history import parse_time

    try:
        return parse_time(text)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _stamp(seconds: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@cli.command()
@click.option("--status", type=click.Choice(["failed", "needs-attention", "held", "retrying", "running", "queued",
                                             "skipped", "succeeded", "unmatched"]))
@click.option("--source")
@click.option("--rule")
@click.option("--connection", "lms", help="An LMS connection name.")
@click.option("--subject", "--email", "subject", help="Who a delivery is about, usually an email.")
@click.option("--since", help="ISO time or age (30m, 2h, 7d).")
@click.option("--until", help="ISO time or age.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--refused", is_flag=True, help="List refused requests (401/4xx on a hook URL) instead, with a hint each.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def deliveries(status, source, rule, lms, subject, since, until, limit, refused, as_json):
    """List deliveries, newest first (or, with --refused, the requests a hook URL refused)."""
    from .history import Filters, find

    if refused:
        if status or rule or lms or subject or until:
            raise click.UsageError("--refused takes only --source, --since and --limit")
        _print_refused(source, _when(since), limit, as_json)
        return
    filters = Filters(status, source, rule, lms, subject, _when(since), _when(until))
    found = find(_redis(_settings()), filters, limit=limit)
    if _printed_as_json_or_none(found, as_json, "no deliveries match"):
        return
    click.echo(f"{'received (UTC)':19}  {'status':9}  {'source':12}  {'event':24}  {'rules':30}  id")
    for item in found:
        rules = ", ".join(item["matched"]) or "-"
        click.echo(f"{_stamp(item['received_at'])}  {item['status']:9}  {item['source'][:12]:12}  "
                   f"{(item['event'] or '-')[:24]:24}  {rules[:30]:30}  {item['id']}")


def _printed_as_json_or_none(found: list, as_json: bool, nothing: str) -> bool:
    """Print a listing as JSON, or say that it is empty; tell whether that was all there was to print."""
    import json

    if as_json:
        click.echo(json.dumps(found, indent=2))
    elif not found:
        click.echo(nothing)
    return as_json or not found


def _print_refused(source: str | None, since: float | None, limit: int, as_json: bool) -> None:
    from .console.refused import recent

    found = recent(_redis(_settings()), source, since, limit)
    if _printed_as_json_or_none(found, as_json, "no refused requests kept"):
        return
    for item in found:
        click.echo(f"{_stamp(item['at'])}  {item['status']}  {item['source']:12}  {item['reason']}")
        if item["hint"]:
            click.echo(f"{'':22}hint: {item['hint']}")


@cli.command()
@click.argument("delivery_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(delivery_id: str, as_json: bool):
    """Explain one delivery: timeline, rules and why, every LMS request and reply."""
    import json

    from .history import show as show_delivery

    record = show_delivery(_redis(_settings()), delivery_id)
    if record is None:
        click.echo(f"error: no delivery {delivery_id!r} (it may have expired)", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(record, indent=2, default=str))
        return
    click.echo(f"delivery {record['id']}: {record['status']}")
    click.echo(f"  source {record['source']}, event {record['event'] or '-'}, received {_stamp(record['received_at'])} UTC"
               + (f", {record['duplicates']} duplicate(s) dropped" if record["duplicates"] else "")
               + (f", replay of {record['replay_of']}" if record.get("replay_of") else ""))
    click.echo("rules:")
    for decision in record["decisions"] or [{"rule": "-", "matched": False, "reason": "no rule for this event"}]:
        click.echo(f"  {'MATCH' if decision['matched'] else 'no   '} {decision['rule']}: {decision['reason']}")
    click.echo("timeline:")
    for step in record["timeline"]:
        rest = {k: v for k, v in step.items() if k not in ("at", "status")}
        click.echo(f"  {_stamp(step['at'])}  {step['status']:10} {json.dumps(rest) if rest else ''}")
    click.echo("LMS requests:" if record["attempts"] else "LMS requests: none")
    for call in record["attempts"]:
        click.echo(f"  {_stamp(call['at'])}  {call['connection']}  {call['method']} {call['url']} -> {call['status']} ({call['seconds']}s)")
        click.echo(f"      sent:  {json.dumps(call['request'])}")
        click.echo(f"      reply: {json.dumps(call['reply'])}")


@cli.command()
@click.argument("ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Every failed job (narrow it with the options below).")
@click.option("--rule")
@click.option("--connection", "lms", help="An LMS connection name.")
@click.option("--since", help="Failed since: ISO time or age (30m, 2h, 7d).")
@click.option("--until", help="Failed until: ISO time or age.")
def retry(ids, all_failed, rule, lms, since, until):
    """Queue failed jobs again: by delivery or job id, or in bulk."""
    from .errors import NotFound
    from .recovery import failed_jobs, jobs_of, retry_job

    settings = _settings()
    connection = _redis(settings)
    if not ids and not (all_failed or rule or lms or since or until):
        raise click.UsageError("name deliveries or jobs, or choose failed jobs with --all-failed, --rule, --connection, --since, --until")
    try:
        job_ids = [job_id for item in ids for job_id in jobs_of(connection, item)]
    except NotFound as error:
        raise click.UsageError(error.message) from None
    if not ids:
        job_ids = [job.id for job in failed_jobs(connection, settings, rule, lms, _when(since), _when(until))]
    if not job_ids:
        click.echo("no failed jobs match")
        return
    for number, job_id in enumerate(job_ids, start=1):
        click.echo(f"[{number}/{len(job_ids)}] {retry_job(connection, settings, job_id)[1]}")


@cli.command()
@click.argument("delivery_id")
@click.option("--rules", "directory", type=click.Path(path_type=Path),
              help="Rules folder (default: $RULES_DIR, else the embedded bridge's here, else ./rules).")
@click.option("--allow-unset-env", is_flag=True, help="Do not stop at ${VARIABLES} unset here (the worker reads its own).")
def replay(delivery_id: str, directory: Path | None, allow_unset_env: bool):
    """Run a stored delivery through the current rules, as a new delivery."""
    import json

    from .errors import NotFound
    from .recovery import replay as replay_delivery

    settings = _settings()
    connection = _redis(settings)  # first: it says which bridge this is, or that there is none here
    ruleset = _load(directory, require_env=not allow_unset_env, stopped_too=True)
    try:
        outcome = replay_delivery(connection, settings, ruleset, delivery_id)
    except NotFound as error:
        click.echo(f"error: {error.message}", err=True)
        sys.exit(1)
    click.echo(json.dumps(outcome.to_dict(), indent=2))


from .lms.cli import lms as lms_commands  # noqa: E402 - mounted here so that `bridge lms ...` works

cli.add_command(lms_commands)


def main() -> None:
    """Run the `bridge` command."""
    cli(prog_name="bridge")
