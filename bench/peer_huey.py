#!/usr/bin/env python3
"""peer_huey.py: the peer's throughput, Huey (a popular Python task queue) on its SQLite storage.

What it measures, on a new SQLite file in a temporary directory:
  enqueue  N no-op tasks enqueued one call at a time, before any consumer runs (tasks per second);
  work     then a consumer of WORKERS threads in this process (no periodic tasks, polling every 1 ms
           up to 10 ms when idle) runs them all: from its start until the N-th task has run.
It prints one line:
  huey-sqlite N=N workers=W enqueue=R/s work=R/s
bench/compare.sh compares `rota bench`'s enqueue_one and e2e_noop with these (same run).

Follows the workspace's reference (shared/bench/peer_huey.py).
  usage: python3 bench/peer_huey.py [N=20000] [WORKERS=4]      (pip install huey)
"""
import os
import sys
import tempfile
import threading
import time

from huey import SqliteHuey

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
WORKERS = int(sys.argv[2]) if len(sys.argv) > 2 else 4

directory = tempfile.mkdtemp(prefix="peer-huey-")
huey = SqliteHuey(filename=os.path.join(directory, "huey.db"), results=True)

ran = 0
ran_lock = threading.Lock()


@huey.task()
def noop(i):
    global ran
    with ran_lock:
        ran += 1
    return i


enqueue_start = time.perf_counter()
for i in range(N):
    noop(i)
enqueue_seconds = time.perf_counter() - enqueue_start

consumer = huey.create_consumer(workers=WORKERS, worker_type="thread", periodic=False,
                                initial_delay=0.001, backoff=1.0, max_delay=0.01)


def watch():
    """Times the consumer until every task has run, prints the line and ends the process."""
    start = time.perf_counter()
    while True:
        with ran_lock:
            if ran >= N:
                break
        time.sleep(0.001)
    work_seconds = time.perf_counter() - start
    print(f"huey-sqlite N={N} workers={WORKERS} enqueue={N / enqueue_seconds:.0f}/s work={N / work_seconds:.0f}/s",
          flush=True)
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)
    os._exit(0)


threading.Thread(target=watch, daemon=True).start()
consumer.run()
