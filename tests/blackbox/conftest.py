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
