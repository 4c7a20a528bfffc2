"""A load generator that runs inside the cluster, as a Pod of its own, for the zero-downtime tests.

It sends GET requests to TARGET (the web Service's cluster IP and port) without pause from
CONCURRENCY threads, each request on a new TCP connection (so every request goes through the
Service's current endpoints, as a new client would), and counts every answer that is not 2xx and
every connection error, reset or timeout. Standard library only: it runs with the Python of the
web image itself, so nothing but the images under test is needed in the cluster.

Control and results over HTTP on port 8080 (the test reaches the pod's IP):
  GET  /stats   {"requests", "errors", "errors_by_kind", "error_seconds", "p50_ms", "p99_ms",
                "max_ms", "rps"}; error_seconds maps each UTC second (ISO 8601) in which a request
                failed to {kind: count}, so a failure can be lined up with the cluster's events
  POST /reset   start a new measurement window (counters and latencies cleared)
  POST /load?threads=N&pause_ms=M   change the load: N of the MAX_THREADS (16) threads send,
                each pausing M ms after every answer (the autoscaling test's heavy and light load)

Environment: TARGET (host:port, required), PATHS (comma-separated, default "/"),
CONCURRENCY (default 4), TIMEOUT_SECONDS per request (default 5).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Stats:
    """Counters and latencies of one measurement window, shared by the request threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.started = time.monotonic()
            self.requests = 0
            self.errors: dict[str, int] = {}
            self.error_seconds: dict[str, dict[str, int]] = {}
            self.latencies: list[float] = []

    def record(self, seconds: float, error: str | None) -> None:
        with self.lock:
            self.requests += 1
            self.latencies.append(seconds)
            if error:
                self.errors[error] = self.errors.get(error, 0) + 1
                second = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                kinds = self.error_seconds.setdefault(second, {})
                kinds[error] = kinds.get(error, 0) + 1

    def snapshot(self) -> dict:
        with self.lock:
            latencies = sorted(self.latencies)
            elapsed = max(time.monotonic() - self.started, 1e-9)

            def percentile(p: float) -> float:
                if not latencies:
                    return 0.0
                return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

            return {
                "requests": self.requests,
                "errors": sum(self.errors.values()),
                "errors_by_kind": dict(self.errors),
                "error_seconds": {second: dict(kinds) for second, kinds in self.error_seconds.items()},
                "p50_ms": percentile(0.50),
                "p99_ms": percentile(0.99),
                "max_ms": round(latencies[-1] * 1000, 1) if latencies else 0.0,
                "seconds": round(elapsed, 1),
                "rps": round(self.requests / elapsed, 1),
            }


def one_request(host: str, port: int, path: str, timeout: float) -> str | None:
    """One GET on a new connection; None when the answer is 2xx, else what went wrong."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "statuspage.local", "Connection": "close"})
        response = conn.getresponse()
        response.read()
        return None if 200 <= response.status < 300 else f"http {response.status}"
    except ConnectionResetError:
        return "connection reset"
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return "timeout"
    except (http.client.HTTPException, OSError) as exc:
        return type(exc).__name__
    finally:
        conn.close()


MAX_THREADS = 16


class Pace:
    """How many threads send (the first `threads`) and how long each pauses after an answer."""

    def __init__(self, threads: int) -> None:
        self.threads = min(threads, MAX_THREADS)
        self.pause = 0.0

    def set(self, threads: int, pause_ms: int) -> dict:
        self.threads = max(0, min(threads, MAX_THREADS))
        self.pause = max(0, pause_ms) / 1000
        return {"threads": self.threads, "pause_ms": round(self.pause * 1000)}


def worker(number: int, pace: Pace, stats: Stats, target: tuple[str, int], paths: list[str], timeout: float,
           stop: threading.Event) -> None:
    index = 0
    while not stop.is_set():
        if number >= pace.threads:
            stop.wait(0.2)
            continue
        path = paths[index % len(paths)]
        index += 1
        started = time.monotonic()
        error = one_request(target[0], target[1], path, timeout)
        stats.record(time.monotonic() - started, error)
        if pace.pause:
            stop.wait(pace.pause)


def control_server(stats: Stats, pace: Pace) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer(stats.snapshot())

        def do_POST(self) -> None:  # noqa: N802
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/load":
                query = urllib.parse.parse_qs(url.query)
                threads = int(query.get("threads", [pace.threads])[0])
                pause_ms = int(query.get("pause_ms", ["0"])[0])
                self._answer(pace.set(threads, pause_ms))
                return
            stats.reset()
            self._answer({"reset": True})

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("0.0.0.0", 8080), Handler)


def main() -> int:
    target = os.environ.get("TARGET", "")
    if ":" not in target:
        print(json.dumps({"level": "error", "msg": "TARGET must be host:port"}), flush=True)
        return 78
    host, port = target.rsplit(":", 1)
    paths = [p for p in os.environ.get("PATHS", "/").split(",") if p]
    concurrency = int(os.environ.get("CONCURRENCY", "4"))
    timeout = float(os.environ.get("TIMEOUT_SECONDS", "5"))
    stats = Stats()
    pace = Pace(concurrency)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = [
        threading.Thread(target=worker, args=(n, pace, stats, (host, int(port)), paths, timeout, stop), daemon=True)
        for n in range(MAX_THREADS)
    ]
    for thread in threads:
        thread.start()
    server = control_server(stats, pace)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"level": "info", "msg": f"load on {target}{paths} from {concurrency} threads"}), flush=True)
    while not stop.wait(10):
        print(json.dumps({"level": "info", "msg": "stats", **stats.snapshot()}), flush=True)
    server.shutdown()
    print(json.dumps({"level": "info", "msg": "final", **stats.snapshot()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
