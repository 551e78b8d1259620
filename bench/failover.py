#!/usr/bin/env python3
"""Failover in the multi-host rehearsal: from SIGKILL of the leading Scheduler's host to the next
acknowledged start, over --kills kills (root; deploy/cluster/accord-cluster).

    python3 bench/failover.py [--kills 10] [--bin .build/release]

Brings up its own rehearsal (two Schedulers on PostgreSQL, one Gateway, one executor; mutual
TLS), then, each round: waits until the standby stands by, sends SIGKILL to every process on the
leader's host (the clock starts once the last signal is sent), starts instances through the
Gateway back to back (each with a 5 s client timeout) until one is acknowledged (the clock
stops), then starts the killed host again (it comes back as the standby). Prints each round and
p50 / worst; `make bench` reports them in docs/BENCHMARKS.md. Takes the rehearsal down at the end.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "deploy", "cluster"))
from rehearsal import Rehearsal, trivial_archive  # noqa: E402


def start(url, key, body):
    request = urllib.request.Request(url + "/api/v1/process", data=body, method="POST",
                                     headers={"Authorization": key, "Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def measure(kills, bin_dir, log=print):
    """Returns the seconds of each failover (a list of `kills` floats); raises on a failed round."""
    rehearsal = Rehearsal(tempfile.mkdtemp(prefix="accord-failover-"), bin_dir)
    cluster = rehearsal.run
    (url,), key = rehearsal.up("--schedulers", "2", "--gateways", "1", "--executors", "1", "--name", "acfo",
                               "--subnet", "10.233.0")
    body = trivial_archive("after the failover")
    seconds = []
    try:
        for round_ in range(1, kills + 1):
            # Ready: a start succeeds, and the other Scheduler is up and standing by.
            deadline = time.time() + 30
            while time.time() < deadline:
                lines = cluster("status").stdout
                if lines.count("standing by") == 1 and start(url, key, body) == 200:
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"round {round_}: the rehearsal did not settle (a leader and a standby)")
            leader = rehearsal.leader()
            pids = subprocess.run(["ip", "netns", "pids", rehearsal.netns(leader)], text=True,
                                  stdout=subprocess.PIPE).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            began = time.monotonic()
            attempts = []
            while True:
                sent = time.monotonic()
                status = start(url, key, body)
                attempts.append(f"{status or 'timeout'} after {time.monotonic() - sent:.3f} s")
                if status == 200:
                    break
                if time.monotonic() - began > 30:
                    raise RuntimeError(f"round {round_}: no start acknowledged within 30 s of killing {leader}")
                time.sleep(0.01)
            took = time.monotonic() - began
            seconds.append(took)
            log(f"failover {round_}: {leader} killed; the next start acknowledged after {took:.3f} s "
                f"(attempts: {', '.join(attempts)})")
            cluster("kill", leader)  # anything left of the host (its supervisor was among the pids)
            cluster("start", leader)
    finally:
        cluster("down", check=False)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build", "release"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("failover: needs root (the rehearsal makes network namespaces)")
    seconds = sorted(measure(args.kills, args.bin))
    print(f"failover over {len(seconds)} kills: p50 {seconds[len(seconds) // 2]:.3f} s, worst {seconds[-1]:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
