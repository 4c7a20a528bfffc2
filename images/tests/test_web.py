"""The web role through the real entrypoint and gunicorn: liveness, readiness against real PostgreSQL
and Redis (stopped and restarted), static files, Prometheus metrics and graceful SIGTERM."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Role, http_get, postgres_stopped, redis_stopped, running, wait_for, wait_http


@pytest.fixture(scope="module")
def web(app_env: dict[str, str], released: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Role]:
    with running("web", app_env, tmp_path_factory.mktemp("web-logs")) as role:
        wait_http(role.url("/-/healthz"), proc=role.proc)
        wait_http(role.url("/-/healthz", metrics=True), proc=role.proc)
        yield role


def readyz(role: Role) -> tuple[int, dict]:
    status, _, body = http_get(role.url("/-/readyz"))
    return status, json.loads(body)


def test_liveness(web: Role) -> None:
    status, headers, body = http_get(web.url("/-/healthz"))
    assert (status, body) == (200, b"ok\n")
    assert headers["Cache-Control"] == "no-store"


def test_home_page_queries_the_database(web: Role) -> None:
    status, _, body = http_get(web.url("/"), headers={"Host": "status.example.com"})
    assert status == 200 and b"job runs: " in body


def test_readiness_true_with_both_services(web: Role) -> None:
    status, body = readyz(web)
    assert status == 200 and body["status"] == "ready"
    assert set(body["checks"]) == {"database", "redis_tasks", "redis_caching"}


def test_readiness_follows_postgres(web: Role, services) -> None:  # type: ignore[no-untyped-def]
    with postgres_stopped(services):
        status, body = readyz(web)
        assert status == 503 and body["status"] == "not ready"
        assert body["checks"]["database"]["ok"] is False and "error" in body["checks"]["database"]
        assert body["checks"]["redis_tasks"]["ok"] is True
        assert http_get(web.url("/-/healthz"))[0] == 200  # liveness never touches the database
    wait_for(lambda: readyz(web)[0] == 200, what="ready again after PostgreSQL restart")


def test_readiness_follows_redis(web: Role, services) -> None:  # type: ignore[no-untyped-def]
    with redis_stopped(services):
        status, body = readyz(web)
        assert status == 503
        assert body["checks"]["redis_tasks"]["ok"] is False and body["checks"]["redis_caching"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
        assert http_get(web.url("/-/healthz"))[0] == 200
    wait_for(lambda: readyz(web)[0] == 200, what="ready again after Redis restart")


def test_static_file_versioned_is_immutable_and_compressed(web: Role, static_root: Path) -> None:
    status, headers, body = http_get(web.url("/static/css/app.css?v=2.5.1"), headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == (static_root / "css" / "app.css").read_bytes()


def test_static_file_unversioned_gets_short_cache(web: Role) -> None:
    status, headers, _ = http_get(web.url("/static/css/app.css"))
    assert status == 200 and headers["Cache-Control"].startswith("max-age=3600")


def test_static_hashed_name_is_immutable(web: Role) -> None:
    status, headers, _ = http_get(web.url("/static/js/main.0123abcd89.min.js"))
    assert status == 200 and "immutable" in headers["Cache-Control"]


def test_static_docs_index(web: Role) -> None:
    status, _, body = http_get(web.url("/static/docs/"))
    assert status == 200 and b"docs" in body


def test_missing_static_file_is_404(web: Role) -> None:
    status, _, _ = http_get(web.url("/static/nope.css"), headers={"Host": "status.example.com"})
    assert status == 404


def scrape(role: Role) -> dict[str, list]:
    status, headers, body = http_get(role.url("/-/metrics", metrics=True))
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family.samples for family in text_string_to_metric_families(body.decode())}


def test_request_metrics_in_prometheus_format(web: Role) -> None:
    for _ in range(12):
        assert http_get(web.url("/"), headers={"Host": "status.example.com"})[0] == 200
    families = scrape(web)
    requests = [s for s in families["statuspage_http_requests"] if s.name == "statuspage_http_requests_total"]
    home = sum(s.value for s in requests if s.labels["route"] == "/" and s.labels["status"] == "200")
    assert home >= 12  # summed over both gunicorn workers by the master
    buckets = [s for s in families["statuspage_http_request_duration_seconds"] if s.name.endswith("_bucket")]
    assert any(s.labels["route"] == "/" for s in buckets)


def test_metrics_are_not_served_on_the_public_port(web: Role) -> None:
    assert http_get(web.url("/-/metrics"), headers={"Host": "status.example.com"})[0] == 404


def test_logs_are_json_lines(web: Role) -> None:
    http_get(web.url("/"), headers={"Host": "status.example.com"})
    entries = web.log_lines()
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    assert access and {"method", "path", "status", "duration_ms"} <= set(access[-1])
    assert not any(e.get("path", "").startswith("/-/") for e in access)  # probes are not logged


def test_sigterm_drains_in_flight_request(app_env: dict[str, str], released: object, tmp_path: Path) -> None:
    with running("web", app_env, tmp_path) as role:
        wait_http(role.url("/-/healthz"), proc=role.proc)
        result: dict[str, object] = {}

        def slow_request() -> None:
            result["answer"] = http_get(role.url("/slow/"), headers={"Host": "status.example.com"})

        thread = threading.Thread(target=slow_request)
        thread.start()
        wait_for(lambda: "GET /slow/" in role.output() or thread.is_alive(), what="slow request started")
        import time

        time.sleep(0.5)
        code = role.terminate()
        thread.join(10)
        assert result["answer"][0] == 200 and result["answer"][2] == b"slow done\n"  # type: ignore[index]
        assert code == 0


def test_liveness_on_the_metrics_port_answers_while_every_request_thread_is_busy(
        app_env: dict[str, str], released: object, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The Deployment's liveness probe asks the gunicorn master (metrics port), not a request
    thread: a loaded pod must not be restarted for answering its request port late."""
    import socket

    env = dict(app_env, GUNICORN_WORKERS="1", GUNICORN_THREADS="1")
    with running("web", env, tmp_path_factory.mktemp("web-busy-logs")) as role:
        wait_http(role.url("/-/healthz"), proc=role.proc)
        wait_http(role.url("/-/healthz", metrics=True), proc=role.proc)
        # A request whose headers never end holds the only request thread.
        held = socket.create_connection(("127.0.0.1", role.web_port), timeout=5)
        try:
            held.sendall(b"GET / HTTP/1.1\r\nHost: status.example.com\r\n")
            time.sleep(1)
            with pytest.raises(OSError):  # the request port cannot answer now (the premise)
                http_get(role.url("/-/healthz"), timeout=3)
            started = time.monotonic()
            status, _, body = http_get(role.url("/-/healthz", metrics=True), timeout=3)
            assert (status, body) == (200, b"ok\n")
            assert time.monotonic() - started < 1.0
        finally:
            held.close()
        wait_http(role.url("/-/healthz"), timeout=30, proc=role.proc)  # and the request port recovers
