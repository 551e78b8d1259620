"""API.md "OpenAPI": the document at /api/v1/openapi.json is served without a key, is valid
OpenAPI 3.1 (openapi-spec-validator), and is true to what the server answers: schemathesis drives
every operation against this deployment and checks there is no 5xx and that every answer's
status, content type, headers and body match what the document says. The router's own routes are
compared with the document in the Swift suite (OpenAPIDocumentTests)."""
import os
import shutil
import subprocess
import sys
import tempfile

from openapi_spec_validator import validate

from accord_conformance import BASE_URL, api_key, hello_zip, json_body, request, start_ok, wait_terminal

CHECKS = ",".join(["not_a_server_error", "status_code_conformance", "content_type_conformance",
                   "response_schema_conformance", "response_headers_conformance"])


def test_the_document_is_anonymous_and_valid_openapi_3_1():
    resp = request("GET", "/api/v1/openapi.json", auth=False)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    document = json_body(resp, "openapi.json")
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_schemathesis_finds_every_answer_as_documented():
    # A finished instance gives the instance routes something real to answer about (a random id
    # only ever meets 404); it is finished, so waits on it return at once.
    iid = start_ok(hello_zip())
    assert wait_terminal(iid)["status"] == "FINISHED"
    folder = tempfile.mkdtemp(prefix="accord-schemathesis-")
    try:
        config = os.path.join(folder, "schemathesis.toml")
        with open(config, "w") as f:
            f.write(f'[parameters]\n"path.id" = "{iid}"\n')
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", config, "run",
             f"{BASE_URL}/api/v1/openapi.json", "-H", f"Authorization: {api_key()}", "--checks", CHECKS,
             "--request-timeout", "20", "--max-examples", "30", "--seed", "20261203", "--no-color"],
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert run.returncode == 0, run.stdout[-6000:]
