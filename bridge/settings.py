"""Settings read from the environment, with the defaults documented in the README."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .bodies import BodyLimits


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def _positive(env: dict, name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _float(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _intervals(env: dict, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ValueError(f"{name} must be comma-separated seconds such as 10,60,300, got {raw!r}") from None
    if any(value < 0 for value in values):
        raise ValueError(f"{name} must not hold negative seconds, got {raw!r}")
    return values


def _choice(env: dict, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {env.get(name)!r}")
    return raw


def _token(env: dict, name: str, shortest: int = 16) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    # The token is all that guards the admin API on a public URL: refuse one that could be guessed.
    if len(raw) < shortest:
        raise ValueError(f"{name} must be at least {shortest} characters (try `openssl rand -hex 32`), got {len(raw)}")
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything the bridge can be told from outside its rule files."""

    redis_url: str | None = field(default=None, repr=False)  # it may hold a password
    rules_dir: Path = Path("rules")
    data_dir: Path = Path(".bridge-data")
    port: int = 8000
    queue_name: str = "bridge"
    max_body_bytes: int = 1024 * 1024
    body_limits: BodyLimits = BodyLimits()
    # Spaced out over about 40 minutes: long enough to ride out an LMS restart, short enough to notice.
    retry_intervals: tuple[int, ...] = (10, 30, 120, 600, 1800)
    retry_max_age: int = 0
    job_timeout: int = 300
    delivery_ttl: int = 14 * 24 * 3600
    # Longer than Stripe's three days of retries, the longest of the senders'.
    dedupe_window: int = 7 * 24 * 3600
    # Senders that sign no timestamp can be replayed for as long as a captured request exists; months, then.
    replay_window: int = 90 * 24 * 3600
    lms_connect_timeout: float = 5.0
    lms_read_timeout: float = 30.0
    sandbox: bool = False
    # Unset: the sandbox forgets its users when it stops (tests); the embedded mode keeps them in its data folder.
    sandbox_state: Path | None = None
    rules_check_seconds: float = 1.0
    log_level: str = "info"
    log_format: str = "auto"
    # Threads keep LMS connections, tokens and parsed rules between jobs (bench/worker_throughput.py).
    worker_mode: str = "threads"
    # Jobs in flight per worker process: LMS calls wait on the network, not on the CPU.
    worker_concurrency: int = 8
    # A running job's heartbeat is renewed this often; one silent for three beats is abandoned and queued again.
    job_heartbeat_seconds: int = 30
    # After SIGTERM, jobs in hand may finish for this long; then they stop after their step and are requeued.
    shutdown_grace_seconds: float = 20.0
    # Unset means the admin API is off: no token that could leak, no endpoint that could be guessed.
    admin_token: str | None = field(default=None, repr=False)
    # A console sign-in lasts a working day; signing out ends it at once.
    admin_session_seconds: int = 8 * 3600
    # A worker beats every job_heartbeat_seconds, idle or busy: four missed beats mean it is gone.
    ready_worker_seconds: int = 120
    # A job this long past the time it should have run (queued, ready, scheduled or abandoned) fails /readyz.
    ready_stuck_seconds: int = 300
    # "required" unless the Redis add-on's certificate cannot be verified (Heroku's are self-signed).
    redis_tls_verify: str = "required"
    redis_tls_ca_file: Path | None = None
    # Variables re-read at every rules reload, winning over the process's: a new secret needs no restart.
    env_file: Path | None = None

    @property
    def retry_max(self) -> int:
        """Return how many retries a transient failure gets."""
        return len(self.retry_intervals)

    @classmethod
    def from_env(cls, env: dict | None = None) -> Settings:
        """Read settings from environment variables."""
        env = os.environ if env is None else env
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            rules_dir=Path(env.get("RULES_DIR") or "rules"),
            data_dir=Path(env.get("BRIDGE_DATA_DIR") or ".bridge-data"),
            port=_int(env, "PORT", 8000),
            queue_name=env.get("BRIDGE_QUEUE") or "bridge",
            max_body_bytes=_int(env, "BRIDGE_MAX_BODY_BYTES", 1024 * 1024),
            body_limits=BodyLimits(
                fields=_int(env, "BRIDGE_MAX_FIELDS", BodyLimits.fields),
                depth=_int(env, "BRIDGE_MAX_DEPTH", BodyLimits.depth),
                key_length=_int(env, "BRIDGE_MAX_KEY_LENGTH", BodyLimits.key_length),
                number_length=_int(env, "BRIDGE_MAX_NUMBER_LENGTH", BodyLimits.number_length),
            ),
            retry_intervals=_intervals(env, "BRIDGE_RETRY_INTERVALS", cls.retry_intervals),
            retry_max_age=_int(env, "BRIDGE_RETRY_MAX_AGE", 0),
            job_timeout=_int(env, "BRIDGE_JOB_TIMEOUT", 300),
            delivery_ttl=_positive(env, "BRIDGE_DELIVERY_TTL", 14 * 24 * 3600),
            dedupe_window=_positive(env, "BRIDGE_DEDUPE_WINDOW", 7 * 24 * 3600),
            replay_window=_int(env, "BRIDGE_REPLAY_WINDOW", 90 * 24 * 3600),
            lms_connect_timeout=_float(env, "BRIDGE_LMS_CONNECT_TIMEOUT", 5.0),
            lms_read_timeout=_float(env, "BRIDGE_LMS_READ_TIMEOUT", 30.0),
            sandbox=env.get("BRIDGE_SANDBOX", "").lower() in ("1", "true", "yes", "on"),
            sandbox_state=Path(env["BRIDGE_SANDBOX_STATE"]) if env.get("BRIDGE_SANDBOX_STATE") else None,
            rules_check_seconds=_float(env, "BRIDGE_RULES_CHECK_SECONDS", 1.0),
            log_level=_choice(env, "BRIDGE_LOG_LEVEL", ("debug", "info", "warning", "error"), "info"),
            log_format=_choice(env, "BRIDGE_LOG_FORMAT", ("auto", "json", "text"), "auto"),
            worker_mode=_choice(env, "BRIDGE_WORKER_MODE", ("threads", "fork"), "threads"),
            worker_concurrency=_positive(env, "BRIDGE_WORKER_CONCURRENCY", 8),
            job_heartbeat_seconds=_positive(env, "BRIDGE_JOB_HEARTBEAT_SECONDS", 30),
            shutdown_grace_seconds=_float(env, "BRIDGE_SHUTDOWN_GRACE_SECONDS", 20.0),
            admin_token=_token(env, "BRIDGE_ADMIN_TOKEN"),
            admin_session_seconds=_int(env, "BRIDGE_ADMIN_SESSION_SECONDS", 8 * 3600) or 8 * 3600,
            ready_worker_seconds=_int(env, "BRIDGE_READY_WORKER_SECONDS", 120),
            ready_stuck_seconds=_int(env, "BRIDGE_READY_STUCK_SECONDS", 300),
            redis_tls_verify=_choice(env, "BRIDGE_REDIS_TLS_VERIFY", ("required", "none"), "required"),
            redis_tls_ca_file=Path(env["BRIDGE_REDIS_TLS_CA_FILE"]) if env.get("BRIDGE_REDIS_TLS_CA_FILE") else None,
            env_file=Path(env["BRIDGE_ENV_FILE"]) if env.get("BRIDGE_ENV_FILE") else None,
        )

    def with_overrides(self, overrides: dict) -> Settings:
        """Return a copy with some settings replaced (used by tests and the CLI)."""
        known = {name for name in self.__dataclass_fields__}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        values = dict(overrides)
        for name in ("rules_dir", "data_dir", "sandbox_state", "env_file"):
            if values.get(name) is not None:
                values[name] = Path(values[name])
        return replace(self, **values)


def env_file_values(path: Path | None) -> dict:
    """Return the variables of a .env file (none when there is no such file)."""
    if path is None or not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {name: value for name, value in dotenv_values(path).items() if value is not None}
