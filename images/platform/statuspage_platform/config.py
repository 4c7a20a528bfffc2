"""Read and validate the environment that configures a Status-Page container.

Every value comes from an environment variable, or for any variable ``NAME``, from a file: the path in
``NAME_FILE``, or ``$STATUSPAGE_SECRETS_DIR/NAME`` (default ``/run/secrets/statuspage/NAME``, the
layout the Secrets Store CSI driver mounts). The first problem found raises :class:`ConfigError`,
whose message is one line that starts with the variable's name.

This module imports nothing from Django so that the entrypoint can validate before Django starts.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_SECRETS_DIR = "/run/secrets/statuspage"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_HOST_RE = re.compile(r"^(\*|\.?[A-Za-z0-9]([A-Za-z0-9\-\.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:\.]+\])$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-\.]+$")
_QUEUE_RE = re.compile(r"^[A-Za-z0-9_\-\.]+$")


class ConfigError(ValueError):
    """A required setting is missing, or a setting is malformed. ``str()`` is one line."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")


@dataclass(frozen=True)
class DatabaseConfig:
    """PostgreSQL connection settings."""

    host: str
    port: int
    name: str
    user: str
    password: str = field(repr=False)
    sslmode: str
    sslrootcert: str | None
    connect_timeout: int
    conn_max_age: int


@dataclass(frozen=True)
class RedisConfig:
    """One Redis connection (tasks or caching)."""

    host: str
    port: int
    database: int
    password: str = field(repr=False)
    ssl: bool
    skip_tls_verify: bool

    def url(self) -> str:
        """A redis:// or rediss:// URL without credentials."""
        scheme = "rediss" if self.ssl else "redis"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class EmailConfig:
    """Outgoing mail (optional: empty server disables mail)."""

    server: str | None
    port: int
    username: str | None
    password: str | None = field(repr=False)
    use_ssl: bool
    use_tls: bool
    timeout: int
    from_email: str | None


@dataclass(frozen=True)
class Config:
    """Everything the container needs, validated."""

    secret_key: str = field(repr=False)
    allowed_hosts: list[str]
    site_url: str
    csrf_trusted_origins: list[str]
    database: DatabaseConfig
    redis_tasks: RedisConfig
    redis_caching: RedisConfig
    email: EmailConfig
    time_zone: str
    log_level: str
    debug: bool
    rq_default_timeout: int
    worker_queues: list[str]
    readiness_timeout: float
    metrics_port: int
    web_port: int


class Env:
    """Look up variables in an environment mapping, with ``_FILE`` and secrets-directory fallbacks."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.secrets_dir = Path(self.environ.get("STATUSPAGE_SECRETS_DIR") or DEFAULT_SECRETS_DIR)

    def raw(self, name: str) -> str | None:
        """The value of ``name`` from the variable, ``NAME_FILE`` or the secrets directory, or None."""
        value = self.environ.get(name)
        file_var = self.environ.get(f"{name}_FILE")
        if value is not None and file_var:
            raise ConfigError(name, f"set both {name} and {name}_FILE; set only one")
        if value is not None:
            return value
        if file_var:
            return self._read(name, Path(file_var), f"{name}_FILE")
        default_path = self.secrets_dir / name
        if default_path.is_file():
            return self._read(name, default_path, str(default_path))
        return None

    @staticmethod
    def _read(name: str, path: Path, origin: str) -> str:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(name, f"cannot read {origin} ({path}): {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(name, f"{origin} ({path}) is not UTF-8 text") from None
        return text.rstrip("\r\n")

    def required(self, name: str) -> str:
        """A non-empty value, or ConfigError naming the variable."""
        value = self.raw(name)
        if value is None or not value.strip():
            raise ConfigError(
                name,
                f"required but not set (set {name}, {name}_FILE or the file {self.secrets_dir / name})",
            )
        return value.strip() if name != "SECRET_KEY" else value

    def optional(self, name: str, default: str | None = None) -> str | None:
        """The value, or ``default`` when unset or empty."""
        value = self.raw(name)
        if value is None or not value.strip():
            return default
        return value.strip()

    def boolean(self, name: str, default: bool) -> bool:
        """true/false, 1/0, yes/no, on/off (any case)."""
        value = self.optional(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(name, f"must be true or false, got {value!r}")

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        """An integer within [minimum, maximum]."""
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = int(value, 10)
        except ValueError:
            hint = " (a Kubernetes service link? set enableServiceLinks: false)" if "://" in value else ""
            raise ConfigError(name, f"must be an integer, got {value!r}{hint}") from None
        if not minimum <= number <= maximum:
            raise ConfigError(name, f"must be between {minimum} and {maximum}, got {number}")
        return number

    def port(self, name: str, default: int) -> int:
        """A TCP port number."""
        return self.integer(name, default, 1, 65535)

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        """A float within [minimum, maximum]."""
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"must be a number, got {value!r}") from None
        if not minimum <= number <= maximum:
            raise ConfigError(name, f"must be between {minimum:g} and {maximum:g}, got {value}")
        return number

    def words(self, name: str, default: str | None = None) -> list[str]:
        """A comma- or whitespace-separated list."""
        value = self.optional(name, default) or ""
        return [item for item in re.split(r"[\s,]+", value) if item]


def _host(name: str, value: str) -> str:
    if not _HOST_RE.match(value):
        raise ConfigError(name, f"not a valid host name: {value!r}")
    return value


def _origin(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(name, f"not an origin like https://status.example.com: {value!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(name, f"not an origin like https://status.example.com: {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _site_url(env: Env) -> str:
    value = env.required("SITE_URL")
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError("SITE_URL", f"has an invalid port: {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("SITE_URL", f"must be an http(s) URL like https://status.example.com: {value!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError("SITE_URL", f"must not contain credentials, a query or a fragment: {value!r}")
    return value.rstrip("/")


def _secret_key(env: Env) -> str:
    value = env.required("SECRET_KEY")
    if value.startswith("django-insecure-"):
        raise ConfigError("SECRET_KEY", "is a django-insecure- development key; generate a new one")
    if len(value) < 50 or len(set(value)) < 5:
        raise ConfigError("SECRET_KEY", "must be at least 50 characters with at least 5 distinct ones")
    if any(ch.isspace() for ch in value):
        raise ConfigError("SECRET_KEY", "must not contain whitespace")
    return value


def _database(env: Env) -> DatabaseConfig:
    name = env.required("DATABASE_NAME")
    user = env.required("DATABASE_USER")
    for var, value in (("DATABASE_NAME", name), ("DATABASE_USER", user)):
        if not _NAME_RE.match(value):
            raise ConfigError(var, f"has characters other than letters, digits, _ - .: {value!r}")
    sslmode = (env.optional("DATABASE_SSLMODE", "prefer") or "prefer").lower()
    if sslmode not in SSL_MODES:
        raise ConfigError("DATABASE_SSLMODE", f"must be one of {', '.join(SSL_MODES)}, got {sslmode!r}")
    sslrootcert = env.optional("DATABASE_SSLROOTCERT")
    if sslrootcert and not Path(sslrootcert).is_file():
        raise ConfigError("DATABASE_SSLROOTCERT", f"file not found: {sslrootcert}")
    return DatabaseConfig(
        host=_host("DATABASE_HOST", env.required("DATABASE_HOST")),
        port=env.port("DATABASE_PORT", 5432),
        name=name,
        user=user,
        password=env.required("DATABASE_PASSWORD"),
        sslmode=sslmode,
        sslrootcert=sslrootcert,
        connect_timeout=env.integer("DATABASE_CONNECT_TIMEOUT", 5, 1, 300),
        conn_max_age=env.integer("DATABASE_CONN_MAX_AGE", 300, 0, 86400),
    )


def _redis(env: Env) -> tuple[RedisConfig, RedisConfig]:
    host = _host("REDIS_HOST", env.required("REDIS_HOST"))
    port = env.port("REDIS_PORT", 6379)
    password = env.optional("REDIS_PASSWORD", "") or ""
    ssl = env.boolean("REDIS_SSL", False)
    skip_verify = env.boolean("REDIS_INSECURE_SKIP_TLS_VERIFY", False)
    if skip_verify and not ssl:
        raise ConfigError("REDIS_INSECURE_SKIP_TLS_VERIFY", "only makes sense with REDIS_SSL=true")
    tasks = RedisConfig(
        host=host,
        port=port,
        database=env.integer("REDIS_TASKS_DATABASE", 0, 0, 1023),
        password=password,
        ssl=ssl,
        skip_tls_verify=skip_verify,
    )
    caching = RedisConfig(
        host=_host("REDIS_CACHING_HOST", env.optional("REDIS_CACHING_HOST", host) or host),
        port=env.port("REDIS_CACHING_PORT", port),
        database=env.integer("REDIS_CACHING_DATABASE", 1, 0, 1023),
        password=env.optional("REDIS_CACHING_PASSWORD", password) or "",
        ssl=env.boolean("REDIS_CACHING_SSL", ssl),
        skip_tls_verify=skip_verify,
    )
    if (tasks.host, tasks.port, tasks.database) == (caching.host, caching.port, caching.database):
        raise ConfigError(
            "REDIS_CACHING_DATABASE", "must differ from REDIS_TASKS_DATABASE on the same Redis"
        )
    return tasks, caching


def _email(env: Env) -> EmailConfig:
    server = env.optional("EMAIL_SERVER")
    if server:
        _host("EMAIL_SERVER", server)
    use_ssl = env.boolean("EMAIL_USE_SSL", False)
    use_tls = env.boolean("EMAIL_USE_TLS", False)
    if use_ssl and use_tls:
        raise ConfigError("EMAIL_USE_TLS", "EMAIL_USE_SSL and EMAIL_USE_TLS are exclusive; set one")
    from_email = env.optional("EMAIL_FROM")
    if from_email and "@" not in from_email:
        raise ConfigError("EMAIL_FROM", f"not an e-mail address: {from_email!r}")
    return EmailConfig(
        server=server,
        port=env.port("EMAIL_PORT", 465 if use_ssl else 587 if use_tls else 25),
        username=env.optional("EMAIL_USERNAME"),
        password=env.optional("EMAIL_PASSWORD"),
        use_ssl=use_ssl,
        use_tls=use_tls,
        timeout=env.integer("EMAIL_TIMEOUT", 10, 1, 300),
        from_email=from_email,
    )


def _time_zone(env: Env) -> str:
    value = env.optional("TIME_ZONE", "UTC") or "UTC"
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError("TIME_ZONE", f"unknown time zone {value!r} (use an IANA name like Europe/Paris)") from None
    return value


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Validate the environment and return the configuration; raises ConfigError on the first problem."""
    env = Env(environ)
    secret_key = _secret_key(env)
    allowed_hosts = [_host("ALLOWED_HOSTS", h) for h in env.words("ALLOWED_HOSTS")]
    if not allowed_hosts:
        raise ConfigError("ALLOWED_HOSTS", "required but not set (comma-separated host names)")
    site_url = _site_url(env)
    origins = env.words("CSRF_TRUSTED_ORIGINS")
    csrf = [_origin("CSRF_TRUSTED_ORIGINS", o) for o in origins] or [_origin("SITE_URL", _site_origin(site_url))]
    database = _database(env)
    tasks, caching = _redis(env)
    log_level = (env.optional("LOG_LEVEL", "INFO") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError("LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    queues = env.words("WORKER_QUEUES", "high default low")
    for queue in queues:
        if not _QUEUE_RE.match(queue):
            raise ConfigError("WORKER_QUEUES", f"not a queue name: {queue!r}")
    if not queues:
        raise ConfigError("WORKER_QUEUES", "must name at least one queue")
    return Config(
        secret_key=secret_key,
        allowed_hosts=allowed_hosts,
        site_url=site_url,
        csrf_trusted_origins=csrf,
        database=database,
        redis_tasks=tasks,
        redis_caching=caching,
        email=_email(env),
        time_zone=_time_zone(env),
        log_level=log_level,
        debug=env.boolean("DEBUG", False),
        rq_default_timeout=env.integer("RQ_DEFAULT_TIMEOUT", 300, 1, 86400),
        worker_queues=queues,
        readiness_timeout=env.number("READINESS_TIMEOUT", 2.0, 0.1, 30.0),
        metrics_port=env.port("METRICS_PORT", 9100),
        web_port=env.port("WEB_PORT", 8000),
    )


def _site_origin(site_url: str) -> str:
    parts = urlsplit(site_url)
    return f"{parts.scheme}://{parts.netloc}"
