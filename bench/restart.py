#!/usr/bin/env python3
"""Scheduler restart time against the size of the event log (run by hand; not a timed test).

    python3 bench/restart.py [--events 1000000] [--bin .build/release]

Writes a data folder whose log holds --events events (instances of six events each: created,
assigned, started, a log line, a step record, finished, in the exact v1 encoding), then starts the
Scheduler on it three times and reports how long each took until it listened with its state rebuilt:
1. no snapshot: the whole log is replayed;
2. after a clean stop: the snapshot written at the stop is loaded and nothing is replayed;
3. after a SIGKILL with 10% more events appended since the snapshot: snapshot plus the tail.
Each start's own "state rebuilt" log line (events, snapshot, replayed, duration) is printed too.
"""
import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zlib

MAGIC = b"ACCORDLOG1\n\x00\x00\x00\x00\x00"
SEGMENT_BYTES = 64 << 20


class LogWriter:
    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        existing = sorted(f for f in os.listdir(directory) if f.startswith("segment-") and f.endswith(".log"))
        self.seq = 1
        self.file = None
        if existing:
            self.seq = self._count(existing) + 1
            self.file = open(os.path.join(directory, existing[-1]), "ab")

    def _count(self, names):
        count = 0
        for name in names:
            data = open(os.path.join(self.directory, name), "rb").read()
            pos = 16
            while pos + 8 <= len(data):
                length, = struct.unpack_from("<I", data, pos)
                pos += 8 + length
                count += 1
        return count

    def append(self, event):
        event["seq"] = self.seq
        body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
        if self.file is None or self.file.tell() >= SEGMENT_BYTES:
            if self.file:
                self.file.close()
            self.file = open(os.path.join(self.directory, f"segment-{self.seq:020d}.log"), "wb")
            self.file.write(MAGIC)
        self.file.write(struct.pack("<II", len(body), zlib.crc32(body)) + body)
        self.seq += 1

    def close(self):
        if self.file:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()


def instance_events(at, executor, origin):
    iid = str(uuid.uuid4())
    def ev(kind, data, version=1, **extra):
        return {"at": at, "data": data, "instanceId": iid, "type": kind, "version": version, **extra}
    return [
        ev("InstanceCreated", {"arguments": {"name": "bench"}, "entryPoint": "main", "out": [],
                               "payload": {"digest": "0" * 64, "size": 180}, "principal": "bench", "tags": []},
           requestId=uuid.uuid4().hex[:13]),
        ev("InstanceAssigned", {"attempt": 1, "executorID": executor}),
        ev("InstanceStarted", {"executorID": executor}, origin={"executor": executor, "seq": origin}),
        ev("LogAppended", {"lines": [{"at": at, "level": "INFO", "text": "Hello, bench"}]},
           origin={"executor": executor, "seq": origin + 1}),
        ev("StepsRecorded", {"steps": [{"column": 3, "durationMicros": 42, "file": "processes/main.yml",
                                        "flow": "main", "line": 2, "outcome": "ok", "startedAt": at,
                                        "step": "log"}]},
           origin={"executor": executor, "seq": origin + 2}, version=2),
        ev("InstanceFinished", {"out": {}}, origin={"executor": executor, "seq": origin + 3}),
    ]


def fill(directory, count, origin_start=1):
    writer = LogWriter(directory)
    executor = "executor-1/bench0001"
    origin = origin_start
    at = 1_795_900_000_000
    written = 0
    while written < count:
        for event in instance_events(at, executor, origin):
            writer.append(event)
        written += 6
        origin += 4
        at += 1
    writer.close()
    return origin


def start_scheduler(binary, data):
    log = open(os.path.join(data, "scheduler.log"), "ab")
    started = time.monotonic()
    proc = subprocess.Popen([binary, "--data", data], stdout=log, stderr=log, start_new_session=True)
    line = None
    while time.monotonic() - started < 600:
        text = open(os.path.join(data, "scheduler.log"), errors="replace").read()
        found = re.findall(r".*state rebuilt from the log.*", text)
        if len(found) > start_scheduler.seen:
            line = found[-1]
            start_scheduler.seen = len(found)
            break
        if proc.poll() is not None:
            sys.exit(f"the scheduler exited ({proc.returncode}); see {data}/scheduler.log")
        time.sleep(0.02)
    return proc, time.monotonic() - started, line


start_scheduler.seen = 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bin", default=os.path.join(here, "..", ".build", "release"))
    args = parser.parse_args()
    binary = os.path.join(os.path.abspath(args.bin), "accord-scheduler")
    data = tempfile.mkdtemp(prefix="accord-restart-")
    try:
        t = time.monotonic()
        origin = fill(os.path.join(data, "events"), args.events)
        size = sum(os.path.getsize(os.path.join(data, "events", f)) for f in os.listdir(os.path.join(data, "events")))
        print(f"log: {args.events:,} events, {size / 2**20:.0f} MiB, written in {time.monotonic() - t:.1f} s")

        proc, took, line = start_scheduler(binary, data)
        print(f"1. no snapshot, whole log replayed:     {took:6.2f} s  | {line.split('info ')[-1] if line else '?'}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)

        proc, took, line = start_scheduler(binary, data)
        print(f"2. snapshot from the clean stop:        {took:6.2f} s  | {line.split('info ')[-1] if line else '?'}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        fill(os.path.join(data, "events"), args.events // 10, origin_start=origin)
        proc, took, line = start_scheduler(binary, data)
        print(f"3. snapshot + {args.events // 10:,} newer events:  {took:6.2f} s  | "
              f"{line.split('info ')[-1] if line else '?'}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        snaps = os.listdir(os.path.join(data, "snapshots"))
        sizes = [os.path.getsize(os.path.join(data, "snapshots", s)) for s in snaps]
        print(f"snapshots: {len(snaps)}, largest {max(sizes) / 2**20:.1f} MiB" if sizes else "snapshots: none")
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
