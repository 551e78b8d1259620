"""API.md "Following a log", over HTTP: a followed log streams what is there and then each line as
it is written, ends once the instance is terminal; as Server-Sent Events each line has an id that
resumes a stream, and the last event carries the status body."""
import json
import time

from accord_conformance import BASE_URL, api_key, assert_error_body, request, start_ok, payload, uid, wait_terminal

import requests


def open_stream(iid, *, sse=True, last_event_id=None):
    headers = {"Authorization": api_key(), "Accept-Encoding": "identity"}
    if sse:
        headers["Accept"] = "text/event-stream"
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    session = requests.Session()
    session.trust_env = False
    return session.get(f"{BASE_URL}/api/v1/process/{iid}/log", params={"follow": "true"}, headers=headers,
                       stream=True, timeout=(5, 30))


def read_events(resp):
    """Events as they arrive: (monotonic arrival time, {"event", "id", "data"})."""
    event = {"event": "message", "id": None, "data": []}
    for raw in resp.iter_lines(chunk_size=1, decode_unicode=False):
        line = raw.decode()
        if line == "":
            if event["data"]:
                yield time.monotonic(), {**event, "data": "\n".join(event["data"])}
            event = {"event": "message", "id": event["id"], "data": []}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                event["data"].append(value)
            elif field in ("event", "id"):
                event[field] = value


def sleepy_payload(marker):
    return payload(f"main:\n- log: \"{marker} one\"\n- ${{sleep.ms(800)}}\n- log: \"{marker} two\"\n"
                   f"- ${{sleep.ms(800)}}\n- log: \"{marker} three\"\n")


def test_lines_arrive_while_the_instance_runs_and_the_stream_ends_with_its_status():
    marker = uid()
    iid = start_ok(sleepy_payload(marker))
    with open_stream(iid) as resp:
        assert resp.status_code == 200, resp.text[:300]
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = list(read_events(resp))
    lines = [e for _, e in events if e["event"] == "message"]
    assert [line["data"].split("] ", 1)[1] for line in lines] == [f"{marker} one", f"{marker} two",
                                                                 f"{marker} three"]
    # Pushed as written: the lines' arrivals are spread over the run, not delivered at its end.
    arrivals = [at for at, e in events if e["event"] == "message"]
    assert arrivals[2] - arrivals[0] > 1.0, arrivals
    assert events[-1][1]["event"] == "status"
    # The status as it moved, pushed before the end: never backwards, RUNNING before the last line.
    order = ["ENQUEUED", "STARTING", "RUNNING"]
    moves = [(at, order.index(json.loads(e["data"])["status"])) for at, e in events if e["event"] == "progress"]
    assert moves and [rank for _, rank in moves] == sorted({rank for _, rank in moves}), moves
    assert moves[-1][1] == 2 and moves[-1][0] <= arrivals[-1], moves
    final = json.loads(events[-1][1]["data"])
    assert final["status"] == "FINISHED" and final["instanceId"] == iid
    ids = [int(line["id"]) for line in lines]
    assert ids == sorted(ids) and len(set(ids)) == 3

    # A reconnect with the first line's id gets the rest, and the status again.
    with open_stream(iid, last_event_id=ids[0]) as resp:
        resumed = [e for _, e in read_events(resp)]
    assert [e["data"].split("] ", 1)[1] for e in resumed if e["event"] == "message"] == [f"{marker} two",
                                                                                        f"{marker} three"]
    assert resumed[-1]["event"] == "status"


def test_a_plain_follow_streams_the_text_and_ends_with_the_instance():
    marker = uid()
    iid = start_ok(sleepy_payload(marker))
    with open_stream(iid, sse=False) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = b"".join(resp.iter_content(chunk_size=None)).decode()
    assert wait_terminal(iid)["status"] == "FINISHED"
    assert [line.split("] ", 1)[1] for line in text.splitlines()] == [f"{marker} one", f"{marker} two",
                                                                      f"{marker} three"]


def test_bad_follow_requests_are_400():
    iid = start_ok(payload("main:\n- log: hi\n"))
    wait_terminal(iid)
    assert_error_body(request("GET", f"/api/v1/process/{iid}/log", params={"follow": "maybe"}), 400, "follow=maybe")
    assert_error_body(request("GET", f"/api/v1/process/{iid}/log", params={"follow": "true"},
                              headers={"Accept": "text/event-stream", "Last-Event-ID": "-1"}), 400,
                      "a negative Last-Event-ID")
    assert_error_body(request("GET", f"/api/v1/process/{iid}/log", params={"follow": "true"},
                              headers={"Range": "bytes=0-"}), 400, "Range with follow")
