"""Run one RQ worker or scheduler in this process against the test Redis; print what became of its
job, as JSON. SIGTERM is delivered where RQ's own classes lose or repeat a job.

usage: rq_shutdown.py CLASS QUEUE MODE   (Redis from STATUSPAGE_TEST_REDIS_PORT/_PASSWORD)

Worker modes (CLASS: an RQ worker class):
  ``after-dequeue``: enqueue one job, then SIGTERM this process the moment the worker's dequeue
  (BLPOP over QUEUE and QUEUE-low) returns it, before the worker marks itself busy: the window of
  rq/rq#2236.
  ``idle``: no job; the test sends SIGTERM from outside while the worker waits on an empty queue.
  Prints {"worked": bool, "status": job status or null, "queued": jobs left on the queue}.
Scheduler mode (CLASS: an rq-scheduler class; Django configured from the environment):
  ``after-push``: a cron job due now; SIGTERM the moment the scheduler has pushed it onto its
  queue, before it takes it off the schedule and puts it back at its next time.
  Prints {"exited": bool, "queued": jobs on the queue, "schedule": "due" | "later" | null}.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

import redis
from rq import Queue
from rq.utils import import_attribute


def connect() -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=int(os.environ["STATUSPAGE_TEST_REDIS_PORT"]),
                       password=os.environ["STATUSPAGE_TEST_REDIS_PASSWORD"])


def sigterm_after(owner: type, name: str) -> None:
    """Replace ``owner.name`` (a method) by one that SIGTERMs this process right after it returns."""
    raw = owner.__dict__[name]
    bound_to_class = isinstance(raw, classmethod)
    original = raw.__func__ if bound_to_class else raw

    def then_sigterm(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = original(*args, **kwargs)
        if result is not None:
            os.kill(os.getpid(), signal.SIGTERM)  # handled before this function returns
        return result

    setattr(owner, name, classmethod(then_sigterm) if bound_to_class else then_sigterm)


def scheduler(scheduler_class: str, queue_name: str) -> int:
    from statuspage_platform.entrypoint import setup_django

    setup_django()
    connection = connect()
    instance = import_attribute(scheduler_class)(queue_name=queue_name, interval=1, connection=connection)
    job = instance.cron("* * * * *", func="time.sleep", args=[0], queue_name=queue_name, timeout=60)
    connection.zadd(instance.scheduled_jobs_key, {job.id: 0})  # due now
    sigterm_after(Queue, "enqueue_job")
    exited = False
    try:
        instance.run()
    except SystemExit:
        exited = True
    score = connection.zscore(instance.scheduled_jobs_key, job.id)
    connection.zrem(instance.scheduled_jobs_key, job.id)
    schedule = None if score is None else ("later" if score > time.time() else "due")
    print(json.dumps({"exited": exited, "queued": Queue(queue_name, connection=connection).count,
                      "schedule": schedule}), flush=True)
    return 0


def main(worker_class: str, queue_name: str, mode: str) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if mode == "after-push":
        return scheduler(worker_class, queue_name)
    connection = connect()
    queue = Queue(queue_name, connection=connection)
    job = queue.enqueue("time.sleep", 0.2) if mode == "after-dequeue" else None
    if mode == "after-dequeue":
        sigterm_after(Queue, "dequeue_any")
    # Two queues, as the role listens to several: RQ then dequeues with BLPOP (with one queue it
    # uses BLMOVE through an intermediate list, which its maintenance later marks failed).
    queues = [queue, Queue(f"{queue_name}-low", connection=connection)]
    worker = import_attribute(worker_class)(queues, connection=connection)
    print("listening", flush=True)
    worked = worker.work(burst=False)
    status = job.get_status(refresh=True) if job else None
    print(json.dumps({"worked": worked, "status": status and str(status.value), "queued": queue.count}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
