"""A tiny HTTP server thread for /-/healthz, /-/readyz and /-/metrics on the metrics port (9100).

Used by the worker and the scheduler (in their own process) and by the gunicorn master (for the
aggregated web metrics). It serves only these three GET paths and nothing else.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from statuspage_platform import jsonlog

HEALTHZ = "/-/healthz"
READYZ = "/-/readyz"
METRICS = "/-/metrics"

ReadinessFn = Callable[[], "tuple[bool, dict[str, dict[str, object]]]"]


def readiness_body(ready: bool, checks: dict[str, dict[str, object]]) -> bytes:
    """The JSON body of a readiness answer."""
    return json.dumps({"status": "ready" if ready else "not ready", "checks": checks}).encode()


class ProbeServer(ThreadingHTTPServer):
    """An HTTP server that knows its registry and readiness function."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry | Callable[[], CollectorRegistry],
                 readiness: ReadinessFn | None) -> None:
        super().__init__(address, _Handler)
        self.registry = registry
        self.readiness = readiness

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """One JSON log line for a request that raised (a client gone mid-answer, a failing
        readiness function), instead of socketserver's plain-text traceback on stderr, which
        would break the JSON-lines log contract. The server keeps serving."""
        exc = sys.exc_info()[1]
        jsonlog.log(logging.WARNING, "probe request failed", logger="statuspage_platform.probe_server",
                    client=client_address[0] if client_address else None,
                    error=f"{type(exc).__name__}: {exc}" if exc else "unknown")

    def current_registry(self) -> CollectorRegistry:
        """The registry to expose now (a callable is called on every scrape)."""
        return self.registry() if callable(self.registry) else self.registry


class _Handler(BaseHTTPRequestHandler):
    server: ProbeServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        path = self.path.split("?", 1)[0]
        if path == HEALTHZ:
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == READYZ and self.server.readiness is not None:
            ready, checks = self.server.readiness()
            self._send(200 if ready else 503, readiness_body(ready, checks), "application/json")
        elif path == METRICS:
            self._send(200, generate_latest(self.server.current_registry()), CONTENT_TYPE_LATEST)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence probe noise
        return


def start(port: int, registry: CollectorRegistry | Callable[[], CollectorRegistry],
          readiness: ReadinessFn | None, host: str = "0.0.0.0") -> ProbeServer:  # noqa: S104 - pod port
    """Start the server on a daemon thread and return it (``shutdown()`` stops it)."""
    server = ProbeServer((host, port), registry, readiness)
    thread = threading.Thread(target=server.serve_forever, name="probe-server", daemon=True)
    thread.start()
    return server
