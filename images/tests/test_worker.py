"""The worker and scheduler roles: a job is picked up, probes and RQ metrics on the metrics port,
readiness follows PostgreSQL and Redis, and SIGTERM lets the current job finish, a job just
dequeued included (the worker class's warm shutdown, against RQ's own as a control)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from conftest import HERE, PLATFORM, Role, http_get, postgres_stopped, redis_stopped, running, wait_for, wait_http
from services import REDIS_PASSWORD, Services
from statuspage_platform.entrypoint import SCHEDULER_CLASS, WORKER_CLASS
from statuspage_platform.worker import STOP_CHECK_SECONDS


def rq_connection(services: Services) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=services.redis_port, db=0, password=REDIS_PASSWORD)


@pytest.fixture(scope="module")
def worker(app_env: dict[str, str], released: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Role]:
    with running("worker", app_env, tmp_path_factory.mktemp("worker-logs")) as role:
        wait_http(role.url("/-/healthz", metrics=True), proc=role.proc)
        yield role


def test_worker_picks_up_a_job(worker: Role, services: Services, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    queue = Queue("high", connection=rq_connection(services))
    job = queue.enqueue("probes.jobs.write_marker", str(marker), "picked up")
    wait_for(marker.exists, timeout=30, what="the worker ran the job")
    assert marker.read_text() == "picked up"
    wait_for(lambda: job.get_status(refresh=True) == "finished", what="job finished")


@pytest.mark.parametrize("queue_name", ["default", "low"])
def test_worker_listens_to_every_queue(worker: Role, services: Services, tmp_path: Path, queue_name: str) -> None:
    marker = tmp_path / queue_name
    Queue(queue_name, connection=rq_connection(services)).enqueue("probes.jobs.write_marker", str(marker), "x")
    wait_for(marker.exists, timeout=30, what=f"job on {queue_name} ran")


def test_worker_probes(worker: Role) -> None:
    assert http_get(worker.url("/-/healthz", metrics=True))[:3:2] == (200, b"ok\n")
    status, _, body = http_get(worker.url("/-/readyz", metrics=True))
    assert status == 200 and json.loads(body)["status"] == "ready"


def test_the_worker_role_runs_the_platform_worker_class(worker: Role) -> None:
    starts = [e for e in worker.log_lines() if e["msg"] == "starting worker"]
    assert [e["worker_class"] for e in starts] == [WORKER_CLASS]


def rq_samples(role: Role) -> dict[str, list]:
    status, _, body = http_get(role.url("/-/metrics", metrics=True))
    assert status == 200
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}


def test_rq_metrics(worker: Role, services: Services) -> None:
    queue = Queue("low", connection=rq_connection(services))
    # A job the worker cannot finish before we scrape: deferred behind a job id that never completes.
    families = rq_samples(worker)
    assert [s.value for s in families["statuspage_rq_up"]] == [1.0]
    jobs = {(s.labels["queue"], s.labels["state"]): s.value for s in families["statuspage_rq_jobs"]}
    for name in ("high", "default", "low"):
        for state in ("queued", "started", "finished", "failed", "deferred", "scheduled"):
            assert (name, state) in jobs
    assert jobs[("high", "finished")] >= 1
    workers = {s.labels["state"]: s.value for s in families["statuspage_rq_workers"]}
    assert sum(workers.values()) >= 1
    ages = {s.labels["queue"]: s.value for s in families["statuspage_rq_queue_oldest_job_age_seconds"]}
    assert set(ages) >= {"high", "default", "low"}
    assert "process_cpu_seconds_total" in {s.name for f in families.values() for s in f}
    assert queue.name == "low"


def test_worker_readiness_follows_services(worker: Role, services: Services) -> None:
    url = worker.url("/-/readyz", metrics=True)
    with postgres_stopped(services):
        status, _, body = http_get(url)
        assert status == 503 and json.loads(body)["checks"]["database"]["ok"] is False
    wait_for(lambda: http_get(url)[0] == 200, what="worker ready after PostgreSQL restart")
    with redis_stopped(services):
        status, _, body = http_get(url)
        assert status == 503 and json.loads(body)["checks"]["redis_tasks"]["ok"] is False
        families = rq_samples(worker)
        assert [s.value for s in families["statuspage_rq_up"]] == [0.0]
        assert http_get(worker.url("/-/healthz", metrics=True))[0] == 200
    wait_for(lambda: http_get(url)[0] == 200, timeout=60, what="worker ready after Redis restart")


def test_jobs_enqueued_through_the_web_are_run_by_the_worker(worker: Role, app_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    # The fixture's /jobs/ endpoint (what the pipeline tests use): POST enqueues, the worker writes rows.
    host = {"Host": "status.example.com"}
    with running("web", app_env, tmp_path) as web:
        wait_http(web.url("/-/healthz"), proc=web.proc)
        request = urllib.request.Request(web.url("/jobs/?count=3&seconds=0.1&queue=low&label=web-enqueued"),
                                         method="POST", headers=host)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 202 and len(json.load(response)["enqueued"]) == 3

        def finished() -> int:
            status, _, body = http_get(web.url("/jobs/"), headers=host)
            assert status == 200
            return json.loads(body)["finished"].get("web-enqueued", 0)

        wait_for(lambda: finished() == 3, timeout=30, what="three record jobs finished")
        status, _, body = http_get(web.url("/"), headers=host)
        assert status == 200 and b"job runs: 3" in body


def test_sigterm_finishes_the_current_job(worker: Role, services: Services, tmp_path: Path) -> None:
    # The module's worker itself (the last test that uses it): a second worker would race it for the job.
    marker = tmp_path / "slow-marker"
    job = Queue("default", connection=rq_connection(services)).enqueue(
        "probes.jobs.write_marker", str(marker), "finished after SIGTERM", 3.0)
    wait_for(lambda: job.get_status(refresh=True) == "started", what="job started")
    started = time.monotonic()
    code = worker.terminate(timeout=60)
    assert marker.read_text() == "finished after SIGTERM"
    assert job.get_status(refresh=True) == "finished"
    assert code == 0 and time.monotonic() - started < 30
    assert any("warm shut down" in e["msg"].lower() or "shutdown" in e["msg"].lower()
               for e in worker.log_lines())


def test_scheduler_runs_and_stops_on_sigterm(app_env: dict[str, str], released: object, tmp_path: Path) -> None:
    with running("scheduler", app_env, tmp_path) as role:
        wait_http(role.url("/-/healthz", metrics=True), proc=role.proc)
        status, _, body = http_get(role.url("/-/readyz", metrics=True))
        assert status == 200
        assert http_get(role.url("/-/metrics", metrics=True))[0] == 200
        time.sleep(1)
        assert role.proc.poll() is None
        code = role.terminate(timeout=30)
        assert code in (0, 143), role.output()
        starts = [e for e in role.log_lines() if e["msg"] == "starting scheduler"]  # every line is JSON
        assert [e["scheduler_class"] for e in starts] == [SCHEDULER_CLASS]


def rq_shutdown(services: Services, worker_class: str, mode: str,
                env: dict[str, str] | None = None) -> subprocess.Popen:
    """images/tests/rq_shutdown.py in a process of its own (it installs signal handlers)."""
    env = {**(env or {**os.environ, "PYTHONPATH": str(PLATFORM)}),
           "STATUSPAGE_TEST_REDIS_PORT": str(services.redis_port), "STATUSPAGE_TEST_REDIS_PASSWORD": REDIS_PASSWORD}
    queue = f"shutdown-{mode}-{uuid.uuid4().hex[:8]}"  # no other worker listens on it
    return subprocess.Popen([sys.executable, str(HERE / "rq_shutdown.py"), worker_class, queue, mode],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen, timeout: float) -> dict:
    """The script's JSON result; also that it ended through the warm shutdown, not an error (RQ's
    work loop returns False on any exception, as on a stop)."""
    out, err = proc.communicate(timeout=timeout)
    logs = out + err  # RQ's loggers (stderr), or Django's logging configuration (JSON on stdout)
    assert proc.returncode == 0, logs
    assert "unhandled exception" not in logs and "Traceback" not in logs, logs
    assert "warm shut down requested" in logs.lower() or "shutting down rq scheduler" in logs.lower(), logs
    return json.loads(out.splitlines()[-1])


def test_sigterm_right_after_a_dequeue_loses_the_job_with_rqs_worker(services: Services) -> None:
    # The defect this role's worker class exists for (rq/rq#2236), so the test below can fail:
    # the job was taken off its queue and is in no registry.
    result = finished(rq_shutdown(services, "rq.Worker", "after-dequeue"), timeout=60)
    assert result == {"worked": False, "status": "queued", "queued": 0}


def test_sigterm_right_after_a_dequeue_still_runs_the_job(services: Services) -> None:
    result = finished(rq_shutdown(services, WORKER_CLASS, "after-dequeue"), timeout=60)
    assert result == {"worked": True, "status": "finished", "queued": 0}


def test_an_idle_worker_stops_within_the_stop_check(services: Services) -> None:
    proc = rq_shutdown(services, WORKER_CLASS, "idle")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
    time.sleep(1.5)  # inside a blocking dequeue
    assert proc.poll() is None, "the worker ended before it was asked to"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    result = finished(proc, timeout=30)
    assert result == {"worked": False, "status": None, "queued": 0}
    assert time.monotonic() - started < STOP_CHECK_SECONDS + 2


def test_sigterm_right_after_a_push_repeats_the_job_with_rq_schedulers_scheduler(
        services: Services, app_env: dict[str, str]) -> None:
    # The control: rq-scheduler exits between pushing the job and taking it off the schedule, so
    # the job is queued and still due (the next scheduler queues it again).
    proc = rq_shutdown(services, "django_rq.queues.DjangoScheduler", "after-push", env=app_env)
    assert finished(proc, timeout=60) == {"exited": True, "queued": 1, "schedule": "due"}


def test_sigterm_right_after_a_push_finishes_the_move(services: Services, app_env: dict[str, str]) -> None:
    proc = rq_shutdown(services, SCHEDULER_CLASS, "after-push", env=app_env)
    assert finished(proc, timeout=60) == {"exited": True, "queued": 1, "schedule": "later"}
