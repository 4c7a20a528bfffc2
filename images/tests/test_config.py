"""The environment-driven configuration: required values, malformed values, secret files, defaults,
and the one-line failure at process start."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PLATFORM, minimal_env
from statuspage_platform.config import ConfigError, load

REQUIRED = ["SECRET_KEY", "ALLOWED_HOSTS", "SITE_URL", "DATABASE_HOST", "DATABASE_NAME", "DATABASE_USER",
            "DATABASE_PASSWORD", "REDIS_HOST"]

MALFORMED = [
    ("SECRET_KEY", "too-short-key"),
    ("SECRET_KEY", "django-insecure-" + "a1b2c3d4e5" * 6),
    ("SECRET_KEY", "a" * 60),
    ("ALLOWED_HOSTS", "status.example.com, bad_host!"),
    ("SITE_URL", "status.example.com"),
    ("SITE_URL", "ftp://status.example.com"),
    ("SITE_URL", "https://user:pw@status.example.com"),
    ("SITE_URL", "https://status.example.com:99999"),
    ("DATABASE_HOST", "db host"),
    ("DATABASE_NAME", "status page"),
    ("DATABASE_USER", "user;drop"),
    ("DATABASE_PORT", "tcp://10.0.0.1:5432"),
    ("DATABASE_PORT", "0"),
    ("DATABASE_SSLMODE", "maybe"),
    ("DATABASE_SSLROOTCERT", "/nonexistent/rds-ca.pem"),
    ("DATABASE_CONN_MAX_AGE", "-1"),
    ("DATABASE_CONNECT_TIMEOUT", "soon"),
    ("REDIS_HOST", "redis://cache"),
    ("REDIS_PORT", "tcp://10.0.0.2:6379"),
    ("REDIS_SSL", "perhaps"),
    ("REDIS_INSECURE_SKIP_TLS_VERIFY", "true"),
    ("REDIS_TASKS_DATABASE", "x"),
    ("REDIS_CACHING_DATABASE", "0"),
    ("REDIS_CACHING_PORT", "70000"),
    ("CSRF_TRUSTED_ORIGINS", "status.example.com"),
    ("CSRF_TRUSTED_ORIGINS", "https://status.example.com/path"),
    ("TIME_ZONE", "Mars/Olympus_Mons"),
    ("LOG_LEVEL", "LOUD"),
    ("DEBUG", "sometimes"),
    ("EMAIL_SERVER", "smtp server"),
    ("EMAIL_PORT", "smtp"),
    ("EMAIL_USE_TLS", "true"),  # together with EMAIL_USE_SSL below
    ("EMAIL_FROM", "not-an-address"),
    ("RQ_DEFAULT_TIMEOUT", "0"),
    ("WORKER_QUEUES", "high de/fault"),
    ("READINESS_TIMEOUT", "100"),
    ("METRICS_PORT", "http"),
    ("WEB_PORT", "-8000"),
]


def env_with(**changes: str | None) -> dict[str, str]:
    env = minimal_env()
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_minimal_environment_is_valid_with_safe_defaults() -> None:
    config = load(minimal_env())
    assert config.debug is False
    assert config.allowed_hosts == ["status.example.com", "127.0.0.1", "localhost"]
    assert config.csrf_trusted_origins == ["https://status.example.com"]
    assert config.database.port == 5432 and config.database.sslmode == "prefer"
    assert config.redis_tasks.database == 0 and config.redis_caching.database == 1
    assert config.redis_tasks.ssl is False and config.redis_tasks.password == ""
    assert config.time_zone == "UTC" and config.log_level == "INFO"
    assert config.worker_queues == ["high", "default", "low"]
    assert (config.web_port, config.metrics_port) == (8000, 9100)
    assert config.email.server is None


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_missing_required_value_names_it(name: str, value: str | None) -> None:
    with pytest.raises(ConfigError) as err:
        load(env_with(**{name: value}))
    assert err.value.name == name
    assert str(err.value).startswith(f"{name}: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("name", "value"), MALFORMED, ids=[f"{n}={v}" for n, v in MALFORMED])
def test_malformed_value_names_it(name: str, value: str) -> None:
    extra = {"EMAIL_USE_SSL": "true"} if name == "EMAIL_USE_TLS" else {}
    with pytest.raises(ConfigError) as err:
        load(env_with(**{name: value}, **extra))
    assert err.value.name == name, str(err.value)
    assert "\n" not in str(err.value)


def test_service_link_value_gets_a_hint() -> None:
    with pytest.raises(ConfigError, match="enableServiceLinks"):
        load(env_with(REDIS_PORT="tcp://10.0.0.2:6379"))


def test_debug_only_when_explicitly_asked() -> None:
    assert load(env_with(DEBUG="false")).debug is False
    assert load(env_with(DEBUG="true")).debug is True


def test_secret_from_file_variable(tmp_path: Path) -> None:
    secret = tmp_path / "db-password"
    secret.write_text("s3cret-from-file\n")
    config = load(env_with(DATABASE_PASSWORD=None, DATABASE_PASSWORD_FILE=str(secret)))
    assert config.database.password == "s3cret-from-file"


def test_secret_from_secrets_directory(tmp_path: Path) -> None:
    (tmp_path / "SECRET_KEY").write_text(minimal_env()["SECRET_KEY"] + "\n")
    (tmp_path / "REDIS_PASSWORD").write_text("redis-pw")
    config = load(env_with(SECRET_KEY=None, STATUSPAGE_SECRETS_DIR=str(tmp_path)))
    assert config.secret_key == minimal_env()["SECRET_KEY"]
    assert config.redis_tasks.password == "redis-pw" and config.redis_caching.password == "redis-pw"


def test_value_and_file_together_is_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("x")
    with pytest.raises(ConfigError) as err:
        load(env_with(DATABASE_PASSWORD_FILE=str(secret)))
    assert err.value.name == "DATABASE_PASSWORD"


def test_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(env_with(DATABASE_PASSWORD=None, DATABASE_PASSWORD_FILE=str(tmp_path / "missing")))
    assert err.value.name == "DATABASE_PASSWORD"


def test_tls_for_elasticache_and_separate_caching() -> None:
    config = load(env_with(REDIS_SSL="true", REDIS_PASSWORD="auth-token", REDIS_CACHING_HOST="cache.internal",
                           REDIS_CACHING_DATABASE="0"))
    assert config.redis_tasks.ssl and config.redis_caching.ssl
    assert config.redis_tasks.url() == "rediss://127.0.0.1:6379/0"
    assert config.redis_caching.url() == "rediss://cache.internal:6379/0"


def test_email_and_time_zone() -> None:
    config = load(env_with(EMAIL_SERVER="email-smtp.eu-west-1.amazonaws.com", EMAIL_USE_TLS="true",
                           EMAIL_USERNAME="AKIA", EMAIL_PASSWORD="pw", EMAIL_FROM="status@example.com",
                           TIME_ZONE="Europe/Paris"))
    assert config.email.port == 587 and config.email.use_tls and not config.email.use_ssl
    assert config.time_zone == "Europe/Paris"


def test_configuration_module_gives_status_page_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env_with(DATABASE_SSLMODE="require", REDIS_SSL="true", REDIS_PASSWORD="tok",
                               CSRF_TRUSTED_ORIGINS="https://a.example.com https://b.example.com").items():
        monkeypatch.setenv(key, value)
    module = importlib.import_module("statuspage_platform.configuration")
    module = importlib.reload(module)
    assert module.ALLOWED_HOSTS == ["status.example.com", "127.0.0.1", "localhost"]
    assert module.SITE_URL == "https://status.example.com"
    assert module.DEBUG is False
    assert module.DATABASE["OPTIONS"]["sslmode"] == "require"
    assert module.DATABASE["NAME"] == "statuspage" and module.DATABASE["PORT"] == 5432
    assert module.REDIS["tasks"] == {"HOST": "127.0.0.1", "PORT": 6379, "PASSWORD": "tok", "DATABASE": 0,
                                     "SSL": True, "INSECURE_SKIP_TLS_VERIFY": False}
    assert module.REDIS["caching"]["DATABASE"] == 1
    assert module.CSRF_TRUSTED_ORIGINS == ["https://a.example.com", "https://b.example.com"]
    assert module.EMAIL == {}
    assert module.LOGGING["formatters"]["json"]["()"] == "statuspage_platform.jsonlog.JsonFormatter"


def run_entrypoint(role: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = dict(env, PYTHONPATH=str(PLATFORM), PATH="/usr/bin:/bin")
    return subprocess.run([sys.executable, "-m", "statuspage_platform.entrypoint", role], env=full,
                          capture_output=True, text=True, timeout=60)


def assert_one_line_naming(result: subprocess.CompletedProcess, name: str) -> None:
    assert result.returncode == 78, result
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert entry["level"] == "error" and entry["setting"] == name
    assert name in entry["msg"]


@pytest.mark.parametrize("name", REQUIRED)
def test_process_stops_with_one_line_when_required_value_missing(name: str) -> None:
    assert_one_line_naming(run_entrypoint("check-config", env_with(**{name: None})), name)


@pytest.mark.parametrize(("name", "value"), [("SECRET_KEY", "short"), ("SITE_URL", "nope"),
                                             ("DATABASE_PORT", "tcp://1.2.3.4:5432"), ("REDIS_SSL", "maybe"),
                                             ("ALLOWED_HOSTS", "a b!c")])
def test_process_stops_with_one_line_when_value_malformed(name: str, value: str) -> None:
    assert_one_line_naming(run_entrypoint("check-config", env_with(**{name: value})), name)


@pytest.mark.parametrize("role", ["web", "worker", "scheduler", "release"])
def test_every_role_validates_before_starting(role: str) -> None:
    assert_one_line_naming(run_entrypoint(role, env_with(SECRET_KEY=None)), "SECRET_KEY")


def test_check_config_accepts_a_valid_environment() -> None:
    result = run_entrypoint("check-config", minimal_env())
    assert result.returncode == 0, result
    assert json.loads(result.stdout.strip())["msg"] == "configuration ok"


def test_unknown_role_is_refused() -> None:
    result = run_entrypoint("bogus", minimal_env())
    assert result.returncode == 64
