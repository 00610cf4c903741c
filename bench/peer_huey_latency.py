#!/usr/bin/env python3
"""peer_huey_latency.py: the peer's dispatch latency across processes, Huey on its SQLite storage.

What it measures: an idle `huey_consumer` (2 threads, Huey's default polling) runs in its own process on
a new SQLite file; another process enqueues N tasks, one every INTERVAL seconds, each carrying the time
it was enqueued (time.time()). Each task, when it starts, appends its enqueue-to-start delay to a file.
It prints, in milliseconds (nearest rank):
  huey-latency n=N interval=Ss p50_ms=X p99_ms=X max_ms=X
bench/compare.sh prints these beside `rota bench`'s cli_dispatch_p50_ms and _p99_ms (same run).

Follows the workspace's reference (shared/bench/peer_huey_latency.py).
  usage: python3 bench/peer_huey_latency.py [N=100] [INTERVAL=0.05]      (pip install huey)
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
INTERVAL = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05

directory = tempfile.mkdtemp(prefix="peer-huey-latency-")
delays_file = os.path.join(directory, "delays.txt")
with open(os.path.join(directory, "app.py"), "w") as app:
    app.write(f"""
import time
from huey import SqliteHuey
huey = SqliteHuey(filename={os.path.join(directory, "huey.db")!r})

@huey.task()
def ping(enqueued_at):
    delay_ms = (time.time() - enqueued_at) * 1000
    with open({delays_file!r}, "a") as f:
        f.write(f"{{delay_ms:.3f}}\\n")
""")

env = dict(os.environ, PYTHONPATH=directory)
consumer_binary = shutil.which("huey_consumer") or shutil.which("huey_consumer.py")
command = [consumer_binary] if consumer_binary else [sys.executable, "-m", "huey.bin.huey_consumer"]
consumer = subprocess.Popen(command + ["app.huey", "-w", "2", "-k", "thread"], env=env, cwd=directory,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def delays():
    if not os.path.exists(delays_file):
        return []
    with open(delays_file) as f:
        return [float(x) for x in f.read().split()]


try:
    time.sleep(1.0)  # the consumer is up and idle
    producer = f"import app, time\nfor _ in range({N}):\n    app.ping(time.time())\n    time.sleep({INTERVAL})\n"
    subprocess.run([sys.executable, "-c", producer], env=env, cwd=directory, check=True)
    deadline = time.time() + 30
    while time.time() < deadline and len(delays()) < N:
        time.sleep(0.1)
finally:
    os.killpg(consumer.pid, signal.SIGKILL)
    consumer.wait()

samples = sorted(delays())
shutil.rmtree(directory, ignore_errors=True)
if not samples:
    sys.exit("peer_huey_latency.py: no task ran")


def nearest_rank(p):
    return samples[max(0, min(len(samples) - 1, -(-len(samples) * p // 100) - 1))]


print(f"huey-latency n={len(samples)} interval={INTERVAL}s p50_ms={nearest_rank(50):.1f} "
      f"p99_ms={nearest_rank(99):.1f} max_ms={samples[-1]:.1f}")
