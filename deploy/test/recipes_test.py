"""The deployment recipes stay true to the binaries and to the rehearsal.

Every flag that a systemd unit, the Kubernetes manifests or the rehearsal passes is one the
binary's --help lists; every role passes the flags the rehearsal (deploy/cluster/accord-cluster)
gives it (the Scheduler's database may come as ACCORD_DATABASE_URL instead of --store); every
binary the package builds is in the container image; each role's pod mounts only its own key.

    ACCORD_BIN=.build/debug python3 -m pytest -q deploy/test/recipes_test.py
"""
import importlib.machinery
import importlib.util
import os
import re
import shlex
import subprocess

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(os.environ.get("ACCORD_BIN", os.path.join(ROOT, ".build", "debug")))
ROLES = {"accord-scheduler": "sched", "accord-gateway": "gw", "accord-executor": "exec"}


def flags(argv):
    return {a.split("=", 1)[0] for a in argv if a.startswith("--")}


def help_flags(binary, subcommand=None):
    argv = [os.path.join(BIN, binary)] + ([subcommand] if subcommand else []) + ["--help"]
    text = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", text))


def rehearsal_commands():
    loader = importlib.machinery.SourceFileLoader("accord_cluster", os.path.join(ROOT, "deploy", "cluster", "accord-cluster"))
    spec = importlib.util.spec_from_loader("accord_cluster", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    cluster = module.Cluster("/nonexistent")
    cluster.state = {"name": "t", "subnet": "10.9.9", "bin": BIN, "pg_bin": "/usr/bin", "db_password": "x", "key": "k",
                     "hosts": {"db": "10.9.9.2", "sched-1": "10.9.9.11", "gw-1": "10.9.9.21", "exec-1": "10.9.9.31"},
                     "args": {"sched": [], "gw": [], "exec": []}}
    return {h.split("-")[0]: cluster.command(h) for h in ("sched-1", "gw-1", "exec-1")}


def systemd_commands():
    found = {}
    folder = os.path.join(ROOT, "deploy", "systemd")
    for name in sorted(os.listdir(folder)):
        text = open(os.path.join(folder, name)).read()
        line = next(l for l in text.splitlines() if l.startswith("ExecStart="))
        argv = shlex.split(line.split("=", 1)[1])
        env = " ".join(l for l in text.splitlines() if l.startswith(("Environment", "#")))
        found[name] = (argv, env)
    return found


def kubernetes_containers():
    with open(os.path.join(ROOT, "deploy", "kubernetes", "accord.yaml")) as f:
        documents = [d for d in yaml.safe_load_all(f) if d]
    for d in documents:
        if d["kind"] in ("Deployment", "StatefulSet"):
            spec = d["spec"]["template"]["spec"]
            for container in spec["containers"]:
                yield d, container, spec


RECIPES = [(f"systemd {name}", argv, env) for name, (argv, env) in systemd_commands().items()] + [
    (f"kubernetes {d['metadata']['name']}", c["command"] + c.get("args", []),
     " ".join(e["name"] for e in c.get("env", []))) for d, c, _ in kubernetes_containers()]


@pytest.mark.parametrize("recipe,argv,env", RECIPES, ids=[r[0] for r in RECIPES])
def test_every_flag_is_the_binarys_and_the_rehearsals_are_all_there(recipe, argv, env):
    binary = os.path.basename(argv[0])
    assert binary in ROLES, f"{recipe} runs {binary}"
    subcommand = "serve" if binary == "accord-executor" else None
    if subcommand:
        assert argv[1] == "serve", f"{recipe}: accord-executor without serve"
    unknown = flags(argv) - help_flags(binary, subcommand)
    assert not unknown, f"{recipe} passes flags {binary} does not have: {sorted(unknown)}"
    rehearsal = flags(rehearsal_commands()[ROLES[binary]])
    missing = rehearsal - flags(argv)
    if "--store" in missing and "ACCORD_DATABASE_URL" in env:
        missing.discard("--store")
    if binary == "accord-gateway":
        missing.discard("--keys-file")
    assert not missing, f"{recipe} lacks the rehearsal's {sorted(missing)}"


def test_the_rehearsals_flags_are_the_binaries():
    for role, argv in rehearsal_commands().items():
        binary = os.path.basename(argv[0])
        unknown = flags(argv) - help_flags(binary, "serve" if role == "exec" else None)
        assert not unknown, f"the rehearsal passes {binary} flags it does not have: {sorted(unknown)}"


def test_the_image_holds_every_binary_the_package_builds():
    package = open(os.path.join(ROOT, "Package.swift")).read()
    products = set(re.findall(r'\.executable\(\s*name:\s*"([^"]+)"', package))
    assert {"accord", "accord-scheduler", "accord-gateway", "accord-executor", "accord-runner"} <= products
    recipe = open(os.path.join(ROOT, "deploy", "container", "Containerfile")).read()
    ignore = open(os.path.join(ROOT, "deploy", "container", "Containerfile.dockerignore")).read()
    for product in products:
        assert f".build/release/{product} " in recipe or f".build/release/{product}\n" in recipe, product
        assert f"!.build/release/{product}\n" in ignore, product


def test_each_pod_mounts_its_own_key_and_no_other():
    for d, container, spec in kubernetes_containers():
        role = container["name"]
        certs = next(v for v in spec["volumes"] if v["name"] == "certs")
        paths = {item["path"] for item in certs["secret"]["items"]}
        assert paths == {"ca.pem", f"{role}.pem", f"{role}-key.pem"}, f"{d['metadata']['name']} mounts {paths}"
