"""gunicorn settings for the web role (after upstream's contrib/gunicorn.py), tunable by environment.

Loaded by the entrypoint as ``gunicorn --config python:statuspage_platform.gunicorn_conf``. The master
process serves the aggregated Prometheus metrics on the metrics port (9100) once it is ready.
"""

from __future__ import annotations

import os
from typing import Any

from statuspage_platform.config import ConfigError, Env
from statuspage_platform.jsonlog import capture_warnings, logging_config

# The entrypoint exec'd gunicorn, so warnings capture is set up again here (inherited by the workers).
capture_warnings()


def _settings(environ: dict[str, str] | None = None) -> dict[str, Any]:
    env = Env(environ)
    return {
        "port": env.port("WEB_PORT", 8000),
        "workers": env.integer("GUNICORN_WORKERS", 3, 1, 64),
        "threads": env.integer("GUNICORN_THREADS", 3, 1, 64),
        "timeout": env.integer("GUNICORN_TIMEOUT", 120, 1, 3600),
        "graceful_timeout": env.integer("GUNICORN_GRACEFUL_TIMEOUT", 30, 1, 3600),
        "keepalive": env.integer("GUNICORN_KEEPALIVE", 75, 1, 3600),
        # Off by default: a gthread worker that recycles itself after max_requests resets a few
        # connections it had accepted (measured under load in the cluster: 7 of 36,592 requests
        # in 60 s, none with recycling off; tests/suites/55-zero-downtime.sh).
        "max_requests": env.integer("GUNICORN_MAX_REQUESTS", 0, 0, 10_000_000),
        "max_requests_jitter": env.integer("GUNICORN_MAX_REQUESTS_JITTER", 0, 0, 1_000_000),
        "metrics_port": env.port("METRICS_PORT", 9100),
        "log_level": (env.optional("LOG_LEVEL", "INFO") or "INFO").upper(),
    }


try:
    _S = _settings()
except ConfigError as _exc:  # the entrypoint validated already; this guards direct use
    raise SystemExit(f"configuration error: {_exc}") from None

wsgi_app = "statuspage_platform.wsgi:application"
chdir = os.environ.get("STATUSPAGE_HOME", "/opt/statuspage/statuspage")
bind = [f"0.0.0.0:{_S['port']}"]
workers = _S["workers"]
threads = _S["threads"]
timeout = _S["timeout"]
graceful_timeout = _S["graceful_timeout"]
keepalive = _S["keepalive"]  # longer than the ALB's 60 s idle timeout
max_requests = _S["max_requests"]
max_requests_jitter = _S["max_requests_jitter"]
worker_tmp_dir = os.environ.get("TMPDIR", "/tmp")  # noqa: S108 - the one writable path
accesslog = "-"
errorlog = "-"
logconfig_dict = logging_config(_S["log_level"])
proc_name = "statuspage-web"


def when_ready(server: Any) -> None:
    """Serve /-/healthz and the aggregated /-/metrics from the master on the metrics port."""
    from statuspage_platform import probe_server
    from statuspage_platform.metrics import web_registry

    probe_server.start(_S["metrics_port"], web_registry, None)
    server.log.info("metrics and liveness on :%s", _S["metrics_port"])


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the multiprocess directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
