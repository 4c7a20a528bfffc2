"""Prometheus metrics: web requests (multi-process safe under gunicorn) and RQ queues/workers.

Web metrics are recorded by :mod:`statuspage_platform.wsgi`. When ``PROMETHEUS_MULTIPROC_DIR`` is set
(the entrypoint sets it for gunicorn), every gunicorn worker writes its samples there and the master
aggregates them in :func:`web_registry`. RQ metrics are read from Redis at scrape time by
:class:`RQCollector`, so they always describe the whole installation.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from statuspage_platform.config import RedisConfig

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "statuspage_http_requests",
    "HTTP requests answered by the web container.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "statuspage_http_request_duration_seconds",
    "Time from receiving a request to sending the last byte of its response.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Record one answered request; labels are bounded (unknown methods become OTHER)."""
    method = method if method in _METHODS else "OTHER"
    REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    LATENCY.labels(method=method, route=route).observe(seconds)


def web_registry() -> CollectorRegistry:
    """The registry to expose for the web role: aggregated over processes when multiprocess is on."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


# RQ keeps each job state in its own registry; "queued" is the queue itself.
_JOB_STATES = ("queued", "started", "deferred", "scheduled", "finished", "failed")


class RQCollector(Collector):
    """Read RQ queue and worker state from Redis on every scrape."""

    def __init__(self, redis_config: RedisConfig, queue_names: Iterable[str], timeout: float = 2.0) -> None:
        self.redis_config = redis_config
        self.queue_names = list(queue_names)
        self.timeout = timeout

    def _connection(self):  # type: ignore[no-untyped-def]
        from statuspage_platform.health import redis_client

        return redis_client(self.redis_config, self.timeout)

    def collect(self) -> Iterator[Metric]:
        """Yield the RQ gauges; statuspage_rq_up is 0 (and nothing else) when Redis cannot be read."""
        up = GaugeMetricFamily("statuspage_rq_up", "1 if RQ state could be read from Redis.")
        jobs = GaugeMetricFamily("statuspage_rq_jobs", "RQ jobs by queue and state.", labels=["queue", "state"])
        age = GaugeMetricFamily(
            "statuspage_rq_queue_oldest_job_age_seconds",
            "Age of the oldest job still waiting in the queue (0 when empty).",
            labels=["queue"],
        )
        workers = GaugeMetricFamily("statuspage_rq_workers", "RQ workers by state.", labels=["state"])
        connection = self._connection()
        try:
            self._fill(connection, jobs, age, workers)
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail
            log.warning("cannot read RQ state from Redis: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        finally:
            connection.close()
        up.add_metric([], 1)
        yield up
        yield jobs
        yield age
        yield workers

    def _fill(self, connection, jobs: GaugeMetricFamily, age: GaugeMetricFamily,  # type: ignore[no-untyped-def]
              workers: GaugeMetricFamily) -> None:
        from rq import Queue, Worker
        from rq.registry import (DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry,
                                 ScheduledJobRegistry, StartedJobRegistry)

        names = dict.fromkeys(self.queue_names)
        for queue in Queue.all(connection=connection):
            names.setdefault(queue.name)
        registries = {
            "started": StartedJobRegistry, "deferred": DeferredJobRegistry, "scheduled": ScheduledJobRegistry,
            "finished": FinishedJobRegistry, "failed": FailedJobRegistry,
        }
        now = datetime.now(timezone.utc)
        for name in names:
            queue = Queue(name, connection=connection)
            jobs.add_metric([name, "queued"], queue.count)
            for state, registry_class in registries.items():
                jobs.add_metric([name, state], registry_class(queue=queue).count)
            oldest = 0.0
            ids = queue.get_job_ids(0, 1)
            job = queue.fetch_job(ids[0]) if ids else None
            if job is not None and job.enqueued_at is not None:
                enqueued = job.enqueued_at
                if enqueued.tzinfo is None:
                    enqueued = enqueued.replace(tzinfo=timezone.utc)
                oldest = max(0.0, (now - enqueued).total_seconds())
            age.add_metric([name], oldest)
        states: dict[str, int] = {"busy": 0, "idle": 0, "suspended": 0, "started": 0}
        for worker in Worker.all(connection=connection):
            state = str(worker.get_state())
            state = state.split(".")[-1].lower()
            states[state] = states.get(state, 0) + 1
        for state, count in sorted(states.items()):
            workers.add_metric([state], count)
