"""``statuspage-entrypoint``: one command for every role of the Status-Page images.

Usage::

    statuspage-entrypoint web          gunicorn (port 8000; metrics on 9100)
    statuspage-entrypoint worker       RQ worker on WORKER_QUEUES (probes and metrics on 9100)
    statuspage-entrypoint scheduler    RQ scheduler (probes and metrics on 9100)
    statuspage-entrypoint release      migrate, remove_stale_contenttypes, clearsessions, clearcache
    statuspage-entrypoint check-config validate the environment and exit
    statuspage-entrypoint healthcheck  GET 127.0.0.1:$METRICS_PORT/-/healthz (for Docker's HEALTHCHECK)
    statuspage-entrypoint manage ARGS  any manage.py command

Every role validates the environment first: a missing or malformed value ends the process with exit
code 78 after one JSON line naming the variable.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from types import FrameType

from statuspage_platform.config import Config, ConfigError, load
from statuspage_platform.jsonlog import capture_warnings, log

EX_CONFIG = 78
DEFAULT_HOME = "/opt/statuspage/statuspage"
RELEASE_STEPS: tuple[tuple[str, ...], ...] = (
    ("migrate", "--no-input"),
    ("remove_stale_contenttypes", "--no-input"),
    ("clearsessions",),
    ("clearcache",),
)
ROLES = ("web", "worker", "scheduler", "release", "check-config", "healthcheck", "manage")
# The RQ worker class of the worker role (see statuspage_platform/worker.py).
WORKER_CLASS = "statuspage_platform.worker.Worker"
# The rq-scheduler class of the scheduler role (see statuspage_platform/scheduler.py).
SCHEDULER_CLASS = "statuspage_platform.scheduler.Scheduler"


class LogStream(io.TextIOBase):
    """A text stream that turns each line a management command prints into one JSON log line."""

    def __init__(self, logger: logging.Logger, level: int, **fields: object) -> None:
        self.logger = logger
        self.level = level
        self.fields = fields
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if line.strip():
                self.logger.log(self.level, line.strip(), extra=self.fields)
        return len(text)

    def flush(self) -> None:
        if self._buffer.strip():
            self.logger.log(self.level, self._buffer.strip(), extra=self.fields)
        self._buffer = ""


class Terminated(SystemExit):
    """Raised by the early SIGTERM handler, before a role installs its own."""


def _early_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated(128 + signum)


def validate() -> Config:
    """Load the configuration or exit 78 with one line naming the bad variable."""
    try:
        return load()
    except ConfigError as exc:
        log(logging.ERROR, f"configuration error: {exc}", logger="statuspage_platform.config",
            setting=exc.name)
        raise SystemExit(EX_CONFIG) from None


def home() -> str:
    """The Status-Page project directory (the one with manage.py)."""
    return os.environ.get("STATUSPAGE_HOME", DEFAULT_HOME)


def setup_django() -> None:
    """Make Status-Page importable and configure Django."""
    path = home()
    os.chdir(path)
    if path not in sys.path:
        sys.path.insert(0, path)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statuspage.settings")
    os.environ.setdefault("STATUS_PAGE_CONFIGURATION", "statuspage_platform.configuration")
    import django

    from statuspage_platform import database

    django.setup()
    database.complete()


def run_web(config: Config) -> int:
    """Replace this process with gunicorn (PID 1 stays gunicorn, which drains on SIGTERM)."""
    metrics_dir = os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "statuspage-metrics"))  # noqa: S108
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, mode=0o700)
    gunicorn = shutil.which("gunicorn") or "gunicorn"
    log(logging.INFO, "starting web", role="web", port=config.web_port, metrics_port=config.metrics_port)
    sys.stdout.flush()
    os.execv(gunicorn, [gunicorn, "--config", "python:statuspage_platform.gunicorn_conf"])
    return 1  # not reached


def _start_probes(config: Config, with_rq: bool) -> None:
    from prometheus_client import REGISTRY

    from statuspage_platform import probe_server
    from statuspage_platform.health import readiness
    from statuspage_platform.metrics import RQCollector

    if with_rq:
        REGISTRY.register(RQCollector(config.redis_tasks, config.worker_queues, config.readiness_timeout))
    probe_server.start(config.metrics_port, REGISTRY, lambda: readiness(config))


def run_worker(config: Config) -> int:
    """RQ worker on the configured queues. On SIGTERM it finishes the current job, a job it has just
    dequeued included, then exits (``statuspage_platform.worker.Worker``, a warm shutdown that
    closes RQ's window between dequeue and execution)."""
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    setup_django()
    _start_probes(config, with_rq=True)
    from django.core.management import call_command

    logging.getLogger("statuspage_platform").info(
        "starting worker", extra={"role": "worker", "queues": config.worker_queues,
                                  "worker_class": WORKER_CLASS, "metrics_port": config.metrics_port})
    call_command("rqworker", *config.worker_queues, worker_class=WORKER_CLASS)
    return 0


def run_scheduler(config: Config) -> int:
    """RQ scheduler; on SIGTERM it exits, after the pass of moves it is in if any
    (``statuspage_platform.scheduler.Scheduler``, through django-rq's ``RQ['SCHEDULER_CLASS']``)."""
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    setup_django()
    _start_probes(config, with_rq=False)
    from django.conf import settings
    from django.core.management import call_command

    # Status-Page's settings define no RQ dict; keep any it may define later.
    settings.RQ = {**getattr(settings, "RQ", {}), "SCHEDULER_CLASS": SCHEDULER_CLASS}
    logging.getLogger("statuspage_platform").info(
        "starting scheduler", extra={"role": "scheduler", "scheduler_class": SCHEDULER_CLASS,
                                     "metrics_port": config.metrics_port})
    call_command("rqscheduler")
    return 0


def run_release(config: Config, steps: Sequence[Sequence[str]] = RELEASE_STEPS) -> int:
    """The release steps, in order; stops at the first failure with a non-zero exit."""
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    setup_django()
    from django.core.management import call_command

    logger = logging.getLogger("statuspage_platform")
    started = time.monotonic()
    for step in steps:
        begin = time.monotonic()
        logger.info("release step starting", extra={"role": "release", "step": " ".join(step)})
        fields = {"role": "release", "step": " ".join(step)}
        out, err = LogStream(logger, logging.INFO, **fields), LogStream(logger, logging.WARNING, **fields)
        try:
            call_command(*step, stdout=out, stderr=err, no_color=True)
            out.flush()
            err.flush()
        except BaseException as exc:  # noqa: BLE001 - report any failure as one line, then fail
            logger.error("release step failed", extra={
                "role": "release", "step": " ".join(step), "error": f"{type(exc).__name__}: {exc}"})
            return 1
        logger.info("release step done", extra={
            "role": "release", "step": " ".join(step), "seconds": round(time.monotonic() - begin, 3)})
    logger.info("release done", extra={"role": "release", "seconds": round(time.monotonic() - started, 3)})
    return 0


def run_manage(args: Sequence[str]) -> int:
    """Any manage.py command, e.g. ``manage createsuperuser``."""
    setup_django()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *args])
    return 0


def run_healthcheck() -> int:
    """Exit 0 if this container's liveness endpoint answers 200 within 3 s."""
    port = os.environ.get("METRICS_PORT", "9100")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthz", timeout=3) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except (OSError, urllib.error.URLError):
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch on the role named by the first argument (default ``web``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    role = args[0] if args else "web"
    if role not in ROLES:
        log(logging.ERROR, f"unknown role {role!r}; expected one of: {', '.join(ROLES)}")
        return 64
    if role == "healthcheck":
        return run_healthcheck()
    capture_warnings()
    signal.signal(signal.SIGTERM, _early_sigterm)  # PID 1 ignores SIGTERM unless handled
    config = validate()
    if role == "check-config":
        log(logging.INFO, "configuration ok", logger="statuspage_platform.config")
        return 0
    if role == "web":
        return run_web(config)
    if role == "worker":
        return run_worker(config)
    if role == "scheduler":
        return run_scheduler(config)
    if role == "release":
        return run_release(config)
    return run_manage(args[1:])


if __name__ == "__main__":
    sys.exit(main())
