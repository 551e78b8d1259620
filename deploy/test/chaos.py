#!/usr/bin/env python3
"""Chaos test: a deployment with two executors under a mixed load, one component SIGKILLed and
restarted every few seconds; at the end, checks that nothing was lost, duplicated or left stuck.

    python3 deploy/test/chaos.py [--duration 300] [--bin .build/debug] [--seed N]

Loopback only; bounded in time (load for --duration seconds, then at most --drain seconds for every
instance to end); stops everything it started. Prints the counts and every violation; exits 1 when
there is one. `make chaos` runs it for 5 minutes, `make test` for a short while.

Checks:
- every acknowledged start is exactly one instance: each start carries a unique Idempotency-Key and
  the same key as a tag, is retried with that key until acknowledged, and every acknowledgement of a
  key names the one instance the listing shows with that tag;
- every instance is terminal at the end;
- every history only moves forward (ENQUEUED < STARTING < RUNNING < terminal; one terminal, last);
- the event log verifies offline: record checksums, contiguous sequence numbers, events that decode,
  per-instance status events only moving forward and nothing after a terminal one, and the same
  instances and final statuses as the API serves.
"""
import argparse
import glob
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter

import requests

from chaoslib import TERMINAL, Client, Load, check_outcome, compare_with_log, drain, fold_events, print_report

MAGIC = b"ACCORDLOG1\n\x00\x00\x00\x00\x00"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deployment:
    """The four components as separate OS processes, each killable and restartable on its own."""

    def __init__(self, bin_dir, data, port, key):
        self.bin, self.data, self.port, self.key = bin_dir, data, port, key
        self.procs = {}
        self.stuck_on_stop = []
        os.makedirs(f"{data}/logs", exist_ok=True)
        with open(f"{data}/keys", "w") as f:
            f.write(key + "\n")

    def command(self, name):
        d = self.data
        if name == "scheduler":
            return [f"{self.bin}/accord-scheduler", "--data", d, "--executor-loss-timeout", "3",
                    "--starting-timeout", "10"]
        if name.startswith("executor"):
            return [f"{self.bin}/accord-executor", "serve", "--data", d, "--name", name, "--capacity", "8"]
        return [f"{self.bin}/accord-gateway", "--data", d, "--port", str(self.port), "--scheduler-timeout", "3"]

    names = ["scheduler", "executor-1", "executor-2", "gateway"]

    def start(self, name):
        log = open(f"{self.data}/logs/{name}.log", "ab")
        self.procs[name] = subprocess.Popen(self.command(name), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    def kill(self, name):
        p = self.procs.pop(name, None)
        if p:
            p.send_signal(signal.SIGKILL)
            p.wait()

    def ensure_all(self):
        for name in self.names:
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                self.start(name)

    def dump_stacks(self, name, why):
        p = self.procs.get(name)
        if not p or p.poll() is not None or not shutil.which("gdb"):
            return
        dump = subprocess.run(["gdb", "-p", str(p.pid), "-batch", "-ex", "thread apply all bt 40"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
        with open(f"{self.data}/logs/{name}.{why}.stacks", "wb") as f:
            f.write(dump.stdout)
        print(f"chaos: {name}'s threads ({why}) in {self.data}/logs/{name}.{why}.stacks", file=sys.stderr)

    def stop(self):
        for name in reversed(self.names):
            p = self.procs.get(name)
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 15
        for name, p in list(self.procs.items()):
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                print(f"chaos: {name} ignored SIGTERM for 15 s; its threads, then a kill:", file=sys.stderr)
                self.stuck_on_stop.append(name)
                self.procs[name] = p
                self.dump_stacks(name, "stop")
                p.kill()
                p.wait()
        self.procs = {}


def killer(deployment, stop_event, rng, interval, kills):
    while not stop_event.wait(rng.uniform(*interval)):
        name = rng.choice(deployment.names)
        deployment.kill(name)
        kills[name] += 1
        time.sleep(rng.uniform(0.2, 1.5))
        deployment.start(name)


def verify_log(directory):
    """Offline check of the event log: returns (problems, {instance: final status}, event count)."""
    problems, events = [], []
    segments = sorted(glob.glob(f"{directory}/segment-*.log"))
    if not segments:
        return ["no segment files"], {}, 0
    for index, path in enumerate(segments):
        data = open(path, "rb").read()
        if data[:16] != MAGIC:
            problems.append(f"{path}: bad magic")
            continue
        pos = 16
        while pos < len(data):
            if pos + 8 > len(data):
                problems.append(f"{path}@{pos}: torn record header")
                break
            length, crc = struct.unpack_from("<II", data, pos)
            body = data[pos + 8:pos + 8 + length]
            if len(body) < length or zlib.crc32(body) != crc:
                last = index == len(segments) - 1
                problems.append(f"{path}@{pos}: {'torn' if len(body) < length else 'checksum mismatch'}"
                                f"{' in the tail (the Scheduler truncates it on open)' if last else ''}")
                break
            try:
                events.append(json.loads(body))
            except ValueError as e:
                problems.append(f"{path}@{pos}: does not decode: {e}")
                break
            pos += 8 + length
    folded, status, count = fold_events(events)
    return problems + folded, status, count


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of load and kills")
    parser.add_argument("--drain", type=float, default=120, help="seconds allowed for every instance to end")
    parser.add_argument("--bin", default=os.path.join(here, "..", "..", ".build", "debug"))
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    data = tempfile.mkdtemp(prefix="accord-chaos-")
    port = free_port()
    key = uuid.uuid4().hex
    deployment = Deployment(os.path.abspath(args.bin), data, port, key)
    client = Client(f"http://127.0.0.1:{port}", key)
    print(f"chaos: seed {args.seed}, {args.duration:.0f} s of load and kills, data in {data}", flush=True)
    violations = []
    try:
        deployment.ensure_all()
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if client.call("GET", "/api/v2/process", params={"limit": 1}).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("chaos: the deployment did not come up")

        load = Load(client, args.workers, args.seed, data)
        workers = [threading.Thread(target=load.run_worker, args=(n,), daemon=True) for n in range(args.workers)]
        kills, stop_killing = Counter(), threading.Event()
        chaos = threading.Thread(target=killer, args=(deployment, stop_killing, rng, args.kill_every, kills),
                                 daemon=True)
        for t in workers + [chaos]:
            t.start()
        time.sleep(args.duration)
        load.loading = False
        stop_killing.set()
        chaos.join()
        deployment.ensure_all()

        # The supervisor's part (accord-local, systemd): a component that exited by itself during
        # the drain is started again. A service exits on purpose when libnng 1.5.2 can no longer
        # close a socket (nng #1813, TransportEvent.closeStuck); left down, its instances could not
        # end, and the drain would report them stuck.
        instances = drain(client, load, workers, time.time() + args.drain, tend=deployment.ensure_all)
        if any(i["status"] not in TERMINAL for i in instances):
            # Something is stuck: record what every component is doing before anything stops.
            for name in deployment.names:
                deployment.dump_stacks(name, "stuck")

        violations += check_outcome(client, load, instances)
        served = {i["instanceId"]: i["status"] for i in instances}
        for name in ("keys", "events", "payloads"):
            if not os.path.exists(os.path.join(data, name)):
                violations.append(f"the data folder lost {name}")
    finally:
        deployment.stop()

    violations += [f"{name} did not stop within 15 s of SIGTERM (stacks in logs/{name}.stop.stacks)"
                   for name in deployment.stuck_on_stop]
    problems, logged, events = verify_log(f"{data}/events")
    violations += [f"event log: {p}" for p in problems]
    violations += compare_with_log(logged, served)
    print_report(load, served, events, {n: kills[n] for n in deployment.names}, violations)
    if args.keep or violations:
        print(f"chaos: data kept in {data}")
    else:
        shutil.rmtree(data, ignore_errors=True)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
