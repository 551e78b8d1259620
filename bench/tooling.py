#!/usr/bin/env python3
"""Event-log tooling speed (run by hand; not a timed test).

    python3 bench/tooling.py [--events 1000000] [--bin .build/release]

Writes a log of --events events (see bench/restart.py for the shape), then times
`accord log verify`, `accord projections rebuild` (offline: the fold, nothing to compare with) and
`accord log export` over it and prints events per second.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from restart import fill  # noqa: E402


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bin", default=os.path.join(here, "..", ".build", "release"))
    args = parser.parse_args()
    accord = os.path.join(os.path.abspath(args.bin), "accord")
    data = tempfile.mkdtemp(prefix="accord-tooling-")
    try:
        fill(os.path.join(data, "events"), args.events)
        for name, command in [("log verify", [accord, "log", "verify", data]),
                              ("projections rebuild", [accord, "projections", "rebuild", data]),
                              ("log export", [accord, "log", "export", data])]:
            started = time.monotonic()
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            took = time.monotonic() - started
            if result.returncode != 0:
                sys.exit(f"{name} failed ({result.returncode}): {result.stderr.decode()[:500]}")
            print(f"accord {name}: {args.events:,} events in {took:.2f} s = {args.events / took:,.0f} events/s")
            if name != "log export":
                print("  " + result.stdout.decode().strip().replace("\n", "\n  "))
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
