"""`bridge lms`: check a connection of the rule files and look at what its LMS holds, for people writing rules."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from bridge.discovery import embedded_redis, rules_and_env
from bridge.errors import BridgeError, ConfigErrors
from bridge.lms import LMSAuthError, LMSError, build_connector
from bridge.lms.base import Connector, find_value
from bridge.rules import Connection, load_rules
from bridge.settings import Settings


@click.group()
def lms():
    """Check LMS connections and look up courses, users and learners."""


def common(command=None, *, shared: bool = False):
    """Give a command the CONN argument and the --rules and --json options, and turn LMS errors into exit 1.

    A `shared` command writes what the workers read (the identity map), so it always works on the bridge's
    Redis: REDIS_URL, else the embedded mode's in the data folder.
    """
    if command is None:
        return functools.partial(common, shared=shared)

    @click.argument("conn", metavar="CONN")
    @click.option("--rules", "rules_dir", type=click.Path(path_type=Path, file_okay=False),
                  help="Folder of rule files (default: $RULES_DIR, else the running embedded bridge's, else ./rules).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
    @functools.wraps(command)
    def run(conn: str, rules_dir: Path | None, as_json: bool, **kwargs):
        connection, connector, redis = open_connector(conn, rules_dir, shared)
        try:
            with connector:
                command(connector, as_json=as_json, **kwargs)
        except LMSError as error:
            fail(connection, error, as_json)
        except BridgeError as error:  # Redis failing under the token or the identity map
            raise click.ClickException(error.message) from None
        finally:
            if redis is not None:
                redis.close()
    return run


def open_connector(conn: str, rules_dir: Path | None, shared: bool = False) -> tuple[Connection, Connector, object]:
    """Build the connector of a connection declared in the rule files, on Redis when REDIS_URL is set or `shared`."""
    try:
        settings = Settings.from_env()
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    directory, env, embedded = rules_and_env(settings, os.environ, rules_dir)
    if embedded:
        click.echo(embedded, err=True)  # the embedded bridge running here: its rules, demo settings and Redis
    try:
        connections = load_rules(directory, env).connections
    except ConfigErrors as errors:
        raise click.ClickException(f"the rule files in {directory} have errors:\n{errors.message}") from None
    if conn not in connections:
        known = ", ".join(sorted(connections)) or "none"
        raise click.UsageError(f"no connection {conn!r} in {directory} (known: {known})")
    redis = None
    if settings.redis_url:
        from bridge.redis_client import connect

        redis = connect(settings.redis_url)  # shares tokens and the identity map with the workers
    elif shared or embedded:
        try:
            redis = embedded_redis(settings)[0]
        except BridgeError as error:
            raise click.ClickException(error.message) from None
    connection = connections[conn]
    timeouts = (settings.lms_connect_timeout, settings.lms_read_timeout)
    return connection, build_connector(conn, connection.spec, redis=redis, timeouts=timeouts), redis


def fail(connection: Connection, error: LMSError, as_json: bool):
    """Report an LMS error (as JSON on stdout with --json) and exit 1."""
    if as_json:
        click.echo(json.dumps({"ok": False, **error.to_dict()}, indent=2))
    else:
        click.echo(f"error: {error}", err=True)
        if isinstance(error, LMSAuthError):
            click.echo(f"check the credentials of connection {connection.name!r} "
                       f"({connection.file}:{connection.line})", err=True)
    sys.exit(1)


def needs(connector: Connector, action: str, what: str) -> None:
    """Refuse a command whose action this LMS's API does not have."""
    if action not in connector.actions:
        raise click.ClickException(f"{connector.type} connection {connector.name!r} cannot {what}: "
                                   f"its API has no call for that")


def show(value, as_json: bool, text: str) -> None:
    """Print JSON or the readable text."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str) if as_json else text)


def cell(value) -> str:
    """Render one table cell on one line."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return " ".join(text.split())


def table(headers: list[str], rows: list[list]) -> str:
    """Lay rows out in aligned columns under upper-case headers."""
    rows = [[cell(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[index]) for row in rows)]) for index, header in enumerate(headers)]
    lines = [[header.upper() for header in headers], *rows]
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in lines)


@lms.command()
@common
def ping(connector: Connector, as_json: bool):
    """Check that CONN's LMS answers and accepts its credentials."""
    result = {"connection": connector.name, "type": connector.type, "url": connector.url, **connector.ping()}
    said = f"; it said {result['said']!r} to a probe" if result.get("said") else ""
    show(result, as_json, f"ok: {connector.type} connection {connector.name!r} at {connector.url} "
                          f"accepted its credentials{said}")


@lms.command()
@common
def courses(connector: Connector, as_json: bool):
    """List the courses of CONN's LMS."""
    needs(connector, "list_courses", "list courses")
    found = connector.perform("list_courses", {})["courses"]
    rows = [[find_value(course, ("id", "_id")), find_value(course, ("title", "name"))] for course in found]
    show(found, as_json, table(["id", "title"], rows) + f"\n{len(found)} course(s)")


@lms.command()
@common
@click.argument("who", metavar="ID_OR_EMAIL")
def user(connector: Connector, as_json: bool, who: str):
    """Show one user of CONN's LMS, by id or by an email the bridge has learnt."""
    by = "email" if "@" in who else connector.id_param
    result = connector.perform("get_user", {by: who})
    details = result.get("user") if isinstance(result.get("user"), dict) else {}
    text = table(["field", "value"], [[key, value] for key, value in details.items()])
    if "courses" in result:
        permissions = [[course, "all" if access == "all" else ", ".join(access)]
                       for course, access in result["courses"].items()]
        text += "\n\n" + (table(["course", "access"], permissions) if permissions else "no course access")
    show(result, as_json, text)


@lms.command()
@common
@click.argument("course", metavar="COURSE")
def learners(connector: Connector, as_json: bool, course: str):
    """List the learners of a course of CONN's LMS (and teach the bridge their emails)."""
    needs(connector, "course_learners", "list a course's learners")
    result = connector.perform("course_learners", {"course_id": course})
    rows = [[find_value(item, ("userId", "user.id", "id")), find_value(item, ("email", "user.email")),
             find_value(item, ("fullName", "user.fullName")) or " ".join(
                 str(find_value(item, (key, f"user.{key}")) or "") for key in ("firstName", "lastName")).strip()]
            for item in result["learners"]]
    show(result, as_json, table(["id", "email", "name"], rows) + f"\n{len(rows)} learner(s) in course {course}")


@lms.command()
@common(shared=True)
@click.option("--max-courses", type=click.IntRange(1), help="Read at most this many courses (default: all).")
def sync(connector: Connector, as_json: bool, max_courses: int | None):
    """Learn the id of everyone CONN's LMS shows (course learners and administrators), with progress.

    Run it once after connecting an account that already has learners, so that their first purchase
    finds their account instead of needing attention.
    """
    from bridge.lms.coursebox import Coursebox

    if not isinstance(connector, Coursebox):
        raise click.ClickException(f"{connector.type} connection {connector.name!r} cannot be synced: its API lists "
                                   "no users (ids are learnt from create_user and get_user; link others with "
                                   f"`bridge lms link {connector.name} EMAIL USER_ID`)")

    def progress(number: int, total: int, course, people: int) -> None:
        if not as_json:
            title = find_value(course, ("title", "name")) or ""
            click.echo(f"[{number}/{total}] course {find_value(course, ('id', '_id'))} {title}: {people} people")

    report = connector.directory.scan(progress=progress, max_courses=max_courses, force=True)
    known = len(connector.identities.all())
    summary = {"connection": connector.name, **report.to_dict(), "known": known}
    show(summary, as_json, f"learned {len(report.learned)} id(s) from {report.courses} of {report.total_courses} "
                           f"course(s): {report.new} new, {report.changed} changed, {report.dropped} dropped because "
                           f"the LMS shows their id under another email; {known} known for {connector.name!r} now")


@lms.command()
@common(shared=True)
@click.argument("email", metavar="EMAIL")
@click.argument("user_id", metavar="USER_ID")
def link(connector: Connector, as_json: bool, email: str, user_id: str):
    """Tell the bridge that EMAIL is user USER_ID of CONN's LMS (checked with the LMS first)."""
    if "@" not in email:
        raise click.BadParameter(f"{email!r} is not an email", param_hint="EMAIL")
    said = connector.perform("get_user", {connector.id_param: user_id}).get("email")
    if said is not None and str(said).strip().lower() != email.strip().lower():
        raise click.ClickException(f"user {user_id} of {connector.name!r} is {said}, not {email}: nothing linked")
    connector.identities.remember(email, user_id)
    warning = "" if said is not None else " (the LMS's reply names no email to check it against)"
    show({"connection": connector.name, "email": email, "user_id": user_id, "checked": said is not None}, as_json,
         f"linked {email} to user {user_id} of {connector.name!r}{warning}; retry what waited for it: "
         f"`bridge deliveries --status needs-attention --email {email}`, then `bridge retry DELIVERY`")
