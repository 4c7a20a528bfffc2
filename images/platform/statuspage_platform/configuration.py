"""Status-Page configuration module built from the environment.

Point Status-Page at it with ``STATUS_PAGE_CONFIGURATION=statuspage_platform.configuration`` (the
images do). Importing it validates the environment and raises :class:`~.config.ConfigError` on the
first missing or malformed value; the entrypoint validates before Django starts, so the process stops
with one line naming the variable.
"""

from __future__ import annotations

from typing import Any

from statuspage_platform.config import Config, RedisConfig, load
from statuspage_platform.jsonlog import logging_config


def redis_section(redis: RedisConfig) -> dict[str, Any]:
    """One entry of Status-Page's REDIS setting."""
    section: dict[str, Any] = {
        "HOST": redis.host,
        "PORT": redis.port,
        "PASSWORD": redis.password,
        "DATABASE": redis.database,
        "SSL": redis.ssl,
        "INSECURE_SKIP_TLS_VERIFY": redis.skip_tls_verify,
    }
    return section


def database_section(config: Config) -> dict[str, Any]:
    """Status-Page's DATABASE setting (merged by Status-Page into DATABASES['default'])."""
    db = config.database
    options: dict[str, Any] = {"sslmode": db.sslmode, "connect_timeout": db.connect_timeout}
    if db.sslrootcert:
        options["sslrootcert"] = db.sslrootcert
    return {
        "NAME": db.name,
        "USER": db.user,
        "PASSWORD": db.password,
        "HOST": db.host,
        "PORT": db.port,
        "CONN_MAX_AGE": db.conn_max_age,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
    }


def email_section(config: Config) -> dict[str, Any]:
    """Status-Page's EMAIL setting; empty when no server is configured."""
    email = config.email
    if not email.server:
        return {}
    return {
        "SERVER": email.server,
        "PORT": email.port,
        "USERNAME": email.username or "",
        "PASSWORD": email.password or "",
        "USE_SSL": email.use_ssl,
        "USE_TLS": email.use_tls,
        "TIMEOUT": email.timeout,
        "FROM_EMAIL": email.from_email or "",
    }


def settings(config: Config) -> dict[str, Any]:
    """Every Status-Page configuration name this module defines, from a validated Config."""
    return {
        "ALLOWED_HOSTS": list(config.allowed_hosts),
        "DATABASE": database_section(config),
        "REDIS": {"tasks": redis_section(config.redis_tasks), "caching": redis_section(config.redis_caching)},
        "SECRET_KEY": config.secret_key,
        "SITE_URL": config.site_url,
        "CSRF_TRUSTED_ORIGINS": list(config.csrf_trusted_origins),
        "DEBUG": config.debug,
        "EMAIL": email_section(config),
        "TIME_ZONE": config.time_zone,
        "LOGGING": logging_config(config.log_level),
        "RQ_DEFAULT_TIMEOUT": config.rq_default_timeout,
    }


_CONFIG = load()
_SETTINGS = settings(_CONFIG)

ALLOWED_HOSTS = _SETTINGS["ALLOWED_HOSTS"]
DATABASE = _SETTINGS["DATABASE"]
REDIS = _SETTINGS["REDIS"]
SECRET_KEY = _SETTINGS["SECRET_KEY"]
SITE_URL = _SETTINGS["SITE_URL"]
CSRF_TRUSTED_ORIGINS = _SETTINGS["CSRF_TRUSTED_ORIGINS"]
DEBUG = _SETTINGS["DEBUG"]
EMAIL = _SETTINGS["EMAIL"]
TIME_ZONE = _SETTINGS["TIME_ZONE"]
LOGGING = _SETTINGS["LOGGING"]
RQ_DEFAULT_TIMEOUT = _SETTINGS["RQ_DEFAULT_TIMEOUT"]
