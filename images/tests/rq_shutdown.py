"""Run one RQ worker in this process against the test Redis and print what became of its job, as JSON.

usage: rq_shutdown.py WORKER_CLASS QUEUE MODE   (Redis from STATUSPAGE_TEST_REDIS_PORT/_PASSWORD)

MODE ``after-dequeue``: enqueue one job, then deliver SIGTERM to this process the moment the worker's
dequeue returns it (before the worker marks itself busy: the window of rq/rq#2236).
MODE ``idle``: no job; the test sends SIGTERM from outside while the worker waits on an empty queue.
Prints {"worked": bool, "status": job status or null, "queued": jobs left on the queue}.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import redis
from rq import Queue
from rq.utils import import_attribute


def main(worker_class: str, queue_name: str, mode: str) -> int:
    connection = redis.Redis(host="127.0.0.1", port=int(os.environ["STATUSPAGE_TEST_REDIS_PORT"]),
                             password=os.environ["STATUSPAGE_TEST_REDIS_PASSWORD"])
    queue = Queue(queue_name, connection=connection)
    job = queue.enqueue("time.sleep", 0.2) if mode == "after-dequeue" else None
    if mode == "after-dequeue":
        dequeue_any = Queue.dequeue_any.__func__

        def dequeue_then_sigterm(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
            result = dequeue_any(cls, *args, **kwargs)
            if result is not None:
                os.kill(os.getpid(), signal.SIGTERM)
            return result

        Queue.dequeue_any = classmethod(dequeue_then_sigterm)  # type: ignore[method-assign]
    worker = import_attribute(worker_class)([queue], connection=connection)
    print("listening", flush=True)
    worked = worker.work(burst=False)
    status = job.get_status(refresh=True) if job else None
    print(json.dumps({"worked": worked, "status": status and str(status.value), "queued": queue.count}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
