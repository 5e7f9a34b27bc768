"""Under distributed Locust (--master/--worker) each worker counts checkouts and rate-limit
observations; the master's tally must be the sum of all of them, not its own (empty) one.
Run in a subprocess: importing Locust monkey-patches the standard library with gevent."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, threading, types
from loadtests.scenarios import common

def env():
    e = types.SimpleNamespace()
    common._init(e)
    return e

master, w1, w2 = env(), env(), env()
w1.tally["checkouts_2xx"]["u1"] += 2; w1.tally["calls"]["cart:u1"].append([1.0, 200]); w1.tally["violations"].append("v1")
w2.tally["checkouts_2xx"]["u1"] += 1; w2.tally["checkouts_2xx"]["u2"] += 5; w2.tally["calls"]["cart:u1"].append([2.0, 429])
reports = []
for worker in (w1, w2):
    common._ENV[:] = [worker]
    data = {}
    common._send_tally(client_id="w", data=data)
    reports.append(json.loads(json.dumps(data)))       # what travels to the master is serialised
    assert sum(worker.tally["checkouts_2xx"].values()) == 0   # counted once: reset after sending
common._ENV[:] = [master]
for data in reports:
    common._merge_tally(client_id="w", data=data)
print(json.dumps(master.tally))
"""


def test_the_master_adds_up_the_workers_tallies():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tally = json.loads(proc.stdout.strip().splitlines()[-1])
    assert tally["checkouts_2xx"] == {"u1": 3, "u2": 5}
    assert tally["calls"] == {"cart:u1": [[1.0, 200], [2.0, 429]]}
    assert tally["violations"] == ["v1"]
