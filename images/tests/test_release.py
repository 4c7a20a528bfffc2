"""The release command (the migration Job): every step, idempotent, JSON logs, fails loudly."""

from __future__ import annotations

import json

import psycopg2

from conftest import entrypoint, postgres_stopped
from services import DB_NAME, DB_PASSWORD, DB_USER, Services


def test_release_runs_every_step_and_logs_json(released) -> None:  # type: ignore[no-untyped-def]
    entries = [json.loads(line) for line in released.stdout.splitlines() if line.strip()]
    done = [e["step"] for e in entries if e.get("msg") == "release step done"]
    assert done == ["migrate --no-input", "remove_stale_contenttypes --no-input", "clearsessions", "clearcache"]
    assert entries[-1]["msg"] == "release done"


def test_release_migrated_the_database(released, services: Services) -> None:  # type: ignore[no-untyped-def]
    conn = psycopg2.connect(host="127.0.0.1", port=services.pg_port, dbname=DB_NAME, user=DB_USER,
                            password=DB_PASSWORD)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM django_migrations")
            assert cur.fetchone()[0] > 0
    finally:
        conn.close()


def test_release_is_idempotent(released, app_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    again = entrypoint("release", app_env)
    assert again.returncode == 0, again.stdout + again.stderr


def test_release_fails_loudly_without_database(released, app_env: dict[str, str],  # type: ignore[no-untyped-def]
                                               services: Services) -> None:
    with postgres_stopped(services):
        result = entrypoint("release", dict(app_env, DATABASE_CONNECT_TIMEOUT="2"))
    assert result.returncode == 1
    failed = [json.loads(line) for line in result.stdout.splitlines() if '"release step failed"' in line]
    assert failed and failed[0]["step"] == "migrate --no-input" and "error" in failed[0]


def test_database_options_reach_django(app_env: dict[str, str]) -> None:
    # Status-Page's settings.py keeps only some keys of DATABASE; the platform adds the rest back.
    env = dict(app_env, DATABASE_SSLMODE="disable", DATABASE_CONNECT_TIMEOUT="7")
    result = entrypoint("manage", env, "shell", "-c",
                        "from django.db import connection as c; s = c.settings_dict; "
                        "print(s['CONN_HEALTH_CHECKS'], s['OPTIONS']['sslmode'], s['OPTIONS']['connect_timeout'])")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True disable 7"


def test_python_warnings_are_json_lines(app_env: dict[str, str]) -> None:
    # e.g. rq_scheduler's FutureWarning at start: captured into the JSON logger, never plain text.
    result = entrypoint("manage", app_env, "shell", "-c",
                        "import warnings; warnings.warn('cron strings change', FutureWarning)")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FutureWarning" not in result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    warning = [e for e in entries if e["logger"] == "py.warnings"]
    assert warning and "FutureWarning: cron strings change" in warning[0]["msg"] and warning[0]["level"] == "warning"
