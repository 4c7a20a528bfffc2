"""The RQ scheduler the scheduler role runs: rq-scheduler's, whose SIGTERM never splits a job's move.

rq-scheduler 0.14.0 (``Scheduler._install_signal_handlers``) raises ``SystemExit`` from its SIGTERM
handler wherever the process is. Moving a due job (``Scheduler.enqueue_job``) is three Redis calls:
push it onto its queue, remove it from the schedule, and for a repeating job (``interval``,
``cron_string``) add it back at its next time. A SIGTERM between the first two leaves the job queued
and still due (the next scheduler enqueues it again: it runs twice); between the last two it drops a
repeating job from the schedule for good. A rollout sends SIGTERM to the scheduler pod.

This scheduler finishes the pass of moves it is in, then exits; anywhere else (sleeping between
passes, most of its life) it exits at once, as rq-scheduler does, and so does a second signal. ``run``'s own ``finally`` removes
the lock and registers the death either way.
"""

from __future__ import annotations

import signal
from types import FrameType

from django_rq.queues import DjangoScheduler
from rq.job import Job


class Scheduler(DjangoScheduler):
    """django-rq's scheduler (``RQ_QUEUES`` timeouts, ``RQ['DEFAULT_RESULT_TTL']``) with a stop that
    waits for the current pass of moves (``enqueue_jobs``) to finish."""

    _moving = False
    _stop_requested = False

    def _install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM: exit now, or after the current pass of moves if one is running."""

        def stop(signum: int, frame: FrameType | None) -> None:
            if self._moving and not self._stop_requested:  # a second signal exits at once
                self._stop_requested = True
                return
            self._exit("Shutting down RQ scheduler...")

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

    def enqueue_jobs(self) -> list[Job]:
        """Move every due job to its queue (rq-scheduler's pass); exit afterwards if asked to meanwhile."""
        self._moving = True
        try:
            jobs = super().enqueue_jobs()
        finally:
            self._moving = False
        if self._stop_requested:
            self._exit("Shutting down RQ scheduler (after moving the due jobs)...")
        return jobs

    def _exit(self, message: str) -> None:
        """Raise SystemExit to ``run()``, whose cleanup (lock, death) no further signal cuts short."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.log.info(message)
        raise SystemExit()
