#!/usr/bin/env python3
"""Flow-runtime figures against a running deployment (run by hand; not a timed test).

    ACCORD_URL=... ACCORD_API_KEY=... python3 bench/flows.py

Prints steps per second for a long flow of trivial steps, and the overhead of one `script` step,
both measured between the instance's own RUNNING and FINISHED history timestamps (so start-up and
HTTP are excluded). Each run is checked to have FINISHED; a failed run is reported as a failure.
"""
import io, json, os, sys, zipfile
from datetime import datetime

import requests

URL = os.environ.get("ACCORD_URL", "http://127.0.0.1:8001").rstrip("/")
KEY = os.environ["ACCORD_API_KEY"]
S = requests.Session()
S.trust_env = False


def run(flow, args=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("_main.json", json.dumps({"entryPoint": "main", "arguments": args or {}}))
        z.writestr("processes/main.yml", flow)
    h = {"Authorization": KEY}
    iid = S.post(URL + "/api/v1/process", data=buf.getvalue(), headers={**h, "Content-Type": "application/zip"}).json()["instanceId"]
    final = S.get(f"{URL}/api/v1/process/{iid}/wait?timeout=300000", headers=h).json()
    if final.get("status") != "FINISHED":
        sys.exit(f"benchmark run failed: {final}")
    hist = {e["status"]: e["changeDate"] for e in S.get(f"{URL}/api/v1/process/{iid}/history", headers=h).json()}
    t = lambda s: datetime.fromisoformat(hist[s].replace("Z", "+00:00"))
    return (t("FINISHED") - t("RUNNING")).total_seconds()


n = int(os.environ.get("BENCH_STEPS", "50000"))
trivial = run("main:\n- call: f\n  withItems: ${items}\nf:\n- ${1 + 1}\n", {"items": list(range(n))})
steps = 2 * n + 1  # the expression and its call per item, plus the outer call
print(f"{steps} trivial steps in {trivial * 1000:.0f} ms: {steps / trivial:,.0f} steps/s (step events included)")

k = int(os.environ.get("BENCH_SCRIPTS", "50"))
logs = run("main:\n" + "- log: x\n" * k)
scripts = run("main:\n" + "- script: sh\n  body: \"true\"\n" * k)
print(f"{k} script steps {scripts * 1000:.0f} ms vs {k} log steps {logs * 1000:.0f} ms: "
      f"{(scripts - logs) / k * 1000:.2f} ms overhead per script step")
