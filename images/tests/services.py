"""Real PostgreSQL and Redis on loopback for the tests, started, stopped and restarted by PID.

Run as a script by tests/suites/30-images.sh (``start`` writes an env file, ``stop`` ends both), and
imported by conftest.py, whose fixtures stop and restart a service for the readiness tests. PostgreSQL
refuses to run as root, so it runs as the ``postgres`` user (``runuser``) when we are root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
DB_NAME = "statuspage"
DB_USER = "statuspage"
DB_PASSWORD = "test-db-password-1"
REDIS_PASSWORD = "test-redis-password-1"


@dataclass
class Services:
    """Where the services live; saved as JSON in the state directory."""

    state_dir: str
    pg_port: int
    redis_port: int

    @property
    def pg_data(self) -> Path:
        return Path(self.state_dir) / "pgdata"

    @property
    def pg_socket_dir(self) -> Path:
        return Path(self.state_dir) / "pgsock"

    @property
    def redis_pidfile(self) -> Path:
        return Path(self.state_dir) / "redis.pid"

    def env(self) -> dict[str, str]:
        """The environment variables the images' configuration reads, pointing at these services."""
        return {
            "DATABASE_HOST": "127.0.0.1", "DATABASE_PORT": str(self.pg_port), "DATABASE_NAME": DB_NAME,
            "DATABASE_USER": DB_USER, "DATABASE_PASSWORD": DB_PASSWORD, "DATABASE_SSLMODE": "disable",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.redis_port), "REDIS_PASSWORD": REDIS_PASSWORD,
        }

    def save(self) -> None:
        (Path(self.state_dir) / "services.json").write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, state_dir: str) -> "Services":
        return cls(**json.loads((Path(state_dir) / "services.json").read_text()))


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _wait_port(port: int, up: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            reachable = sock.connect_ex(("127.0.0.1", port)) == 0
        if reachable == up:
            return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} still {'down' if up else 'up'} after {timeout}s")


def _wait_pid_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"process {pid} did not exit within {timeout}s")


def pg_pid(svc: Services) -> int | None:
    """The postmaster's PID from postmaster.pid, if it runs."""
    try:
        pid = int((svc.pg_data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def redis_pid(svc: Services) -> int | None:
    """redis-server's PID from its pidfile, if it runs."""
    try:
        pid = int(svc.redis_pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start_postgres(svc: Services) -> None:
    """Start (initialising on first use) PostgreSQL on 127.0.0.1:pg_port and wait until it accepts."""
    first = not (svc.pg_data / "PG_VERSION").exists()
    if first:
        svc.pg_data.mkdir(parents=True, exist_ok=True)
        svc.pg_socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(svc.pg_data, "postgres", "postgres")
            shutil.chown(svc.pg_socket_dir, "postgres", "postgres")
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(svc.pg_data), "-U", "postgres",
                                     "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8"]),
                       check=True, stdout=subprocess.DEVNULL)
    opts = (f"-p {svc.pg_port} -k {svc.pg_socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c shared_buffers=32MB")
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(svc.pg_data), "-o", opts, "-w", "-t", "60",
                                 "-l", str(svc.pg_socket_dir / "postgres.log"), "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    _wait_port(svc.pg_port, up=True)
    if first:
        sql = (f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'; "
               f"CREATE DATABASE {DB_NAME} OWNER {DB_USER};")
        for statement in sql.split("; "):
            subprocess.run(_as_postgres([str(PG_BIN / "psql"), "-h", str(svc.pg_socket_dir), "-p", str(svc.pg_port),
                                         "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                                         "-qc", statement.rstrip(";")]),
                           check=True, stdout=subprocess.DEVNULL)


def stop_postgres(svc: Services) -> None:
    """Fast shutdown by PID (SIGINT), then wait until the process and the port are gone."""
    pid = pg_pid(svc)
    if pid is None:
        return
    os.kill(pid, signal.SIGINT)
    _wait_pid_gone(pid)
    _wait_port(svc.pg_port, up=False)


def start_redis(svc: Services) -> None:
    """Start redis-server on 127.0.0.1:redis_port with a password and no persistence."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    subprocess.run([redis_server, "--bind", "127.0.0.1", "--port", str(svc.redis_port),
                    "--requirepass", REDIS_PASSWORD, "--save", "", "--appendonly", "no",
                    "--daemonize", "yes", "--pidfile", str(svc.redis_pidfile),
                    "--logfile", str(Path(svc.state_dir) / "redis.log"), "--dir", svc.state_dir],
                   check=True)
    _wait_port(svc.redis_port, up=True)


def stop_redis(svc: Services) -> None:
    """SIGTERM by PID, then wait until the process and the port are gone."""
    pid = redis_pid(svc)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    _wait_pid_gone(pid)
    _wait_port(svc.redis_port, up=False)


def start_all(state_dir: str) -> Services:
    """Start both services on free ports; the state directory remembers where they are."""
    os.makedirs(state_dir, exist_ok=True)
    os.chmod(state_dir, 0o755)
    svc = Services(state_dir=state_dir, pg_port=free_port(), redis_port=free_port())
    svc.save()
    start_postgres(svc)
    start_redis(svc)
    return svc


def stop_all(svc: Services) -> None:
    """Stop both (each by its current PID); never raises."""
    for stop in (stop_redis, stop_postgres):
        try:
            stop(svc)
        except Exception as exc:  # noqa: BLE001 - best effort at teardown
            print(f"services: {stop.__name__}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    command, directory = sys.argv[1], sys.argv[2]
    if command == "start":
        started = start_all(directory)
        print(json.dumps(asdict(started)))
    elif command == "stop":
        stop_all(Services.load(directory))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} start|stop STATE_DIR")
