"""Fixtures: real PostgreSQL and Redis on loopback, the environment the images read, and processes
started through the real entrypoint (``python -m statuspage_platform.entrypoint ROLE``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PLATFORM = HERE.parent / "platform"
# The stand-in Status-Page tree the image build tests use too (its statuspage/ project folder).
FIXTURE_SOURCE = HERE.parent.parent / "tests" / "fixtures" / "statuspage-src"
sys.path.insert(0, str(PLATFORM))
sys.path.insert(0, str(HERE))

import services as svc_mod  # noqa: E402

SECRET_KEY = "k8s-test-" + "x7Qp2LmN9vR4sT1uW6yZ3aB8cD5eF0gH" * 2


@pytest.fixture(scope="session")
def services() -> Iterator[svc_mod.Services]:
    """PostgreSQL and Redis: the suite script's (STATUSPAGE_TEST_SERVICES) or our own."""
    state = os.environ.get("STATUSPAGE_TEST_SERVICES")
    if state:
        yield svc_mod.Services.load(state)
        return
    with tempfile.TemporaryDirectory(prefix="statuspage-svc-") as tmp:
        started = svc_mod.start_all(tmp)
        try:
            yield started
        finally:
            svc_mod.stop_all(started)


def minimal_env() -> dict[str, str]:
    """A valid configuration environment except for the services' addresses."""
    return {
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "status.example.com,127.0.0.1,localhost",
        "SITE_URL": "https://status.example.com",
        "DATABASE_HOST": "127.0.0.1", "DATABASE_NAME": "statuspage", "DATABASE_USER": "statuspage",
        "DATABASE_PASSWORD": "pw", "REDIS_HOST": "127.0.0.1",
        "STATUSPAGE_SECRETS_DIR": "/nonexistent/statuspage-secrets",
    }


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the fixture's project folder (the one with manage.py), as the image has it."""
    root = tmp_path_factory.mktemp("source") / "statuspage"
    shutil.copytree(FIXTURE_SOURCE / "statuspage", root)
    return root


@pytest.fixture(scope="session")
def static_root(project: Path) -> Path:
    """The project's STATIC_ROOT as the image has it: plain, hashed and docs files, precompressed."""
    root = project / "static"
    (root / "css").mkdir(parents=True)
    (root / "css" / "app.css").write_text("body { color: #123456; }\n" * 200)
    (root / "js").mkdir()
    (root / "js" / "main.0123abcd89.min.js").write_text("console.log('hashed');\n" * 100)
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<html><body>docs</body></html>\n")
    subprocess.run([sys.executable, "-m", "whitenoise.compress", "--quiet", str(root)], check=True)
    return root


@pytest.fixture(scope="session")
def app_env(services: svc_mod.Services, project: Path, static_root: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The full environment for entrypoint processes against the test services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "PROMETHEUS_"))}
    env.update(minimal_env())
    env.update(services.env())
    env.update({
        "PYTHONPATH": os.pathsep.join([str(PLATFORM), str(project)]),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
        "STATUSPAGE_HOME": str(project),
        "DJANGO_SETTINGS_MODULE": "statuspage.settings",
        "STATUS_PAGE_CONFIGURATION": "statuspage_platform.configuration",
        "TMPDIR": str(tmp_path_factory.mktemp("tmpdir")),
        "PYTHONDONTWRITEBYTECODE": "1",
        "READINESS_TIMEOUT": "1",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_GRACEFUL_TIMEOUT": "10",
    })
    return env


def entrypoint(role: str, env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the entrypoint to completion and capture its output."""
    return subprocess.run([sys.executable, "-m", "statuspage_platform.entrypoint", role, *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=str(HERE))


@pytest.fixture(scope="session")
def released(app_env: dict[str, str]) -> subprocess.CompletedProcess:
    """The release steps, run once against the test database."""
    result = entrypoint("release", app_env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def http_get(url: str, timeout: float = 10, headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, str], bytes]:
    """GET a URL; returns (status, headers, body) for any HTTP status."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def wait_http(url: str, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
    """Wait until the URL answers 200."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {url} answered")
        try:
            status, _, _ = http_get(url, timeout=2)
            if status == 200:
                return
            last = status
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s (last: {last})")


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    """Poll until predicate() is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout}s")


class Role:
    """A long-running entrypoint process (web, worker or scheduler) with its ports and output file."""

    def __init__(self, role: str, env: dict[str, str], log_dir: Path) -> None:
        self.role = role
        self.web_port = svc_mod.free_port()
        self.metrics_port = svc_mod.free_port()
        self.env = dict(env, WEB_PORT=str(self.web_port), METRICS_PORT=str(self.metrics_port))
        self.log_path = log_dir / f"{role}-{self.metrics_port}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "statuspage_platform.entrypoint", role],
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(HERE))

    def url(self, path: str, metrics: bool = False) -> str:
        return f"http://127.0.0.1:{self.metrics_port if metrics else self.web_port}{path}"

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def log_lines(self) -> list[dict]:
        """Every stdout line, parsed as JSON (fails the test if one is not JSON)."""
        lines = [line for line in self.output().splitlines() if line.strip()]
        return [json.loads(line) for line in lines]

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def running(role: str, env: dict[str, str], log_dir: Path) -> Iterator[Role]:
    """Start a role and always stop it."""
    proc = Role(role, env, log_dir)
    try:
        yield proc
    finally:
        proc.terminate()


@contextlib.contextmanager
def postgres_stopped(services: svc_mod.Services) -> Iterator[None]:
    """Stop PostgreSQL by PID for the duration of the block; always restart it."""
    svc_mod.stop_postgres(services)
    try:
        yield
    finally:
        svc_mod.start_postgres(services)


@contextlib.contextmanager
def redis_stopped(services: svc_mod.Services) -> Iterator[None]:
    """Stop Redis by PID for the duration of the block; always restart it."""
    svc_mod.stop_redis(services)
    try:
        yield
    finally:
        svc_mod.start_redis(services)
