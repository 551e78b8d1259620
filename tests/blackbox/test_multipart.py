"""API.md "Multipart start", over HTTP as today's clients of the reference server send it
(`curl -F archive=@payload.zip`, the CLI, the Java client): the archive, the request part, form
values and files, their precedence, and the refusals that record nothing."""
import json
import os

import pytest

from accord_conformance import (assert_error_body, assert_log_once, assert_nothing_recorded, hello_zip,
                                json_body, log_text, make_zip, payload, recent_instance_ids, request, uid,
                                wait_terminal)

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "hello.zip")


def start_form(files, headers=None):
    return request("POST", "/api/v1/process", files=files, headers=headers)


def started(resp, what):
    assert resp.status_code == 200, f"{what}: expected 200, got {resp.status_code}: {resp.text[:300]!r}"
    body = json_body(resp, what)
    assert body.get("ok") is True and body.get("instanceId"), f"{what}: {body!r}"
    return body["instanceId"]


def test_the_reference_servers_curl_line_runs_the_example():
    with open(EXAMPLE, "rb") as archive:
        iid = started(start_form({"archive": ("payload.zip", archive, "application/octet-stream")}), "-F archive=@")
    assert wait_terminal(iid)["status"] == "FINISHED"
    assert_log_once(log_text(iid), r".*Hello, world")


def test_form_values_win_over_the_request_part_which_wins_over_main_json():
    marker = uid()
    flows = "main:\n- log: \"${a}-${b}-${c}\"\nother:\n- log: \"other ${a}-${b}-${c}\"\n"
    zip_bytes = payload(flows, entry="nowhere", args={"a": "zip", "b": "zip", "c": "zip"})
    request_part = json.dumps({"entryPoint": "main", "arguments": {"b": "request", "c": "request"}})
    files = {
        "archive": ("payload.zip", zip_bytes, "application/zip"),
        "request": ("request.json", request_part, "application/json"),
        "arguments.c": (None, f"form{marker}"),
        "tags": (None, f"t{marker}, second"),
    }
    iid = started(start_form(files), "archive + request + values")
    final = wait_terminal(iid)
    assert final["status"] == "FINISHED", final
    assert_log_once(log_text(iid), rf".* zip-request-form{marker}")
    listed = json_body(request("GET", "/api/v2/process", params={"tag": f"t{marker}"}), "list by tag")
    assert [item["instanceId"] for item in listed] == [iid]


def test_a_project_file_alone_is_a_runnable_start():
    marker = uid()
    concord = f"flows:\n  default:\n  - log: \"{marker} ${{name}}\"\n"
    files = {"concord.yml": ("concord.yml", concord, "application/octet-stream"), "arguments.name": (None, "Ada")}
    iid = started(start_form(files), "-F concord.yml=@")
    assert wait_terminal(iid)["status"] == "FINISHED"
    assert_log_once(log_text(iid), rf".* {marker} Ada")


def test_file_parts_land_in_the_working_folder_over_the_archive():
    marker = uid()
    zip_bytes = make_zip({
        "_main.json": json.dumps({"entryPoint": "main"}),
        "processes/main.yml": "main:\n- log: from the archive\n",
        "data.txt": "old",
    })
    flow = f"main:\n- script: sh\n  body: echo {marker} $(cat data.txt) $(cat more/extra.bin)\n"
    files = {
        "archive": ("payload.zip", zip_bytes, "application/zip"),
        "processes/main.yml": ("main.yml", flow, "application/octet-stream"),
        "data.txt": ("data.txt", "new", "application/octet-stream"),
        "more/extra.bin": ("extra.bin", "bytes", "application/octet-stream"),
    }
    iid = started(start_form(files), "archive + files")
    assert wait_terminal(iid)["status"] == "FINISHED", log_text(iid)
    assert_log_once(log_text(iid), rf".* {marker} new bytes")


@pytest.mark.parametrize("files, expected, what", [
    ({"entryPoint": (None, "main")}, 400, "values only"),
    ({"archive": ("p.zip", b"not a zip", "application/zip")}, 400, "an archive that is not a ZIP"),
    ({"archive": ("p.zip", "ZIP", "application/zip"), "../escape": ("x", b"x", "application/octet-stream")},
     400, "a file part named with .."),
    ({"archive": ("p.zip", "ZIP", "application/zip"), "/etc/cron.d/x": ("x", b"x", "application/octet-stream")},
     400, "an absolute file part name"),
    ({"archive": ("p.zip", "ZIP", "application/zip"), "request": ("r.json", "[1]", "application/json")},
     400, "a request part that is not an object"),
    ({"archive": ("p.zip", "ZIP", "application/zip"), "timeout": (None, "soon")}, 400, "a bad timeout value"),
    ({"processes/main.yml": ("main.yml", "main:\n- log: x\n", "application/octet-stream")},
     400, "flows without an entry point"),
], ids=["values-only", "not-zip", "dotdot", "absolute", "request-array", "timeout", "no-entry-point"])
def test_bad_multipart_starts_are_400_and_record_nothing(files, expected, what):
    files = {name: (part[0], hello_zip() if part[1] == "ZIP" else part[1], *part[2:]) for name, part in files.items()}
    before = recent_instance_ids()
    resp = start_form(files)
    assert_error_body(resp, expected, what)
    assert_nothing_recorded(before, what)


def test_a_cut_short_body_is_400_and_records_nothing():
    before = recent_instance_ids()
    boundary = "cutShortBoundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"p.zip\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode() + hello_zip()
    resp = request("POST", "/api/v1/process", data=body,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert_error_body(resp, 400, "a multipart body without its closing boundary")
    resp = request("POST", "/api/v1/process", data=b"--x\r\n", headers={"Content-Type": "multipart/form-data"})
    assert_error_body(resp, 400, "multipart/form-data without a boundary")
    assert_nothing_recorded(before, "cut short multipart bodies")


def test_an_idempotency_key_applies_to_a_multipart_start():
    key = f"mp-{uid()}"
    files = {"archive": ("payload.zip", hello_zip(), "application/zip")}
    first = started(start_form(files, headers={"Idempotency-Key": key}), "first")
    second = started(start_form(files, headers={"Idempotency-Key": key}), "second")
    assert first == second
