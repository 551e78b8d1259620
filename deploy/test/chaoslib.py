"""What both chaos tests share: the mixed load, the client, and the checks of the outcome.

`chaos.py` runs them against one host whose components it kills; `cluster_chaos.py` against the
multi-host rehearsal (deploy/cluster/accord-cluster), whose hosts it kills and cuts off.
"""
import io
import json
import random
import re
import threading
import time
import uuid
import zipfile
from collections import Counter, defaultdict

import requests

TERMINAL = {"FINISHED", "FAILED", "CANCELLED", "TIMED_OUT"}
EVENT_STATUS = {"InstanceCreated": "ENQUEUED", "InstanceAssigned": "STARTING", "InstanceStarted": "RUNNING",
                "InstanceFinished": "FINISHED", "InstanceFailed": "FAILED", "InstanceCancelled": "CANCELLED",
                "InstanceTimedOut": "TIMED_OUT", "InstanceSuspended": "SUSPENDED", "InstanceResumed": "RESUMING"}
# The moves a status may make besides into a terminal one (InstanceStatus.canMove): forward, and
# the one way back, RUNNING -> SUSPENDED -> RESUMING -> RUNNING.
MOVES = {"ENQUEUED": {"STARTING", "RUNNING"}, "STARTING": {"RUNNING"}, "RUNNING": {"SUSPENDED"},
         "SUSPENDED": {"RESUMING"}, "RESUMING": {"RUNNING"}}


def can_move(old, new):
    return old not in TERMINAL and (new in TERMINAL or new in MOVES.get(old, ()))


def follows_the_lifecycle(statuses):
    return all(can_move(a, b) for a, b in zip(statuses, statuses[1:]))

# Flows by kind: (flow YAML, extra _main.json fields, stop after (min, max) seconds or None).
KINDS = {
    "quick": ('main:\n- log: "quick"\n', {}, None),
    "slow": ("main:\n- sleep: 2500\n- log: slow done\n", {}, None),
    "script": ('main:\n- script: sh\n  body: |\n    sleep 1\n    echo "script done"\n', {}, None),
    "failing": ('main:\n- log: about to fail\n- throw: "planned failure"\n', {}, None),
    "stopped": ("main:\n- script: sh\n  body: sleep 30\n", {}, (0.3, 3.0)),
    "timed_out": ("main:\n- sleep: 30000\n", {"timeout": 1}, None),
    # Suspends; its worker resumes it once it is SUSPENDED (and it then ends FINISHED).
    "suspended": ('main:\n- script: sh\n  body: echo kept > note.txt\n- suspend: go\n'
                  '- script: sh\n  body: cat note.txt\n- log: "resumed ${answer}"\n', {}, None),
    # Starts a child and waits for it suspended; the Scheduler resumes it with the child's outVars.
    "parent": ('main:\n- task: concord\n  in: {action: start, entryPoint: child, sync: true, outVars: [answer]}\n'
               '  out: job\n- log: "child answered ${job.answer}"\n'
               'child:\n- script: sh\n  body: sleep 1\n- set: {answer: 42}\n', {}, None),
    # Tries to escape its sandbox: read the keys, remove the data folder, kill every process it can.
    # Guarded: it does anything only where it is not root and is in a PID namespace of its own, so a
    # missing sandbox cannot harm the machine (it says UNGUARDED instead, and that is a violation).
    "escape": ('main:\n- script: sh\n  body: |\n'
               '    [ "$(id -u)" != 0 ] && [ "$(cat /proc/1/comm)" = bwrap ] || { echo UNGUARDED; exit 97; }\n'
               '    cat @DATA@/keys 2>/dev/null && echo LEAKED-KEYS\n'
               '    cat @DATA@/certs/ca-key.pem 2>/dev/null && echo LEAKED-KEYS\n'
               '    ls @DATA@/events 2>/dev/null && echo LEAKED-EVENTS\n'
               '    rm -rf @DATA@ 2>/dev/null\n'
               '    kill -9 -1\n', {}, None),
}
LEAK_MARKS = ("UNGUARDED", "LEAKED-KEYS", "LEAKED-EVENTS")


def archive(kind, key, target):
    """The ZIP for an instance of `kind`; `target` is the folder the escape aims at."""
    flow, extra, _ = KINDS[kind]
    main = {"entryPoint": "main", "tags": [key, kind], **extra}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("_main.json", json.dumps(main))
        z.writestr("processes/main.yml", flow.replace("@DATA@", target))
    return buf.getvalue()


class Client:
    """Requests to one of the deployment's Gateways: `call(..., attempt=n)` picks the n-th, so a
    caller that retries moves on to the next Gateway."""

    def __init__(self, urls, key):
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.key = key
        self.local = threading.local()

    def session(self):
        if not hasattr(self.local, "s"):
            self.local.s = requests.Session()
            self.local.s.trust_env = False
        return self.local.s

    def call(self, method, path, attempt=0, url=None, **kw):
        headers = {"Authorization": self.key, **kw.pop("headers", {})}
        base = url or self.urls[attempt % len(self.urls)]
        return self.session().request(method, base + path, headers=headers, timeout=kw.pop("timeout", (2, 15)), **kw)


class Load:
    """Workers starting instances of every kind, each with its own key, retried (on every Gateway
    in turn) until acknowledged."""

    def __init__(self, client, workers, rng_seed, target):
        self.client = client
        self.target = target
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
            iid = self.start(key, kind, n)
            if iid is None:
                with self.lock:
                    self.unacked.add(key)
                continue
            stop_after = KINDS[kind][2]
            if stop_after:
                time.sleep(rng.uniform(*stop_after))
                self.stop(iid, n)
            if kind == "suspended":
                self.resume(iid, n)

    def retrying(self, what, request, ok, first):
        """Calls `request(attempt)` until `ok(response)` (returns it), a status other than 503 (a
        violation, returns None) or the hard stop."""
        attempt = first
        while not self.hard_stop:
            try:
                r = request(attempt)
                if ok(r):
                    return r, attempt - first
                if r.status_code != 503:
                    with self.lock:
                        self.violations.append(f"{what}: unexpected {r.status_code} {r.text[:200]}")
                    return None, attempt - first
            except requests.RequestException:
                pass
            with self.lock:
                self.counts["requests refused or cut off"] += 1
            attempt += 1
            time.sleep(0.2)
        return None, attempt - first

    def start(self, key, kind, n):
        body = archive(kind, key, self.target)
        r, retries = self.retrying(
            f"start {key}",
            lambda attempt: self.client.call("POST", "/api/v1/process", attempt=attempt, data=body,
                                             headers={"Idempotency-Key": key, "Content-Type": "application/zip"}),
            lambda r: r.status_code == 200, n)
        if r is None:
            return None
        iid = r.json()["instanceId"]
        with self.lock:
            self.acks[key].add(iid)
            self.counts["acknowledged"] += 1
            if retries:
                self.counts["retried starts"] += 1
        return iid

    def resume(self, iid, n):
        """Waits until the instance is SUSPENDED, then resumes it, retried like everything else; an
        instance that ended first (its executor lost while it ran) has nothing to resume. Each poll
        asks the next Gateway, as a client would: one that cannot reach the Scheduler for a while
        still answers, with a status that does not move."""
        polls = 0
        while not self.hard_stop:
            attempt, polls = n + polls, polls + 1
            try:
                r = self.client.call("GET", f"/api/v1/process/{iid}", attempt=attempt)
                status = r.json().get("status") if r.status_code == 200 else None
            except (requests.RequestException, ValueError):
                status = None
            if status in TERMINAL or status == "RESUMING":
                return
            if status == "SUSPENDED":
                try:
                    r = self.client.call("POST", f"/api/v1/process/{iid}/resume/go", attempt=attempt,
                                         json={"answer": 42})
                    if r.status_code == 200:
                        with self.lock:
                            self.counts["resumes"] += 1
                        return
                    if r.status_code not in (409, 503):
                        with self.lock:
                            self.violations.append(f"resume {iid}: unexpected {r.status_code} {r.text[:200]}")
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.2)

    def stop(self, iid, n):
        r, _ = self.retrying(
            f"stop {iid}", lambda attempt: self.client.call("DELETE", f"/api/v1/process/{iid}", attempt=attempt),
            lambda r: r.status_code in (200, 202, 204), n)
        if r is not None:
            with self.lock:
                self.counts["stops"] += 1


def list_all(client, url=None):
    instances, offset = [], 0
    while True:
        page = client.call("GET", "/api/v2/process", url=url, params={"limit": 1000, "offset": offset}).json()
        instances += page
        if len(page) < 1000:
            return instances
        offset += 1000


def drain(client, load, workers, until, tend=lambda: None):
    """After the load: every key in flight is retried until acknowledged, then every instance
    must end, all before `until`. `tend` runs on every turn (a supervisor's part: starting what
    exited by itself). Returns the final listing."""
    while any(t.is_alive() for t in workers) and time.time() < until:
        tend()
        for t in workers:
            t.join(0.2)
    load.hard_stop = True
    while time.time() < until:
        tend()
        try:
            if all(i["status"] in TERMINAL for i in list_all(client)):
                break
        except requests.RequestException:
            pass
        time.sleep(1)
    return list_all(client)


def fold_events(events):
    """Per-instance status events in log order: returns (problems, {instance: final status}, count).
    Each event is a decoded log record (`seq`, `type`, `instanceId`)."""
    problems, status, seen_terminal = [], {}, {}
    expected_seq, count = 1, 0
    for event in events:
        if event.get("seq") != expected_seq:
            problems.append(f"seq {event.get('seq')} where {expected_seq} was expected")
        expected_seq = event.get("seq", expected_seq) + 1
        count += 1
        iid, kind = event.get("instanceId"), event.get("type")
        new = EVENT_STATUS.get(kind)
        if not new:
            continue
        old = status.get(iid)
        if iid in seen_terminal:
            problems.append(f"seq {event['seq']}: {kind} for {iid} after its terminal {seen_terminal[iid]}")
        elif old is None and kind != "InstanceCreated":
            problems.append(f"seq {event['seq']}: {kind} for {iid} before it was created")
        elif old == "RESUMING" and new == "STARTING":
            continue  # a resumed instance's assignment: it stays RESUMING
        elif old is not None and new != old and not can_move(old, new):
            problems.append(f"seq {event['seq']}: {iid} moved from {old} to {new}")
        else:
            status[iid] = new
            if new in TERMINAL:
                seen_terminal[iid] = new
    return problems, status, count


def read(client, path, n, json_list=False, rounds=20):
    """GET `path` from the Gateways in turn (a client's retry) until one answers 200 (with a JSON
    list when `json_list`): its body, or None when none did within `rounds` tries each."""
    for attempt in range(n, n + rounds * len(client.urls)):
        try:
            r = client.call("GET", path, attempt=attempt)
            if r.status_code == 200:
                if not json_list:
                    return r.text
                body = r.json()
                if isinstance(body, list):
                    return body
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.25)
    return None


def check_outcome(client, load, instances):
    """Every acknowledged key is exactly the one instance the listing has with its tag, nothing is
    left unfinished, every history only moves forward, and no escape got anywhere."""
    violations = list(load.violations)
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
    for i in instances:
        if i["status"] not in TERMINAL:
            violations.append(f"{i['instanceId']} is still {i['status']} after the drain")
    for n, i in enumerate(instances):
        history = read(client, f"/api/v1/process/{i['instanceId']}/history", n, json_list=True)
        if history is None:
            violations.append(f"{i['instanceId']}: no Gateway answered its history")
            continue
        statuses = [h["status"] for h in history]
        if not follows_the_lifecycle(statuses) or sum(s in TERMINAL for s in statuses) > 1 or \
                (statuses and statuses[-1] not in TERMINAL and i["status"] in TERMINAL):
            violations.append(f"{i['instanceId']}: history does not only move forward: {statuses}")
        if "suspended" in i.get("tags", []) and i["status"] == "FINISHED":
            # Resumed on whichever executor, with its working folder and the resume's variables.
            log = read(client, f"/api/v1/process/{i['instanceId']}/log", n) or ""
            if "kept" not in log or "resumed 42" not in log:
                violations.append(f"{i['instanceId']} (suspended): resumed without its folder or variables: {log[-300:]}")
        if "parent" in i.get("tags", []) and i["status"] == "FINISHED":
            log = read(client, f"/api/v1/process/{i['instanceId']}/log", n) or ""
            if "child answered 42" not in log:
                violations.append(f"{i['instanceId']} (parent): went on without its child's out: {log[-300:]}")
        if "escape" in i.get("tags", []):
            log = read(client, f"/api/v1/process/{i['instanceId']}/log", n) or ""
            violations += [f"{i['instanceId']} (escape): {mark} in its log" for mark in LEAK_MARKS if mark in log]
    return violations


def compare_with_log(logged, served):
    if logged == served:
        return []
    differ = [f"{iid}: log {logged.get(iid)} / API {served.get(iid)}"
              for iid in sorted(set(logged) | set(served)) if logged.get(iid) != served.get(iid)]
    return [f"event log and API disagree: {d}" for d in differ[:20]]


def print_report(load, served, events, kills, violations):
    by_status = Counter(served.values())
    by_kind = Counter(kind for k, kind in load.keys.items() if k in load.acks)
    print("chaos: counts")
    for name, value in [("starts (keys)", load.counts["starts"]), ("acknowledged", len(load.acks)),
                        ("never acknowledged (run ended)", len(load.unacked)),
                        ("requests refused or cut off", load.counts["requests refused or cut off"]),
                        ("starts acknowledged after a retry", load.counts["retried starts"]),
                        ("stops", load.counts["stops"]), ("resumes", load.counts["resumes"]),
                        ("events in the log", events)]:
        print(f"  {name:36} {value}")
    print("  faults                               " + ", ".join(f"{n} {c}" for n, c in kills.items())
          + f" (total {sum(kills.values())})")
    print("  started by kind                      " + ", ".join(f"{k} {by_kind[k]}" for k in KINDS))
    print("  instances by status                  " + ", ".join(f"{s} {by_status[s]}" for s in sorted(by_status)))
    print(f"  violations                           {len(violations)}")
    # The first few of each kind (a kind is the text without its ids), so that many of one kind
    # hide no other.
    kinds = defaultdict(list)
    for v in violations:
        kinds[re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|chaos-[0-9a-f-]+|\d+", "#", v)].append(v)
    for kind, found in kinds.items():
        for v in found[:10]:
            print(f"    - {v}")
        if len(found) > 10:
            print(f"    - ... and {len(found) - 10} more like: {kind}")
