"""Small pure functions: route labels, the JSON formatter, RQ metrics when Redis is down."""

from __future__ import annotations

import json
import logging

from prometheus_client import CollectorRegistry, generate_latest

from services import free_port
from statuspage_platform.config import RedisConfig
from statuspage_platform.jsonlog import DropProbes, JsonFormatter
from statuspage_platform.metrics import RQCollector
from statuspage_platform.wsgi import is_hashed_name, route_label


def test_route_labels_are_bounded() -> None:
    assert route_label("/") == "/"
    assert route_label("/-/healthz") == "/-/healthz"
    assert route_label("/dashboard/incidents/12/") == "/dashboard/"
    assert route_label("/api/incidents/") == "/api/"
    assert route_label("/wp-login.php") == "other"
    assert route_label("/random-123/") == "other"


def test_hashed_names() -> None:
    assert is_hashed_name("", "/static/assets/main.6f8fc17f.min.js")
    assert not is_hashed_name("", "/static/css/app.css")


def test_json_formatter_fields_and_extras() -> None:
    record = logging.makeLogRecord({"name": "x", "levelno": 30, "levelname": "WARNING", "msg": "a %s",
                                    "args": ("b",), "step": "migrate"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "a b" and entry["level"] == "warning" and entry["step"] == "migrate"
    assert entry["ts"].endswith("Z")


def test_gunicorn_access_records_become_fields_and_probes_are_dropped() -> None:
    atoms = {"h": "10.0.0.1", "m": "GET", "U": "/api/", "q": "", "s": "200", "B": "12", "f": "-", "a": "curl",
             "D": "1500"}
    record = logging.makeLogRecord({"name": "gunicorn.access", "levelno": 20, "levelname": "INFO",
                                    "msg": "%(h)s", "args": ()})
    record.args = atoms
    entry = json.loads(JsonFormatter().format(record))
    assert entry["status"] == 200 and entry["duration_ms"] == 1.5 and entry["msg"] == "GET /api/ 200"
    assert DropProbes().filter(record)
    record.args = dict(atoms, U="/-/readyz")
    assert not DropProbes().filter(record)


def test_rq_collector_reports_down_without_failing_the_scrape() -> None:
    registry = CollectorRegistry()
    dead = RedisConfig(host="127.0.0.1", port=free_port(), database=0, password="", ssl=False,
                       skip_tls_verify=False)
    registry.register(RQCollector(dead, ["default"], timeout=0.5))
    text = generate_latest(registry).decode()
    assert "statuspage_rq_up 0.0" in text


def test_probe_server_logs_a_failed_request_as_one_json_line_and_keeps_serving(capsys) -> None:
    import urllib.error
    import urllib.request

    from statuspage_platform import probe_server

    def failing_readiness() -> tuple[bool, dict]:
        raise RuntimeError("readiness exploded")

    port = free_port()
    server = probe_server.start(port, CollectorRegistry(), failing_readiness, host="127.0.0.1")
    try:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/-/readyz", timeout=5)
        except (urllib.error.URLError, ConnectionError, OSError):
            pass  # the handler raised: the connection closes without an answer
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        server.shutdown()
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    lines = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    failed = [line for line in lines if line.get("msg") == "probe request failed"]
    assert len(failed) == 1, lines
    assert failed[0]["level"] == "warning"
    assert failed[0]["error"] == "RuntimeError: readiness exploded"
    assert failed[0]["client"] == "127.0.0.1"
