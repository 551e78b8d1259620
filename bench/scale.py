#!/usr/bin/env python3
"""What history costs: the same figures on a small and a large history of finished instances
(`make bench-scale`; run by hand, not a timed test).

    python3 bench/scale.py [--sizes 100000,10000000] [--bin .build/release] [--out FILE.json]

For each size, a data folder's log is written with that many finished instances (`accord
bench-history`: six events each, through the log's own writer with fsync off, not over HTTP; one
started every 250 ms, as a history builds up over time, the newest ended 40 days ago), then, on
that folder:

1. the Scheduler starts with no snapshot (the whole log replayed), stops (SIGTERM: snapshot), and
   starts again on its snapshot: time until its state is rebuilt, and its RSS;
2. a Gateway starts with an empty store (it folds the whole log over the Scheduler's catch-up),
   stops (SIGTERM: its store written), and starts again on its store: time until it serves, RSS;
3. with an executor: start acknowledged and end-to-end latency (sequential), status of an old
   instance, listing of the newest 30;
4. the disk: the log, the Gateway's folder;
5. with --retention (default 30d): the Scheduler restarted with it, its first pass (5 s after the
   start) reclaims the old history; then the disk, the Scheduler's restart, the latencies again.

Prints one table row per size and the ratio of the largest to the smallest.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import archive, free_port, pct  # noqa: E402

KEY = "bench-key"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def du_mib(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total / 2**20


def http(port, method, path, body=None, timeout=60):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method,
                                     headers={"Authorization": KEY, "Content-Type": "application/octet-stream"})
    try:
        with OPENER.open(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Deployment:
    def __init__(self, binaries, data):
        self.binaries, self.data = binaries, data
        self.port = free_port()
        self.procs = {}
        os.makedirs(f"{data}/logs", exist_ok=True)
        with open(f"{data}/keys", "w") as f:
            f.write(KEY + "\n")

    def spawn(self, name, *arguments):
        log = open(f"{self.data}/logs/{name}.log", "ab")
        self.procs[name] = subprocess.Popen([f"{self.binaries}/accord-{name}", *arguments], stdout=log, stderr=log,
                                            start_new_session=True)
        return self.procs[name]

    def log_count(self, name, text):
        try:
            return open(f"{self.data}/logs/{name}.log", errors="replace").read().count(text)
        except OSError:
            return 0

    def start_scheduler(self, *extra):
        seen = self.log_count("scheduler", "state rebuilt from the log")
        started = time.monotonic()
        proc = self.spawn("scheduler", "--data", self.data, *extra)
        while self.log_count("scheduler", "state rebuilt from the log") == seen:
            if proc.poll() is not None or time.monotonic() - started > 1800:
                sys.exit(f"the scheduler did not start; see {self.data}/logs/scheduler.log")
            time.sleep(0.02)
        return time.monotonic() - started

    def start_gateway(self):
        started = time.monotonic()
        proc = self.spawn("gateway", "--data", self.data, "--port", str(self.port))
        while True:
            try:
                if http(self.port, "GET", "/api/v2/process?limit=1", timeout=5)[0] == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() - started > 3600:
                sys.exit(f"the gateway did not serve; see {self.data}/logs/gateway.log")
            time.sleep(0.02)

    def stop(self, name, sig=signal.SIGTERM):
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)


def latencies(port, samples):
    # What the last phase wrote (a Gateway's store of gigabytes) is flushed first: background
    # writeback would otherwise slow the starts' fsyncs at the large size only.
    os.sync()
    body = archive('main:\n- log: "scale"\n')
    for _ in range(20):
        http(port, "POST", "/api/v1/process", body)
    start, e2e = [], []
    for n in range(samples):
        t0 = time.perf_counter()
        status, answer = http(port, "POST", "/api/v1/process", body)
        acknowledged = time.perf_counter()
        if status != 200:
            sys.exit(f"start answered {status}: {answer[:200]!r}")
        start.append((acknowledged - t0) * 1000)
        if n % 2 == 0:
            iid = json.loads(answer)["instanceId"]
            http(port, "GET", f"/api/v1/process/{iid}/wait?timeout=60000")
            e2e.append((time.perf_counter() - t0) * 1000)
    # Old instances: ended long ago, from deep in the history.
    _, page = http(port, "GET", "/api/v2/process?limit=100&offset=1000")
    old = [item["instanceId"] for item in json.loads(page)] or ["00000000-0000-0000-0000-000000000000"]
    status = []
    for _ in range(samples):
        iid = random.choice(old)
        t0 = time.perf_counter()
        http(port, "GET", f"/api/v1/process/{iid}")
        status.append((time.perf_counter() - t0) * 1000)
    listing = []
    for _ in range(samples):
        t0 = time.perf_counter()
        http(port, "GET", "/api/v2/process?limit=30")
        listing.append((time.perf_counter() - t0) * 1000)
    return {name: {"p50": pct(values, 50), "p99": pct(values, 99)}
            for name, values in (("start", start), ("e2e", e2e), ("status", status), ("list30", listing))}


def restarted(deployment, name, start):
    """Starts `name` from nothing (fold or replay), stops it cleanly, starts it again: both times and RSS."""
    first = start()
    first_rss = rss_mib(deployment.procs[name].pid)
    deployment.stop(name)
    return first, first_rss, start(), rss_mib(deployment.procs[name].pid)


def measure(binaries, size, samples, keep, retention):
    data = tempfile.mkdtemp(prefix=f"accord-scale-{size}-", dir=os.environ.get("ACCORD_BENCH_DIR"))
    row = {"instances": size}
    deployment = Deployment(binaries, data)
    try:
        t = time.monotonic()
        subprocess.run([f"{binaries}/accord", "bench-history", data, "--instances", str(size)], check=True,
                       stdout=subprocess.DEVNULL)
        row["write_s"] = time.monotonic() - t
        row["log_mib"] = du_mib(f"{data}/events")
        print(f"[{size:,}] log written: {row['log_mib']:.0f} MiB in {row['write_s']:.0f} s", flush=True)

        (row["scheduler_replay_s"], row["scheduler_replay_rss"], row["scheduler_restart_s"],
         row["scheduler_rss"]) = restarted(deployment, "scheduler", deployment.start_scheduler)
        print(f"[{size:,}] scheduler: replay {row['scheduler_replay_s']:.1f} s, restart "
              f"{row['scheduler_restart_s']:.2f} s, {row['scheduler_rss']:.0f} MiB", flush=True)

        (row["gateway_fold_s"], row["gateway_fold_rss"], row["gateway_ready_s"],
         row["gateway_rss"]) = restarted(deployment, "gateway", deployment.start_gateway)
        print(f"[{size:,}] gateway: fold {row['gateway_fold_s']:.1f} s, restart ready {row['gateway_ready_s']:.2f} s, "
              f"{row['gateway_rss']:.0f} MiB", flush=True)

        deployment.spawn("executor", "serve", "--data", data, "--capacity", "16")
        time.sleep(2)
        row.update(latencies(deployment.port, samples))
        row["scheduler_rss_after"] = rss_mib(deployment.procs["scheduler"].pid)
        row["gateway_rss_after"] = rss_mib(deployment.procs["gateway"].pid)
        row["gateway_disk_mib"] = du_mib(f"{data}/gateway-{deployment.port}")
        row["data_disk_mib"] = du_mib(data)
        if retention:
            row["retention"] = reclaimed(deployment, retention, samples)
        return row
    finally:
        deployment.stop_all()
        if not keep:
            shutil.rmtree(data, ignore_errors=True)


def reclaimed(deployment, retention, samples):
    """The Scheduler restarted with --retention: its first pass, then what is left and how it runs."""
    deployment.stop("scheduler")
    deployment.start_scheduler("--retention", retention)
    started = time.monotonic()
    while deployment.log_count("scheduler", "history trimmed") == 0:
        if time.monotonic() - started > 1800:
            sys.exit(f"no retention pass; see {deployment.data}/logs/scheduler.log")
        time.sleep(0.2)
    after = {"pass_s": time.monotonic() - started}
    # The Gateway removes the trimmed rows with its next batch, then gives their disk back.
    while deployment.log_count("gateway", "disk is given back") == 0:
        if time.monotonic() - started > 1800:
            sys.exit(f"the gateway did not reclaim; see {deployment.data}/logs/gateway.log")
        time.sleep(0.2)
    after["gateway_reclaim_s"] = time.monotonic() - started
    after["log_mib"] = du_mib(f"{deployment.data}/events")
    after["archive_mib"] = du_mib(f"{deployment.data}/archive")
    after["gateway_disk_mib"] = du_mib(f"{deployment.data}/gateway-{deployment.port}")
    deployment.stop("scheduler")
    after["scheduler_restart_s"] = deployment.start_scheduler("--retention", retention)
    time.sleep(2)
    after.update(latencies(deployment.port, samples))
    after["scheduler_rss"] = rss_mib(deployment.procs["scheduler"].pid)
    after["gateway_rss"] = rss_mib(deployment.procs["gateway"].pid)
    return after


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,10000000")
    parser.add_argument("--bin", default=os.path.join(HERE, "..", ".build", "release"))
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--out")
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    parser.add_argument("--retention", default="30d", help="then measure again after a pass with it ('' skips)")
    args = parser.parse_args()
    binaries = os.path.abspath(args.bin)
    rows = [measure(binaries, int(size), args.samples, args.keep, args.retention) for size in args.sizes.split(",")]
    columns = [
        ("instances", "{:,}"), ("scheduler_replay_s", "{:.1f}"), ("scheduler_restart_s", "{:.2f}"),
        ("scheduler_rss_after", "{:.0f}"), ("gateway_fold_s", "{:.1f}"), ("gateway_ready_s", "{:.2f}"),
        ("gateway_rss_after", "{:.0f}"), ("log_mib", "{:.0f}"), ("gateway_disk_mib", "{:.0f}"),
    ]
    print()
    print("| " + " | ".join(name for name, _ in columns) + " | start p50/p99 ms | e2e p50/p99 ms | status p50/p99 ms "
          "| list30 p50/p99 ms |")
    print("|" + "---|" * (len(columns) + 4))
    for row in rows:
        cells = [fmt.format(row[name]) for name, fmt in columns]
        cells += [f"{row[k]['p50']:.2f} / {row[k]['p99']:.2f}" for k in ("start", "e2e", "status", "list30")]
        print("| " + " | ".join(cells) + " |")
    if len(rows) > 1:
        small, large = rows[0], rows[-1]
        print(f"\nratios, {large['instances']:,} against {small['instances']:,}:")
        for name in ("scheduler_rss_after", "gateway_rss_after"):
            print(f"  {name}: {large[name] / small[name]:.2f}x (target <= 1.2x)")
        for name in ("start", "status", "list30"):
            print(f"  {name} p99: {large[name]['p99'] / small[name]['p99']:.2f}x (target <= 1.2x)")
        print(f"  scheduler restart at {large['instances']:,}: {large['scheduler_restart_s']:.2f} s (target <= 5 s)")
        print(f"  gateway ready at {large['instances']:,}: {large['gateway_ready_s']:.2f} s (target <= 10 s)")
    for row in rows:
        if "retention" in row:
            after = row["retention"]
            print(f"\n[{row['instances']:,}] after a --retention {args.retention} pass ({after['pass_s']:.1f} s): "
                  f"log {row['log_mib']:.0f} -> {after['log_mib']:.1f} MiB (archive {after['archive_mib']:.0f} MiB), "
                  f"gateway store {row['gateway_disk_mib']:.0f} -> {after['gateway_disk_mib']:.0f} MiB "
                  f"({after['gateway_reclaim_s']:.1f} s), "
                  f"scheduler restart {after['scheduler_restart_s']:.2f} s, RSS scheduler {after['scheduler_rss']:.0f} "
                  f"/ gateway {after['gateway_rss']:.0f} MiB, start p99 {after['start']['p99']:.2f} ms, "
                  f"status p99 {after['status']['p99']:.2f} ms, list30 p99 {after['list30']['p99']:.2f} ms")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
