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
import io
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
import zipfile
import zlib
from collections import Counter, defaultdict

import requests

TERMINAL = {"FINISHED", "FAILED", "CANCELLED", "TIMED_OUT"}
RANK = {"NEW": 0, "ENQUEUED": 1, "STARTING": 2, "RUNNING": 3, "SUSPENDED": 3,
        "FINISHED": 4, "FAILED": 4, "CANCELLED": 4, "TIMED_OUT": 4}
EVENT_STATUS = {"InstanceCreated": "ENQUEUED", "InstanceAssigned": "STARTING", "InstanceStarted": "RUNNING",
                "InstanceFinished": "FINISHED", "InstanceFailed": "FAILED", "InstanceCancelled": "CANCELLED",
                "InstanceTimedOut": "TIMED_OUT"}
MAGIC = b"ACCORDLOG1\n\x00\x00\x00\x00\x00"

# Flows by kind: (flow YAML, extra _main.json fields, stop after (min, max) seconds or None).
KINDS = {
    "quick": ('main:\n- log: "quick"\n', {}, None),
    "slow": ("main:\n- sleep: 2500\n- log: slow done\n", {}, None),
    "script": ('main:\n- script: sh\n  body: |\n    sleep 1\n    echo "script done"\n', {}, None),
    "failing": ('main:\n- log: about to fail\n- throw: "planned failure"\n', {}, None),
    "stopped": ("main:\n- script: sh\n  body: sleep 30\n", {}, (0.3, 3.0)),
    "timed_out": ("main:\n- sleep: 30000\n", {"timeout": 1}, None),
    # Tries to escape its sandbox: read the keys, remove the data folder, kill every process it can.
    # Guarded: it does anything only where it is not root and is in a PID namespace of its own, so a
    # missing sandbox cannot harm the machine (it says UNGUARDED instead, and that is a violation).
    "escape": ('main:\n- script: sh\n  body: |\n'
               '    [ "$(id -u)" != 0 ] && [ "$(cat /proc/1/comm)" = bwrap ] || { echo UNGUARDED; exit 97; }\n'
               '    cat @DATA@/keys 2>/dev/null && echo LEAKED-KEYS\n'
               '    ls @DATA@/events 2>/dev/null && echo LEAKED-EVENTS\n'
               '    rm -rf @DATA@ 2>/dev/null\n'
               '    kill -9 -1\n', {}, None),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def archive(kind, key, data):
    """The ZIP for an instance of `kind`; `data` is the deployment's data folder (what escape aims at)."""
    flow, extra, _ = KINDS[kind]
    main = {"entryPoint": "main", "tags": [key, kind], **extra}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("_main.json", json.dumps(main))
        z.writestr("processes/main.yml", flow.replace("@DATA@", data))
    return buf.getvalue()


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


class Client:
    def __init__(self, url, key):
        self.url, self.key = url, key
        self.local = threading.local()

    def session(self):
        if not hasattr(self.local, "s"):
            self.local.s = requests.Session()
            self.local.s.trust_env = False
        return self.local.s

    def call(self, method, path, **kw):
        headers = {"Authorization": self.key, **kw.pop("headers", {})}
        return self.session().request(method, self.url + path, headers=headers, timeout=kw.pop("timeout", (2, 15)),
                                      **kw)


class Load:
    """Workers starting instances of every kind, each with its own key, retried until acknowledged."""

    def __init__(self, client, workers, rng_seed, data):
        self.client = client
        self.data = data
        self.workers = workers
        self.seed = rng_seed
        self.lock = threading.Lock()
        self.keys = {}          # key -> kind
        self.acks = defaultdict(set)  # key -> instance ids acknowledged for it
        self.unacked = set()    # keys whose start was never acknowledged
        self.counts = Counter()
        self.loading = True     # new keys are started while this holds
        self.hard_stop = False  # give up retrying
        self.violations = []

    def run_worker(self, n):
        rng = random.Random(self.seed * 1000 + n)
        while self.loading:
            kind = rng.choice(list(KINDS))
            key = f"chaos-{uuid.UUID(int=rng.getrandbits(128))}"
            with self.lock:
                self.keys[key] = kind
                self.counts["starts"] += 1
            iid = self.start(key, kind)
            if iid is None:
                with self.lock:
                    self.unacked.add(key)
                continue
            stop_after = KINDS[kind][2]
            if stop_after:
                time.sleep(rng.uniform(*stop_after))
                self.stop(iid)

    def start(self, key, kind):
        body = archive(kind, key, self.data)
        attempt = 0
        while not self.hard_stop:
            attempt += 1
            try:
                r = self.client.call("POST", "/api/v1/process", data=body,
                                     headers={"Idempotency-Key": key, "Content-Type": "application/zip"})
                if r.status_code == 200:
                    iid = r.json()["instanceId"]
                    with self.lock:
                        self.acks[key].add(iid)
                        self.counts["acknowledged"] += 1
                        if attempt > 1:
                            self.counts["retried starts"] += 1
                    return iid
                if r.status_code != 503:
                    with self.lock:
                        self.violations.append(f"start {key}: unexpected {r.status_code} {r.text[:200]}")
                    return None
            except requests.RequestException:
                pass
            with self.lock:
                self.counts["requests refused or cut off"] += 1
            time.sleep(0.2)
        return None

    def stop(self, iid):
        while not self.hard_stop:
            try:
                r = self.client.call("DELETE", f"/api/v1/process/{iid}")
                if r.status_code in (200, 202, 204):
                    with self.lock:
                        self.counts["stops"] += 1
                    return
                if r.status_code != 503:
                    with self.lock:
                        self.violations.append(f"stop {iid}: unexpected {r.status_code} {r.text[:200]}")
                    return
            except requests.RequestException:
                pass
            with self.lock:
                self.counts["requests refused or cut off"] += 1
            time.sleep(0.2)


def killer(deployment, stop_event, rng, interval, kills):
    while not stop_event.wait(rng.uniform(*interval)):
        name = rng.choice(deployment.names)
        deployment.kill(name)
        kills[name] += 1
        time.sleep(rng.uniform(0.2, 1.5))
        deployment.start(name)


def list_all(client):
    instances, offset = [], 0
    while True:
        page = client.call("GET", "/api/v2/process", params={"limit": 1000, "offset": offset}).json()
        instances += page
        if len(page) < 1000:
            return instances
        offset += 1000


def verify_log(directory):
    """Offline check of the event log: returns (problems, {instance: final status}, event count)."""
    problems, status, seen_terminal = [], {}, {}
    expected_seq, count = 1, 0
    segments = sorted(glob.glob(f"{directory}/segment-*.log"))
    if not segments:
        return ["no segment files"], status, 0
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
                event = json.loads(body)
            except ValueError as e:
                problems.append(f"{path}@{pos}: does not decode: {e}")
                break
            if event.get("seq") != expected_seq:
                problems.append(f"{path}@{pos}: seq {event.get('seq')} where {expected_seq} was expected")
            expected_seq = event.get("seq", expected_seq) + 1
            count += 1
            iid, kind = event.get("instanceId"), event.get("type")
            new = EVENT_STATUS.get(kind)
            if new:
                old = status.get(iid)
                if iid in seen_terminal:
                    problems.append(f"seq {event['seq']}: {kind} for {iid} after its terminal {seen_terminal[iid]}")
                elif old is None and kind != "InstanceCreated":
                    problems.append(f"seq {event['seq']}: {kind} for {iid} before it was created")
                elif old is not None and RANK[new] < RANK[old]:
                    problems.append(f"seq {event['seq']}: {iid} moved back from {old} to {new}")
                else:
                    status[iid] = new
                    if new in TERMINAL:
                        seen_terminal[iid] = new
            pos += 8 + length
    return problems, status, count


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

        # Every key in flight is retried until acknowledged, then every instance must end.
        drain_until = time.time() + args.drain
        while any(t.is_alive() for t in workers) and time.time() < drain_until:
            deployment.ensure_all()  # as in the loop below: the supervisor's part
            for t in workers:
                t.join(0.2)
        load.hard_stop = True
        instances = []
        while time.time() < drain_until:
            # The supervisor's part (accord-local, systemd): a component that exited by itself
            # during the drain is started again. A service exits on purpose when libnng 1.5.2 can no
            # longer close a socket (nng #1813, TransportEvent.closeStuck); left down, its
            # instances could not end, and the drain would report them stuck.
            deployment.ensure_all()
            try:
                instances = list_all(client)
                if all(i["status"] in TERMINAL for i in instances):
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        instances = list_all(client)
        if any(i["status"] not in TERMINAL for i in instances):
            # Something is stuck: record what every component is doing before anything stops.
            for name in deployment.names:
                deployment.dump_stacks(name, "stuck")

        violations += load.violations
        by_tag = defaultdict(list)
        for i in instances:
            for tag in i.get("tags", []):
                if tag.startswith("chaos-"):
                    by_tag[tag].append(i["instanceId"])
        for k, ids in load.acks.items():
            found = by_tag.get(k, [])
            if len(ids) != 1:
                violations.append(f"key {k} was acknowledged as {len(ids)} different instances: {sorted(ids)}")
            if len(found) != 1 or set(found) != ids:
                violations.append(f"key {k}: acknowledged {sorted(ids)}, the listing has {found}")
        for k in load.unacked:
            if len(by_tag.get(k, [])) > 1:
                violations.append(f"unacknowledged key {k} has {len(by_tag[k])} instances")
        stuck = [i for i in instances if i["status"] not in TERMINAL]
        for i in stuck:
            violations.append(f"{i['instanceId']} is still {i['status']} after the drain")
        for i in instances:
            history = client.call("GET", f"/api/v1/process/{i['instanceId']}/history").json()
            statuses = [h["status"] for h in history]
            ranks = [RANK.get(s, -1) for s in statuses]
            if ranks != sorted(ranks) or sum(s in TERMINAL for s in statuses) > 1 or \
                    (statuses and statuses[-1] not in TERMINAL and i["status"] in TERMINAL):
                violations.append(f"{i['instanceId']}: history does not only move forward: {statuses}")
        served = {i["instanceId"]: i["status"] for i in instances}
        for i in instances:
            if "escape" not in i.get("tags", []):
                continue
            log = client.call("GET", f"/api/v1/process/{i['instanceId']}/log").text
            for mark in ("UNGUARDED", "LEAKED-KEYS", "LEAKED-EVENTS"):
                if mark in log:
                    violations.append(f"{i['instanceId']} (escape): {mark} in its log")
        for name in ("keys", "events", "payloads"):
            if not os.path.exists(os.path.join(data, name)):
                violations.append(f"the data folder lost {name}")
    finally:
        deployment.stop()

    violations += [f"{name} did not stop within 15 s of SIGTERM (stacks in logs/{name}.stop.stacks)"
                   for name in deployment.stuck_on_stop]
    problems, logged, events = verify_log(f"{data}/events")
    violations += [f"event log: {p}" for p in problems]
    if logged != served:
        differ = [f"{iid}: log {logged.get(iid)} / API {served.get(iid)}"
                  for iid in sorted(set(logged) | set(served)) if logged.get(iid) != served.get(iid)]
        violations += [f"event log and API disagree: {d}" for d in differ[:20]]

    by_status = Counter(served.values())
    by_kind = Counter(kind for k, kind in load.keys.items() if k in load.acks)
    print("chaos: counts")
    for name, value in [("starts (keys)", load.counts["starts"]), ("acknowledged", len(load.acks)),
                        ("never acknowledged (run ended)", len(load.unacked)),
                        ("requests refused or cut off", load.counts["requests refused or cut off"]),
                        ("starts acknowledged after a retry", load.counts["retried starts"]),
                        ("stops", load.counts["stops"]), ("events in the log", events)]:
        print(f"  {name:36} {value}")
    print("  kills                                " + ", ".join(f"{n} {kills[n]}" for n in deployment.names)
          + f" (total {sum(kills.values())})")
    print("  started by kind                      " + ", ".join(f"{k} {by_kind[k]}" for k in KINDS))
    print("  instances by status                  " + ", ".join(f"{s} {by_status[s]}" for s in sorted(by_status)))
    print(f"  violations                           {len(violations)}")
    for v in violations[:50]:
        print(f"    - {v}")
    if args.keep or violations:
        print(f"chaos: data kept in {data}")
    else:
        shutil.rmtree(data, ignore_errors=True)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
