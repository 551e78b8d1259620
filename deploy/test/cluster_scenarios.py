#!/usr/bin/env python3
"""Failures across hosts, one at a time, in the multi-host rehearsal (root; ACCORD_BIN, default
.build/debug): each scenario must end with the deployment serving starts and read models that
follow the log.

    python3 deploy/test/cluster_scenarios.py

- A leader cut off from every host: it loses the lead (its lease runs out) and exits by itself
  while cut off, so nothing it sent to close its connections arrives; its link comes back, and
  later its host leads again. The Gateway's subscription must not stay on the dead connection
  (a subscriber sends nothing, so that connection looks open to it for good): starts must still
  be acknowledged, and the Gateway must still see them end.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
from rehearsal import Rehearsal, trivial_archive  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def call(url, key, method, path, body=None, timeout=5):
    headers = {"Authorization": key}
    if body is not None:
        headers["Content-Type"] = "application/octet-stream"
    request = urllib.request.Request(url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {}
    except OSError:
        return None, {}


def eventually(what, check, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds} s")


def start_and_finish(url, key, what):
    """A start acknowledged (retried on 503 and on no answer, with the same Idempotency-Key)
    that the Gateway then sees FINISHED."""
    body, started = trivial_archive("scenario"), None
    idempotency = f"scenario-{time.time_ns()}"

    def acknowledged():
        nonlocal started
        request = urllib.request.Request(url + "/api/v1/process", data=body, method="POST", headers={
            "Authorization": key, "Content-Type": "application/octet-stream", "Idempotency-Key": idempotency})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                started = json.loads(r.read())["instanceId"]
                return True
        except (urllib.error.HTTPError, OSError):
            return False

    eventually(f"{what}: a start acknowledged", acknowledged, 30)
    eventually(f"{what}: the Gateway sees {started} FINISHED",
               lambda: call(url, key, "GET", f"/api/v1/process/{started}")[1].get("status") == "FINISHED", 20)


def main():
    if os.geteuid() != 0:
        sys.exit("cluster_scenarios: needs root (the rehearsal makes network namespaces)")
    os.environ.setdefault("ACCORD_BIN", os.path.join(REPO, ".build", "debug"))
    rehearsal = Rehearsal(tempfile.mkdtemp(prefix="accord-cluster-scenarios-"))
    ok = False
    try:
        (url,), key = rehearsal.up("--gateways", "1", "--executors", "1", "--name", "acsce", "--subnet", "10.234.0")
        start_and_finish(url, key, "at first")

        first = rehearsal.leader()
        print(f"cluster-scenarios: {first} leads; cutting its link", flush=True)
        rehearsal.run("partition", first)
        second = eventually("another Scheduler leading", lambda: (l := rehearsal.leader()) and l != first and l, 30)
        # Cut off, the first can renew its lease nowhere: it exits by itself, and its supervisor
        # keeps restarting it (it cannot reach the database) until the link comes back.
        time.sleep(3)
        rehearsal.run("heal", first)
        print(f"cluster-scenarios: {second} leads; {first}'s link restored", flush=True)
        start_and_finish(url, key, f"with {second} leading")

        rehearsal.run("kill", second)
        eventually(f"{first} leading again", lambda: rehearsal.leader() == first, 30)
        rehearsal.run("start", second)
        print(f"cluster-scenarios: {first} leads again (a new process on the host that was cut off)", flush=True)
        start_and_finish(url, key, f"with {first} leading again")
        ok = True
        print("cluster-scenarios: a leader cut off, dead, healed and leading again: passed")
    finally:
        rehearsal.run("down", *([] if ok else ["--keep"]), check=False)
        if ok:
            shutil.rmtree(rehearsal.dir, ignore_errors=True)
        else:
            print(f"cluster-scenarios: FAILED; the rehearsal's folder is kept in {rehearsal.dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
