#!/usr/bin/env python3
"""`make bench`: Accord's figures on this machine, written to docs/BENCHMARKS.md.

    python3 bench/bench.py [--bin .build/release] [--quick]

Starts a fresh local deployment (release build, file log, fsync on, as users run it) on a free
loopback port, drives it over HTTP from this separate process, prints every figure and writes them
with the machine, the commit and the date. Bounded in count and time; stops what it started.

Honest by construction: every instance started is checked to have FINISHED (or CANCELLED, for the
stop figure) with its log line; any error marks the run FAILED, and a failed run's figures are not
written as results. The client is asyncio over keep-alive connections (`httpclient.py`; `requests`
cost as much CPU per call as the server's whole start, on the same two cores); its own overhead (a
sequential `GET /api/v1/server/ping`, and its CPU per request) is reported beside the figures, which
include it. Latencies are measured per request with a closed loop
(sequential) or with a fixed number in flight; nothing is averaged away.

The event log alone is measured by `accord bench-log` (1, 16 and 256 concurrent writers, each
waiting for its own append to be durable); the Gateway's memory per finished instance by starting a
Scheduler and a Gateway on a log of 100,000 finished instances (written the way bench/restart.py
writes them) and on an empty one, after each has caught up.
"""
import argparse
import asyncio
import datetime
import io
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

from httpclient import Client

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def trio(values):
    return f"p50 {pct(values, 50):.2f} ms, p90 {pct(values, 90):.2f} ms, p99 {pct(values, 99):.2f} ms"


def archive(flow, main=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("_main.json", json.dumps(main or {"entryPoint": "main"}))
        z.writestr("processes/main.yml", flow)
    return buf.getvalue()


def iso_millis(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000


class Bench:
    """The load process: asyncio over keep-alive connections (`httpclient`), so that the client,
    not Accord, is not what sets the pace; its own cost is measured and reported."""

    def __init__(self, url, key, data):
        self.url, self.key, self.data = url, key, data
        host, port = url.split("//", 1)[1].split(":")
        self.client = Client(host, int(port), {"Authorization": key})
        self.errors = []

    def fail(self, what):
        self.errors.append(what)

    async def start(self, body):
        try:
            r = await self.client.request("POST", "/api/v1/process", body, {"Content-Type": "application/zip"}, 30)
        except Exception as error:  # a refused or dropped connection is an error of the run
            self.fail(f"start: {error!r}")
            return None
        if r.status != 200:
            self.fail(f"start answered {r.status}: {r.text[:200]}")
            return None
        return r.json()["instanceId"]

    async def wait(self, iid):
        r = await self.get(f"/api/v1/process/{iid}/wait?timeout=60000", timeout=90)
        if r is None or r.status != 200:
            self.fail(f"wait {iid} answered {r and r.status}")
            return None
        return r.json()

    async def get(self, path, timeout=30):
        try:
            return await self.client.request("GET", path, timeout=timeout)
        except Exception as error:
            self.fail(f"GET {path}: {error!r}")
            return None

    async def delete(self, path):
        return await self.client.request("DELETE", path, timeout=30)

    async def check_finished(self, iid, marker, final=None):
        final = final or await self.wait(iid)
        if not final or final.get("status") != "FINISHED":
            self.fail(f"{iid} ended {final and final.get('status')}")
            return False
        log = await self.get(f"/api/v1/process/{iid}/log")
        if log is None or marker not in log.text:
            self.fail(f"{iid} has no log line {marker!r}")
            return False
        return True


async def in_flight(count, jobs):
    """Runs the coroutine factories in `jobs` with `count` in flight; returns their results in order."""
    results = [None] * len(jobs)
    queue = list(enumerate(jobs))
    queue.reverse()

    async def worker():
        while queue:
            index, job = queue.pop()
            results[index] = await job()

    await asyncio.gather(*[worker() for _ in range(count)])
    return results


def process_cpu(pid):
    """User + system CPU seconds of one live process (not of its children)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(data):
    """CPU seconds so far of the Gateway, the Scheduler, the Executor and its runners (the live
    ones and, through the executor's reaped-children count, those that have exited)."""
    out = {}
    for name in ("gateway", "scheduler", "executor"):
        pid = int(open(f"{data}/run/{name}.pid").read())
        out[name] = process_cpu(pid)
        if name == "executor":
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            runners = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
                    if argv[0].endswith(b"/accord-runner"):
                        runners += process_cpu(int(entry))
                except OSError:
                    pass
            out["runners"] = runners
    return out


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_memory(data):
    out = {}
    for name in ("scheduler", "executor", "gateway"):
        try:
            pid = int(open(f"{data}/run/{name}.pid").read())
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmHWM:"):
                    out[name] = int(line.split()[1]) / 1024
        except (OSError, ValueError):
            out[name] = float("nan")
    return out


def rss_after_catch_up(binary_dir, data, b):
    """Starts a Scheduler and a Gateway on `data`; returns the Gateway's RSS in bytes once it serves."""
    port = free_port()
    with open(f"{data}/keys", "w") as f:
        f.write("bench-key\n")
    procs = [subprocess.Popen([f"{binary_dir}/accord-scheduler", "--data", data], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    gateway = subprocess.Popen([f"{binary_dir}/accord-gateway", "--data", data, "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(gateway)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/process?limit=1",
                                                 headers={"Authorization": "bench-key"})
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            b.fail("the memory deployment did not come up")
            return None
        time.sleep(1)
        for line in open(f"/proc/{gateway.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def gateway_memory_per_instance(binary_dir, instances, b):
    sys.path.insert(0, HERE)
    from restart import fill
    empty, full = tempfile.mkdtemp(prefix="accord-bench-mem0-"), tempfile.mkdtemp(prefix="accord-bench-mem-")
    try:
        fill(os.path.join(full, "events"), instances * 6)
        base = rss_after_catch_up(binary_dir, empty, b)
        loaded = rss_after_catch_up(binary_dir, full, b)
        if base is None or loaded is None:
            return None
        return (loaded - base) / instances
    finally:
        shutil.rmtree(empty, ignore_errors=True)
        shutil.rmtree(full, ignore_errors=True)


# Where a store has targets of its own (issue 13: the PostgreSQL log), they replace the file log's.
POSTGRES_TARGETS = {
    "start": ("p50 ≤ 3 ms", lambda lat: pct(lat, 50) <= 3),
    "accepted": ("≥ 1,000/s", lambda rate: rate >= 1000),
    "completed": ("≥ 500/s", lambda rate: rate >= 500),
}


def target(store, figure, file_target, file_check, value):
    text, check = POSTGRES_TARGETS[figure] if store == "postgres" else (file_target, file_check)
    return text, check(value)


async def drive(b, results, n_seq, n_flight_starts, n_e2e, n_completed, n_stop, n_follow, store="files"):
    """Every figure measured over HTTP, in order."""
    trivial = archive('main:\n- log: "bench-done"\n')

    # The client's own floor: a sequential HTTP round trip that does nothing, and the client's CPU
    # per request with 64 in flight (what it takes from the two cores the server runs on).
    ping = []
    for _ in range(300):
        t0 = time.perf_counter()
        await b.get("/api/v1/server/ping")
        ping.append((time.perf_counter() - t0) * 1000)
    results.append(("client overhead: sequential ping round trip", trio(ping)))
    cpu0 = cpu_seconds()
    await in_flight(64, [lambda: b.get("/api/v1/server/ping")] * 5000)
    results.append(("client overhead: client CPU per request, 64 in flight",
                    f"{(cpu_seconds() - cpu0) / 5000 * 1e6:.0f} µs"))
    await in_flight(8, [lambda: b.start(trivial)] * 50)

    # 1. Start acknowledged (durable), sequential.
    lat, ids = [], []
    for _ in range(n_seq):
        t0 = time.perf_counter()
        iid = await b.start(trivial)
        lat.append((time.perf_counter() - t0) * 1000)
        ids.append(iid)
    results.append((f"start acknowledged (durable), {n_seq} sequential", trio(lat),
                    *target(store, "start", "p50 ≤ 2 ms, p99 ≤ 10 ms",
                            lambda lat: pct(lat, 50) <= 2 and pct(lat, 99) <= 10, lat)))

    # 2. Accepted starts per second, 64 in flight: after a warm-up at that concurrency (the
    # executor starts runners up to the load's concurrency once; that burst is not the rate).
    warm_ids = await in_flight(64, [lambda: b.start(trivial)] * (n_flight_starts // 10))
    await in_flight(16, [lambda i=i: b.check_finished(i, "bench-done") for i in warm_ids if i])
    server0 = server_cpu(b.data)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    flight_ids = await in_flight(64, [lambda: b.start(trivial)] * n_flight_starts)
    took = time.perf_counter() - t0
    client = (cpu_seconds() - cpu0) / n_flight_starts * 1000
    rate = n_flight_starts / took
    results.append((f"accepted starts per second, 64 in flight ({n_flight_starts} starts after {n_flight_starts // 10} "
                    "to warm up)", f"{rate:,.0f}/s", *target(store, "accepted", "≥ 3,000/s", lambda r: r >= 3000, rate)))
    spent = {name: (seconds - server0.get(name, 0)) / n_flight_starts * 1000
             for name, seconds in server_cpu(b.data).items()}
    results.append(("CPU per accepted start in that run (each instance also runs meanwhile)",
                    ", ".join(f"{name} {ms:.3f} ms" for name, ms in spent.items()) + f", client {client:.3f} ms; "
                    f"total {sum(spent.values()) + client:.3f} ms"))
    await in_flight(16, [lambda i=i: b.check_finished(i, "bench-done") for i in ids + flight_ids if i])

    # 3. End to end, sequential: start, then /wait returns FINISHED; dispatch and wake-up from the
    # instance's own history.
    e2e, dispatch, wake = [], [], []
    for _ in range(n_e2e):
        t0 = time.perf_counter()
        iid = await b.start(trivial)
        final = await b.wait(iid) if iid else None
        received = time.time() * 1000
        e2e.append((time.perf_counter() - t0) * 1000)
        if iid and await b.check_finished(iid, "bench-done", final):
            history = (await b.get(f"/api/v1/process/{iid}/history")).json()
            at = {h["status"]: iso_millis(h["changeDate"]) for h in history}
            dispatch.append(at["RUNNING"] - at["ENQUEUED"])
            wake.append(received - at["FINISHED"])
    results.append((f"trivial instance end to end (start, /wait FINISHED), {n_e2e} sequential", trio(e2e),
                    "p50 ≤ 15 ms", pct(e2e, 50) <= 15))
    results.append(("dispatch: ENQUEUED to RUNNING on an idle executor (from the history's millisecond timestamps, "
                    "so ±1 ms)", f"p50 {pct(dispatch, 50):.0f} ms, p99 {pct(dispatch, 99):.0f} ms", "p99 ≤ 5 ms",
                    pct(dispatch, 99) <= 5))
    results.append(("wait wake-up: terminal event to the waiter's answer (the event's time is its millisecond "
                    "timestamp, taken before its fsync, so this is an upper bound)",
                    f"p50 {pct(wake, 50):.1f} ms, p99 {pct(wake, 99):.1f} ms", "p99 ≤ 2 ms", pct(wake, 99) <= 2))

    # 4. Completed trivial instances per second, 64 in flight.
    async def one():
        iid = await b.start(trivial)
        return bool(iid) and await b.check_finished(iid, "bench-done")
    t0 = time.perf_counter()
    done = sum(1 for ok in await in_flight(64, [one] * n_completed) if ok)
    took = time.perf_counter() - t0
    results.append((f"completed trivial instances per second, 64 in flight ({n_completed}, each checked)",
                    f"{done / took:,.0f}/s", *target(store, "completed", "≥ 300/s", lambda r: r >= 300, done / took)))

    # 5. Stop: DELETE until CANCELLED is visible (the answer waits for it; checked after).
    sleeper = archive("main:\n- ${sleep.ms(60000)}\n")
    stops = []
    for _ in range(n_stop):
        iid = await b.start(sleeper)
        if not iid:
            continue
        for _ in range(200):
            if (await b.get(f"/api/v1/process/{iid}")).json().get("status") == "RUNNING":
                break
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        r = await b.delete(f"/api/v1/process/{iid}")
        stops.append((time.perf_counter() - t0) * 1000)
        if r.status not in (200, 204) or (await b.get(f"/api/v1/process/{iid}")).json().get("status") != "CANCELLED":
            b.fail(f"stop of {iid}: {r.status}")
    results.append((f"stop: DELETE to CANCELLED visible, {n_stop} sequential on RUNNING instances", trio(stops),
                    "p99 ≤ 20 ms", pct(stops, 99) <= 20))

    # 6. Followed logs: instances that log a line every 50 ms, each followed over Server-Sent
    # Events from before its first line; the delay is the line's own timestamp to its arrival.
    delays = await follow_delays(b, n_follow, lines=20)
    results.append((f"followed log: a line's timestamp to its arrival at a follower (SSE), {n_follow} instances "
                    f"logging every 50 ms, each followed, {len(delays)} lines (±1 ms: the timestamp's resolution)",
                    trio(delays), "p99 ≤ 50 ms", bool(delays) and pct(delays, 99) <= 50))
    b.client.close()


async def follow_delays(b, instances, lines):
    """Starts `instances` at once, each waiting 500 ms and then logging `lines` lines 50 ms apart,
    and follows every one; the milliseconds from each line's timestamp to its arrival."""
    steps = "".join(f"- log: \"follow {n}\"\n- ${{sleep.ms(50)}}\n" for n in range(lines))
    flow = archive("main:\n- ${sleep.ms(500)}\n" + steps)
    host, port = b.url.split("//", 1)[1].split(":")

    async def follow_one():
        iid = await b.start(flow)
        if not iid:
            return []
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write((f"GET /api/v1/process/{iid}/log?follow=true HTTP/1.1\r\nHost: bench\r\n"
                      f"Authorization: {b.key}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n").encode())
        await writer.drain()
        delays, status = [], None
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), 30)
                if not line:
                    break
                # Chunked framing lines are skipped: only SSE fields start with these.
                if line.startswith(b"data: 20"):
                    arrived = time.time() * 1000
                    delays.append(arrived - iso_millis(line[6:30].decode()))
                elif line.startswith(b"event: status"):
                    status = True
                elif status and line.startswith(b"data: {"):
                    final = json.loads(line[6:])
                    if final.get("status") != "FINISHED":
                        b.fail(f"followed {iid} ended {final.get('status')}")
                    break
        except asyncio.TimeoutError:
            b.fail(f"follow of {iid}: no event for 30 s")
        finally:
            writer.close()
        if len(delays) != lines:
            b.fail(f"follow of {iid}: {len(delays)} of {lines} lines arrived")
        return delays

    per_instance = await asyncio.gather(*[follow_one() for _ in range(instances)])
    return [delay for delays in per_instance for delay in delays]


def run_store(args, store, database_url, scale):
    """One fresh local deployment on `store` ("files", or "postgres" at `database_url`), every
    figure measured against it. Returns (results, errors)."""
    n_seq, n_flight_starts, n_e2e, n_completed, n_stop, n_follow = (1000 // scale, 5000 // scale, 500 // scale,
                                                                    5000 // scale, 200 // scale, 50 // scale)
    data = tempfile.mkdtemp(prefix="accord-bench-")
    port = free_port()
    env = dict(os.environ, ACCORD_DATA=data, ACCORD_PORT=str(port), ACCORD_BIN=os.path.abspath(args.bin),
               ACCORD_EXECUTOR_CAPACITY="64")
    env.pop("ACCORD_DATABASE_URL", None)
    if database_url:
        env["ACCORD_DATABASE_URL"] = database_url
    launcher = subprocess.Popen([os.path.join(ROOT, "deploy", "local", "accord-local")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    results = []
    try:
        key = None
        deadline = time.time() + 60
        while time.time() < deadline and key is None:
            line = launcher.stdout.readline().decode()
            if line.startswith("ACCORD_API_KEY="):
                key = line.strip().split("=", 1)[1]
        if key is None:
            sys.exit(f"bench: the deployment on {store} did not start")
        b = Bench(f"http://127.0.0.1:{port}", key, data)
        asyncio.run(drive(b, results, n_seq, n_flight_starts, n_e2e, n_completed, n_stop, n_follow, store))

        memory = peak_memory(data)
        results.append(("peak memory (VmHWM)", ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items())))

        for writers in (1, 16, 256) if store == "files" else ():
            scratch = tempfile.mkdtemp(prefix="accord-bench-log-")
            out = subprocess.run([os.path.join(args.bin, "accord"), "bench-log", scratch, "--writers", str(writers),
                                  "--seconds", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            shutil.rmtree(scratch, ignore_errors=True)
            if out.returncode != 0:
                b.fail(f"bench-log with {writers} writers: {out.stderr.decode()[:200]}")
                continue
            figures = json.loads(out.stdout)
            results.append((f"event log alone, {writers} concurrent writer(s), each waiting for durability",
                            f"{figures['appendsPerSecond']:,} appends/s ({figures['appendsPerFsync']} per fsync)"))

        per_instance = gateway_memory_per_instance(args.bin, 100_000 // scale, b) if store == "files" else None
        if per_instance is not None:
            results.append((f"Gateway memory per finished instance ({100_000 // scale:,} instances, RSS after catch-up "
                            "minus an empty one's)", f"{per_instance:,.0f} bytes", "≤ 1 KiB", per_instance <= 1024))
    finally:
        os.killpg(launcher.pid, signal.SIGTERM)
        try:
            launcher.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
        shutil.rmtree(data, ignore_errors=True)
    return results, b.errors


def on_postgres(args, scale):
    """The same figures with the Scheduler on a throwaway local PostgreSQL server (fsync on)."""
    folder = tempfile.mkdtemp(prefix="accord-bench-pg-")
    server = os.path.join(ROOT, "deploy", "test", "throwaway-postgres")
    try:
        line = subprocess.run([server, "start", folder, "--fsync", "on"], stdout=subprocess.PIPE, check=True,
                              text=True).stdout.strip()
        return run_store(args, "postgres", line.split("=", 1)[1], scale)
    finally:
        subprocess.run([server, "stop", folder])
        shutil.rmtree(folder, ignore_errors=True)


def verdict(target):
    return f"{target[0]}: {'holds' if target[1] else '**not met**'}" if target else ""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build", "release"))
    parser.add_argument("--quick", action="store_true", help="a tenth of the counts (to try the script)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    parser.add_argument("--store", choices=["files", "postgres", "both"], default="both",
                        help="the Scheduler's log: the file log, PostgreSQL (a throwaway local server), or each in turn")
    parser.add_argument("--failover-kills", type=int, default=10,
                        help="kills of the leading Scheduler in the multi-host rehearsal (root; 0: none)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    started_at = time.time()
    stores = ["files", "postgres"] if args.store == "both" else [args.store]
    measured, errors = {}, []
    for store in stores:
        results, failed = run_store(args, "files", None, scale) if store == "files" else on_postgres(args, scale)
        measured[store] = results
        errors += [f"{store}: {e}" for e in failed]
    failover = None
    if "postgres" in stores and args.failover_kills > 0:
        if os.geteuid() != 0:
            print("bench: not root, so no failover figures (the rehearsal makes network namespaces)")
        else:
            sys.path.insert(0, HERE)
            import failover as rehearsal
            try:
                seconds = rehearsal.measure(args.failover_kills, args.bin)
                failover = (f"failover: SIGKILL of the leading Scheduler's host to the next acknowledged start, "
                            f"{len(seconds)} kills in the multi-host rehearsal (bench/failover.py)",
                            f"p50 {pct(seconds, 50):.2f} s, worst {max(seconds):.2f} s", "p50 ≤ 1 s, worst ≤ 3 s",
                            pct(seconds, 50) <= 1 and max(seconds) <= 3)
            except RuntimeError as e:
                errors.append(f"failover: {e}")

    names = []
    for store in stores:
        names += [r[0] for r in measured[store] if r[0] not in names]
    rows = {store: {r[0]: r for r in measured[store]} for store in stores}
    for name in names:
        print(name + ": " + "; ".join(f"{store} {rows[store][name][1]}" + (f" [target {verdict(rows[store][name][2:])}]"
                                      if len(rows[store][name]) > 2 else "") for store in stores if name in rows[store]))
    if failover:
        print(f"{failover[0]}: {failover[1]} [target {verdict(failover[2:])}]")
    if errors:
        print(f"FAILED: {len(errors)} error(s), e.g. {errors[:5]}; nothing written to {args.out}")
        return 1
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE).stdout.decode().strip()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    title = {"files": "file log (fsync)", "postgres": "PostgreSQL log (local server, fsync on)"}
    lines = [
        "# Benchmarks", "",
        f"`make bench` (`python3 bench/bench.py{' --quick' if args.quick else ''}"
        f"{'' if args.store == 'both' else ' --store ' + args.store}`) on {os.cpu_count()} × {cpu}, "
        f"{platform.system()} {platform.release()}; commit {commit}; {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; "
        f"{time.time() - started_at:.0f} s. Release build; one fresh local deployment per store, one executor "
        "(capacity 64), loopback HTTP from a separate Python process (asyncio, keep-alive connections; its own round "
        "trip and CPU are the first lines). Targets: the file log's from issue 6, the PostgreSQL log's from issue 13.",
        "",
        "| figure | " + " | ".join(title[s] for s in stores) + " | targets |",
        "|---|" + "---|" * len(stores) + "---|",
    ]
    for name in names:
        cells = [rows[s][name][1] if name in rows[s] else "" for s in stores]
        targets = "; ".join((f"{'PostgreSQL' if s == 'postgres' else 'files'} " if len(stores) > 1 else "")
                            + verdict(rows[s][name][2:]) for s in stores if name in rows[s] and len(rows[s][name]) > 2)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {targets} |")
    if failover:
        lines.append(f"| {failover[0]} | " + " | ".join(failover[1] if s == "postgres" else "" for s in stores)
                     + f" | {verdict(failover[2:])} |")
    lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
