"""API.md "API keys and teams", over HTTP: the key routes and team scoping on every instance route.

ACCORD_API_KEY is the deployment's configured key, an admin key. Every key made here has a unique
name and is revoked at the end of its test."""
import time

import pytest

from accord_conformance import (assert_error_body, hello_zip, json_body, request, sleep_zip, uid,
                                wait_terminal)

INSTANCE_ROUTES = [
    ("GET", ""),
    ("GET", "/wait?timeout=1"),
    ("GET", "/waitForCompletion?timeout=1"),
    ("GET", "/log"),
    ("GET", "/history"),
    ("GET", "/events"),
    ("DELETE", ""),
]


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


def make_key(team, *, admin=False, name=None):
    body = {"name": name or f"bb-{uid()}", "admin": admin}
    if team is not None:
        body["team"] = team
    resp = request("POST", "/api/v1/apikey", json=body)
    assert resp.status_code == 201, f"POST /api/v1/apikey: {resp.status_code} {resp.text[:300]!r}"
    made = json_body(resp)
    assert made["ok"] is True and made["name"] == body["name"] and made["team"] == team
    assert isinstance(made["key"], str) and len(made["key"]) >= 32
    return made


@pytest.fixture
def keys():
    made = []

    def factory(team, **kwargs):
        key = make_key(team, **kwargs)
        made.append(key)
        return key

    yield factory
    for key in made:
        request("DELETE", f"/api/v1/apikey/{key['id']}")


def start_as(secret, zip_bytes=None, **headers):
    resp = request("POST", "/api/v1/process", headers={**bearer(secret), **headers},
                   data=zip_bytes or hello_zip(f"bb-{uid()}"))
    assert resp.status_code == 200, f"start: {resp.status_code} {resp.text[:300]!r}"
    return json_body(resp)["instanceId"]


def test_a_key_is_listed_without_its_secret_and_refused_once_revoked(keys):
    made = keys(f"team-{uid()}")
    resp = request("GET", "/api/v1/apikey")
    assert resp.status_code == 200
    listed = [k for k in json_body(resp) if k["id"] == made["id"]]
    assert len(listed) == 1 and set(listed[0]) == {"id", "name", "team", "admin", "createdAt"}, listed
    assert made["key"] not in resp.text
    assert request("GET", "/api/v2/process", headers=bearer(made["key"])).status_code == 200
    resp = request("DELETE", f"/api/v1/apikey/{made['id']}")
    assert resp.status_code == 204, resp.text
    deadline = time.monotonic() + 1.0
    while request("GET", "/api/v2/process", headers=bearer(made["key"])).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key is still accepted after a second"
        time.sleep(0.02)
    assert all(k["id"] != made["id"] for k in json_body(request("GET", "/api/v1/apikey")))
    assert_error_body(request("DELETE", f"/api/v1/apikey/{made['id']}"), 404, "revoking twice")


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"team": "t-1"}', b'{"name": 3, "team": "t-1"}', b'{"name": "x", "team": "t-1"}',
    b'{"name": "ok-name"}', b'{"name": "ok-name", "team": "a b"}', b'{"name": "ok-name", "team": "t-1", "admin": 1}',
    b'{"name": "ok-name", "team": "t-1", "extra": true}',
])
def test_a_bad_body_is_400_and_makes_no_key(body):
    before = len(json_body(request("GET", "/api/v1/apikey")))
    resp = request("POST", "/api/v1/apikey", data=body, headers={"Content-Type": "application/json"})
    assert_error_body(resp, 400, f"POST /api/v1/apikey {body!r}")
    assert len(json_body(request("GET", "/api/v1/apikey"))) == before


def test_a_taken_name_is_409(keys):
    made = keys("t-1")
    resp = request("POST", "/api/v1/apikey", json={"name": made["name"], "team": "t-2"})
    assert_error_body(resp, 409, "a second key with the same name")


def test_unknown_and_malformed_key_ids_are_404():
    for key_id in ["00000000-0000-4000-8000-000000000000", "not-a-uuid"]:
        assert_error_body(request("DELETE", f"/api/v1/apikey/{key_id}"), 404, key_id)


def test_a_member_key_may_not_manage_keys_nor_read_the_whole_stream(keys):
    member = keys(f"team-{uid()}")
    for method, path, kwargs in [
        ("POST", "/api/v1/apikey", {"json": {"name": f"bb-{uid()}", "team": "x-1", "admin": True}}),
        ("GET", "/api/v1/apikey", {}),
        ("DELETE", f"/api/v1/apikey/{member['id']}", {}),
        ("GET", "/api/v1/events", {}),
    ]:
        assert_error_body(request(method, path, headers=bearer(member["key"]), **kwargs), 403, f"{method} {path}")
    assert request("GET", "/api/v2/process", headers=bearer(member["key"])).status_code == 200


def test_another_teams_instance_does_not_exist_on_any_route(keys):
    ours, theirs = keys(f"team-{uid()}"), keys(f"team-{uid()}")
    mine = start_as(ours["key"])
    hidden = start_as(theirs["key"], sleep_zip(60000))
    unknown = "00000000-0000-4000-8000-000000000000"
    for method, suffix in INSTANCE_ROUTES:
        resp = request(method, f"/api/v1/process/{hidden}{suffix}", headers=bearer(ours["key"]))
        other = request(method, f"/api/v1/process/{unknown}{suffix}", headers=bearer(ours["key"]))
        assert_error_body(resp, 404, f"{method} another team's instance{suffix}")
        assert resp.json()["message"] == other.json()["message"].replace(unknown, hidden), \
            f"{method} {suffix}: the answer differs from an unknown id's"
    assert json_body(request("GET", f"/api/v1/process/{hidden}", headers=bearer(theirs["key"])))["status"] != "CANCELLED"
    listing = request("GET", "/api/v2/process?limit=1000", headers=bearer(ours["key"])).text
    assert mine in listing and hidden not in listing
    admin_listing = request("GET", "/api/v2/process?limit=1000").text
    assert mine in admin_listing and hidden in admin_listing
    assert wait_terminal(mine)["status"] == "FINISHED"
    for method, suffix in INSTANCE_ROUTES[:-1]:
        assert request(method, f"/api/v1/process/{mine}{suffix}", headers=bearer(ours["key"])).status_code == 200
    assert request("DELETE", f"/api/v1/process/{hidden}", headers=bearer(theirs["key"])).status_code == 204


def test_idempotency_keys_are_per_team(keys):
    team = f"team-{uid()}"
    first, second, other = keys(team), keys(team), keys(f"team-{uid()}")
    header = {"Idempotency-Key": f"bb-{uid()}"}
    a = start_as(first["key"], **header)
    assert start_as(second["key"], **header) == a, "another key of the same team"
    assert start_as(other["key"], **header) != a, "another team"
