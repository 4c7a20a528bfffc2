"""Readiness checks: can this process reach PostgreSQL and Redis right now?

Each check opens a fresh connection with a short timeout, so a probe never hangs and never reuses a
connection that the application might hold. Liveness needs no check at all: answering is enough.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg2
import redis

from statuspage_platform.config import Config, DatabaseConfig, RedisConfig


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one dependency check."""

    name: str
    ok: bool
    seconds: float
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary (the error is the exception's class and first line)."""
        result: dict[str, object] = {"ok": self.ok, "seconds": round(self.seconds, 4)}
        if self.error:
            result["error"] = self.error
        return result


def _summary(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def check_database(db: DatabaseConfig, timeout: float) -> CheckResult:
    """Connect to PostgreSQL and run ``SELECT 1`` within ``timeout`` seconds."""
    start = time.monotonic()
    try:
        kwargs: dict[str, object] = {
            "host": db.host, "port": db.port, "dbname": db.name, "user": db.user, "password": db.password,
            "sslmode": db.sslmode, "connect_timeout": max(1, int(round(timeout))),
            "options": f"-c statement_timeout={int(timeout * 1000)}",
            "application_name": "statuspage-readiness",
        }
        if db.sslrootcert:
            kwargs["sslrootcert"] = db.sslrootcert
        conn = psycopg2.connect(**kwargs)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return CheckResult("database", False, time.monotonic() - start, _summary(exc))
    return CheckResult("database", True, time.monotonic() - start)


def redis_client(config: RedisConfig, timeout: float) -> redis.Redis:
    """A Redis client for one configured connection, with socket timeouts."""
    kwargs: dict[str, object] = {
        "host": config.host, "port": config.port, "db": config.database,
        "password": config.password or None,
        "socket_timeout": timeout, "socket_connect_timeout": timeout,
    }
    if config.ssl:
        kwargs["ssl"] = True
        kwargs["ssl_cert_reqs"] = "none" if config.skip_tls_verify else "required"
    return redis.Redis(**kwargs)


def check_redis(name: str, config: RedisConfig, timeout: float) -> CheckResult:
    """PING one Redis connection within ``timeout`` seconds."""
    start = time.monotonic()
    client = redis_client(config, timeout)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return CheckResult(name, False, time.monotonic() - start, _summary(exc))
    finally:
        client.close()
    return CheckResult(name, True, time.monotonic() - start)


def readiness(config: Config) -> tuple[bool, dict[str, dict[str, object]]]:
    """Run every check; ready only if all pass. Returns (ready, per-check details)."""
    timeout = config.readiness_timeout
    results = [
        check_database(config.database, timeout),
        check_redis("redis_tasks", config.redis_tasks, timeout),
        check_redis("redis_caching", config.redis_caching, timeout),
    ]
    return all(r.ok for r in results), {r.name: r.as_dict() for r in results}
