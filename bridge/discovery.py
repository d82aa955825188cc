"""Which bridge a command in a terminal is about: REDIS_URL's, or the embedded one whose data folder is here."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import BridgeError
from .settings import Settings, env_file_values

RECORD = "serve.json"  # written into the data folder by `bridge serve` in embedded mode


class NoBridgeHere(BridgeError):
    """A command needs the embedded bridge's data and there is none where it looked."""

    status = 404


@dataclass(frozen=True)
class EmbeddedBridge:
    """What a data folder says about the embedded bridge that uses it."""

    data_dir: Path
    running: bool
    pid: int | None = None
    url: str | None = None
    rules_dir: Path | None = None
    redis_url: str | None = None
    demo: tuple[str, ...] = ()
    env_file: Path | None = None

    def describe(self) -> str:
        """Say in one line which embedded bridge this is and whether it runs."""
        rules = f"rules {self.rules_dir}; " if self.rules_dir else ""
        if self.running:
            return f"embedded bridge running here: pid {self.pid}, {self.url}; {rules}data {self.data_dir}"
        return f"embedded bridge not running; reading its data in {self.data_dir} ({rules.rstrip('; ') or 'no rules recorded'})"

    def env(self, environ) -> dict:
        """Return the variables its rule files are loaded with: this terminal's, the demo values it used, its env file's."""
        from .embedded import demo_env

        demo = demo_env(self.url) if self.url else {}
        return {**environ, **{name: demo[name] for name in self.demo if name in demo}, **env_file_values(self.env_file)}


def write_record(settings: Settings, url: str, redis_url: str, demo: list[str], env_file: str) -> None:
    """Record, in the data folder, how the embedded bridge runs (never a secret): for commands in other terminals."""
    record = {"pid": os.getpid(), "url": url, "rules_dir": str(settings.rules_dir.resolve()), "redis_url": redis_url,
              "demo": sorted(demo), "env_file": env_file, "started_at": time.time()}
    _write(settings.data_dir / RECORD, record)


def mark_stopped(settings: Settings) -> None:
    """Note in the record that the embedded bridge stopped (its rules folder stays known)."""
    path = settings.data_dir / RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    _write(path, {**record, "stopped_at": time.time()})


def _write(path: Path, record: dict) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def find_embedded(settings: Settings) -> EmbeddedBridge | None:
    """Return the embedded bridge whose data folder the settings name, None when that folder does not exist."""
    data_dir = settings.data_dir.resolve()
    if not data_dir.is_dir():
        return None
    try:
        record = json.loads((data_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    pid = record.get("pid")
    url = record.get("redis_url") or ""
    # A crashed serve leaves its record behind, and its pid may be another process's by now: its Redis socket is gone.
    socket_there = not url.startswith("unix://") or Path(url.removeprefix("unix://").split("?")[0]).exists()
    running = isinstance(pid, int) and "stopped_at" not in record and _alive(pid) and socket_there
    return EmbeddedBridge(
        data_dir=data_dir, running=running, pid=pid, url=record.get("url"),
        rules_dir=Path(record["rules_dir"]) if record.get("rules_dir") else None,
        redis_url=record.get("redis_url"), demo=tuple(record.get("demo", ())),
        env_file=Path(record["env_file"]) if record.get("env_file") else None,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rules_and_env(settings: Settings, environ, directory: Path | None = None, stopped_too: bool = False):
    """Return (rules folder, variables, note) for a command: DIR, else $RULES_DIR, else the embedded bridge's, else ./rules.

    The embedded bridge's folder counts when it runs here, or for commands about its stored deliveries (stopped_too).
    The note says which bridge that was, None when no embedded bridge was involved.
    """
    own = {**environ, **env_file_values(settings.env_file)}
    if directory is not None or settings.redis_url or environ.get("RULES_DIR"):
        return directory or settings.rules_dir, own, None
    found = find_embedded(settings)
    if found is not None and found.rules_dir is not None and (found.running or stopped_too):
        return found.rules_dir, found.env(environ), found.describe()
    return settings.rules_dir, own, None


def embedded_redis(settings: Settings):
    """Return (a client on the embedded bridge's Redis, what was found); never creates a data folder."""
    found = find_embedded(settings)
    if found is None:
        raise NoBridgeHere(
            f"no embedded bridge here: its data folder {settings.data_dir.resolve()} does not exist. Run this where "
            "`bridge serve` runs (or set BRIDGE_DATA_DIR to its data folder), or set REDIS_URL to reach a deployed bridge"
        )
    if found.running and found.redis_url:
        import redis

        from .redis_client import connect

        client = connect(found.redis_url, settings)
        try:
            client.ping()
            return client, found
        except redis.RedisError:
            client.close()  # the recorded process is gone (or its pid was reused): read the data folder itself
            found = EmbeddedBridge(**{**found.__dict__, "running": False})
    from .embedded import start_redis

    return start_redis(settings, create=False)[0], found
