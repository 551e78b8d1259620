"""Accord's own black-box tests reuse the shared conformance suite's helpers (payload builders,
start/wait/log calls with client timeouts) without copying them."""
import importlib.util
import os
import sys

_shared = os.environ.get(
    "ACCORD_CONFORMANCE",
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "conformance"))
_spec = importlib.util.spec_from_file_location("accord_conformance", os.path.join(_shared, "conftest.py"))
helpers = importlib.util.module_from_spec(_spec)
sys.modules["accord_conformance"] = helpers
_spec.loader.exec_module(helpers)

server_reachable = helpers.server_reachable  # the session fixture: one clear failure when nothing answers


def pytest_terminal_summary(terminalreporter):
    """The web console test's screenshots, with what each shows (test_console.py)."""
    shots = os.environ.get("ACCORD_SCREENSHOTS",
                           os.path.join(os.path.dirname(__file__), "..", "..", ".build", "console-screenshots"))
    index = os.path.join(shots, "screenshots.txt")
    if not os.path.exists(index):
        return
    with open(index) as f:
        lines = [line.rstrip() for line in f if line.strip()]
    if lines:
        terminalreporter.write_sep("-", "web console screenshots")
        for line in lines:
            terminalreporter.write_line(line)
