"""The RQ worker the worker role runs: RQ's forking ``Worker`` whose warm shutdown never drops a job.

RQ 2.x (``rq.worker.base.BaseWorker.request_stop``, rq 2.12.0) raises ``StopRequested`` from the
SIGTERM handler whenever the worker is not yet BUSY. That includes the moment after ``BLPOP`` took a
job off its queue and before the worker marked itself BUSY: the exception unwinds the work loop and
the job is gone, in no queue and no registry (rq/rq#2236, open). A Kubernetes rollout sends SIGTERM
to workers that are busy with a batch, so sooner or later it lands in that window.

This worker never raises from the signal handler: SIGTERM/SIGINT only records the request, as RQ
does for a busy worker. The work loop stops at its next turn: after the current job if it has one
(including one it just dequeued), or within ``STOP_CHECK_SECONDS`` when idle, because each blocking
dequeue waits at most that long (also while Redis is unreachable: the reconnect backoff is cut short).
A second signal is RQ's cold shutdown, unchanged.
"""

from __future__ import annotations

import math
import signal
import time
from types import FrameType

import redis
from rq import Worker as RQWorker
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus

# Longest blocking dequeue (seconds, a whole number as Redis' BLPOP takes it): how long an idle
# worker may take to notice a stop request. Well under the pods' grace period (330 s).
STOP_CHECK_SECONDS = 2


class Worker(RQWorker):
    """``rq.Worker`` (fork a work horse per job) with a warm shutdown that finishes a dequeued job."""

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Record a warm shutdown request; the work loop stops at its next turn.

        Never raises and does no Redis I/O: the handler runs between two bytecodes of the main
        thread, which may hold redis-py's connection-pool lock (RQ's own handler writes the
        shutdown date to Redis here when busy; that informational field is left out).
        """
        self.log.debug("Worker %s: got signal %s", self.name, signal.Signals(signum).name)
        self._shutdown_requested_date = now()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        self.handle_warm_shutdown_request()
        self._stop_requested = True

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """The next job, or None once a stop was requested, in burst mode when nothing is queued,
        or after ``max_idle_time`` seconds idle.

        RQ's own dequeue (``BaseWorker.dequeue_job_and_maintain_ttl``) with each blocking wait at
        most ``STOP_CHECK_SECONDS``, and Redis connection errors retried with RQ's backoff while no
        stop is requested. ``timeout`` None is burst mode: one non-blocking pass.
        """
        self.set_state(WorkerStatus.IDLE)
        self.procline("Listening on " + ",".join(self.queue_names()))
        idle_since = time.monotonic()
        backoff = 1.0
        while True:
            wait = _wait_seconds(timeout, max_idle_time, time.monotonic() - idle_since)
            if wait == 0 or self._stopping():
                return None
            try:
                self.heartbeat()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                if self._stopping():  # checked again right before a job can be taken
                    return None
                result = self.queue_class.dequeue_any(
                    self._ordered_queues, wait, connection=self.connection, job_class=self.job_class,
                    serializer=self.serializer, death_penalty_class=self.death_penalty_class)
            except DequeueTimeout:
                continue
            except redis.exceptions.ConnectionError as error:
                self.log.error("Worker %s: could not connect to Redis: %s; retrying in %.0f s",
                               self.name, error, backoff)
                self._pause(backoff)
                backoff = min(backoff * self.exponential_backoff_factor, self.max_connection_wait_time)
                continue
            if result is not None:
                job, queue = result
                self.reorder_queues(reference_queue=queue)
                job.redis_server_version = self.get_redis_server_version()
                described = f"{job.description} ({job.id})" if self.log_job_description else job.id
                self.log.info("Worker %s: %s: %s", self.name, queue.name, described)
            return result

    def _stopping(self) -> bool:
        """True once a stop was requested (logged here: RQ's loop then ends without a word)."""
        if self._stop_requested:
            self.log.info("Worker %s: stopping on request, no job in hand", self.name)
        return self._stop_requested

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less once a stop is requested."""
        deadline = time.monotonic() + seconds
        while not self._stop_requested and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _wait_seconds(timeout: int | None, max_idle_time: int | None, idle_for: float) -> int | None:
    """The next dequeue's wait in whole seconds: None for burst mode's non-blocking pass, 0 when
    ``max_idle_time`` (seconds) is used up, else at most ``STOP_CHECK_SECONDS``."""
    if timeout is None:
        return None
    wait = min(timeout, STOP_CHECK_SECONDS)
    if max_idle_time is None:
        return wait
    left = max_idle_time - idle_for
    return 0 if left <= 0 else max(1, min(wait, math.ceil(left)))
