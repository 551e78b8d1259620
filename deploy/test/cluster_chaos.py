#!/usr/bin/env python3
"""Chaos across hosts: the multi-host rehearsal (deploy/cluster/accord-cluster: PostgreSQL, two
Schedulers, two Gateways, two executor hosts, mutual TLS) under the mixed load of chaos.py, sent
through both Gateways, while one fault after another strikes: the leading Scheduler's host killed,
or its link cut (its connections stay open, unanswered), a Gateway's host killed, an executor's
host killed, an executor's link cut and restored.

    python3 deploy/test/cluster_chaos.py [--duration 300] [--seed N]   (root; ACCORD_BIN, default .build/debug)

Then checks what chaos.py checks (every acknowledged start exactly one instance, every instance
terminal, every history only forward, no escape), and: every Gateway serves the same statuses,
`accord log verify --store` passes on the database, and the log's final statuses are the API's.
Takes the cluster down at the end (its folder kept when something was wrong or with --keep).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
from rehearsal import Rehearsal  # noqa: E402
from chaoslib import (TERMINAL, Client, Load, check_outcome, compare_with_log, drain, fold_events, list_all,
                      print_report)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FAULTS = ["leading scheduler killed", "leading scheduler partitioned", "gateway killed", "executor host killed",
          "executor partitioned"]


def faults(rehearsal, stop, rng, interval, counts, log):
    """One fault at a time, in rounds that hold each kind once (in a random order)."""
    round_ = []
    while not stop.wait(rng.uniform(*interval)):
        if not round_:
            round_ = rng.sample(FAULTS, len(FAULTS))
        fault = round_.pop()
        if fault.startswith("leading scheduler"):
            host = rehearsal.leader()
            if host is None:
                counts["no leader to kill (still failing over)"] += 1
                continue
        elif fault == "gateway killed":
            host = rng.choice(rehearsal.hosts("gw"))
        else:
            host = rng.choice(rehearsal.hosts("exec"))
        log(f"{fault}: {host}")
        if fault.endswith("partitioned"):
            rehearsal.run("partition", host)
            time.sleep(rng.uniform(1.0, 8.0))
            rehearsal.run("heal", host)
        else:
            rehearsal.run("kill", host)
            time.sleep(rng.uniform(0.5, 3.0))
            rehearsal.run("start", host)
        counts[fault] += 1


def dump_stacks(rehearsal, why):
    """Every Gateway's and Scheduler's threads, into its host's folder (kept with the cluster): what
    a component that stopped answering was doing."""
    if not shutil.which("gdb"):
        return
    for host in rehearsal.hosts("gw") + rehearsal.hosts("sched"):
        folder = os.path.join(rehearsal.dir, "hosts", host)
        try:
            with open(os.path.join(folder, "component.pid")) as f:
                pid = int(f.read().strip())
            dump = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 40"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            continue
        with open(os.path.join(folder, f"{why}.stacks"), "wb") as f:
            f.write(dump.stdout)
    print(f"cluster-chaos: threads of every Gateway and Scheduler ({why}) in {rehearsal.dir}/hosts/*/{why}.stacks",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds of load and faults")
    parser.add_argument("--drain", type=float, default=120, help="seconds allowed for every instance to end")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--fault-every", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--name", default="achaos", help="the rehearsal's name (its namespaces and links)")
    parser.add_argument("--subnet", default="10.232.0")
    parser.add_argument("--keep", action="store_true", help="keep the cluster's folder")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("cluster_chaos: needs root (the rehearsal makes network namespaces)")
    os.environ.setdefault("ACCORD_BIN", os.path.join(REPO, ".build", "debug"))
    os.environ["ACCORD_CLUSTER_SCHEDULER_ARGS"] = "--executor-loss-timeout 3 --starting-timeout 10"
    os.environ["ACCORD_CLUSTER_GATEWAY_ARGS"] = "--scheduler-timeout 3"
    os.environ["ACCORD_CLUSTER_EXECUTOR_ARGS"] = "--capacity 8"

    rng = random.Random(args.seed)
    rehearsal = Rehearsal(tempfile.mkdtemp(prefix="accord-cluster-chaos-"))
    began = time.time()

    def log(text):
        print(f"cluster-chaos: {time.time() - began:6.1f} s {text}", flush=True)

    print(f"cluster-chaos: seed {args.seed}, {args.duration:.0f} s of load and faults, cluster in {rehearsal.dir}",
          flush=True)
    urls, key = rehearsal.up("--name", args.name, "--subnet", args.subnet)
    client = Client(urls, key)
    log(f"up: {', '.join(urls)}; the leader is {rehearsal.leader()}")
    violations, counts, served, events = [], Counter(), {}, 0
    load = Load(client, args.workers, args.seed, rehearsal.dir)
    try:
        workers = [threading.Thread(target=load.run_worker, args=(n,), daemon=True) for n in range(args.workers)]
        stop_faults = threading.Event()
        striker = threading.Thread(target=faults, args=(rehearsal, stop_faults, rng, args.fault_every, counts, log),
                                   daemon=True)
        for t in workers + [striker]:
            t.start()
        time.sleep(args.duration)
        load.loading = False
        stop_faults.set()
        striker.join()
        log("load and faults over; draining")

        instances = drain(client, load, workers, time.time() + args.drain)
        log(f"drained: {len(instances)} instances")
        if any(i["status"] not in TERMINAL for i in instances):
            dump_stacks(rehearsal, "drain-timeout")
        violations += check_outcome(client, load, instances)
        served = {i["instanceId"]: i["status"] for i in instances}
        # Every Gateway's read model catches up with the same statuses (each follows the log on its own).
        for url in urls:
            theirs = {}
            for _ in range(100):
                theirs = {i["instanceId"]: i["status"] for i in list_all(client, url=url)}
                if theirs == served:
                    break
                time.sleep(0.1)
            if theirs != served:
                dump_stacks(rehearsal, "gateways-disagree")
                violations.append(f"{url} serves {len(theirs)} instances, differing from the others' {len(served)}")

        tool = os.path.join(os.environ["ACCORD_BIN"], "accord")
        verified = subprocess.run([tool, "log", "verify", "--store", rehearsal.database_url()], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if verified.returncode != 0:
            violations.append(f"accord log verify --store failed: {verified.stdout.strip()[-500:]}")
        exported = subprocess.run([tool, "log", "export", "--store", rehearsal.database_url()], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        problems, logged, events = fold_events(json.loads(line) for line in exported.stdout.splitlines())
        violations += [f"event log: {p}" for p in problems]
        violations += compare_with_log(logged, served)
    finally:
        load.hard_stop = True
        keep = args.keep or bool(violations) or sys.exc_info()[0] is not None
        rehearsal.run("down", *(["--keep"] if keep else []), check=False)

    print_report(load, served, events, {f: counts[f] for f in FAULTS + sorted(set(counts) - set(FAULTS))},
                 violations)
    missing = [f for f in FAULTS if not counts[f]]
    if missing and args.duration >= 30:
        violations.append(f"faults that never struck: {', '.join(missing)}")
        print(f"    - {violations[-1]}")
    if keep:
        print(f"cluster-chaos: the cluster's folder (logs per host) is kept in {rehearsal.dir}")
    else:
        shutil.rmtree(rehearsal.dir, ignore_errors=True)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
