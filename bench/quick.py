#!/usr/bin/env python3
"""Quick latency figures against a running deployment (not a timed test; run it by hand).

    ACCORD_URL=... ACCORD_API_KEY=... python3 bench/quick.py

Prints: start-acknowledged latency over N sequential starts, and the wall time for 100 trivial
instances started concurrently until all are FINISHED (each checked for its log line).
"""
import os, sys, time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench import archive

URL = os.environ.get("ACCORD_URL", "http://127.0.0.1:8001").rstrip("/")
KEY = os.environ["ACCORD_API_KEY"]
H = {"Authorization": KEY, "Content-Type": "application/octet-stream"}


def payload(marker):
    return archive(f'main:\n- log: "{marker}"\n')


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


session = requests.Session()
session.trust_env = False
n = int(os.environ.get("BENCH_SEQUENTIAL", "300"))
body = payload("bench")
for _ in range(20):  # warm up
    session.post(URL + "/api/v1/process", data=body, headers=H).raise_for_status()
lat = []
for _ in range(n):
    t0 = time.perf_counter()
    r = session.post(URL + "/api/v1/process", data=body, headers=H)
    lat.append((time.perf_counter() - t0) * 1000)
    r.raise_for_status()
print(f"start acknowledged (durable), {n} sequential: p50 {pct(lat, 50):.2f} ms  p90 {pct(lat, 90):.2f} ms  "
      f"p99 {pct(lat, 99):.2f} ms  max {max(lat):.2f} ms")


def one(i):
    s = requests.Session()
    s.trust_env = False
    marker = f"concurrent-{i}"
    t0 = time.perf_counter()
    iid = s.post(URL + "/api/v1/process", data=payload(marker), headers=H).json()["instanceId"]
    st = s.get(f"{URL}/api/v1/process/{iid}/wait?timeout=60000", headers={"Authorization": KEY}).json()["status"]
    log = s.get(f"{URL}/api/v1/process/{iid}/log", headers={"Authorization": KEY}).text
    return st, marker in log, (time.perf_counter() - t0) * 1000


t0 = time.perf_counter()
with ThreadPoolExecutor(max_workers=100) as pool:
    results = list(pool.map(one, range(100)))
wall = time.perf_counter() - t0
bad = [r for r in results if r[0] != "FINISHED" or not r[1]]
e2e = [r[2] for r in results]
print(f"100 concurrent trivial instances: all FINISHED in {wall * 1000:.0f} ms wall "
      f"({100 / wall:.0f}/s); per instance start→FINISHED p50 {pct(e2e, 50):.0f} ms p99 {pct(e2e, 99):.0f} ms; "
      f"failures: {len(bad)}")
sys.exit(1 if bad else 0)
