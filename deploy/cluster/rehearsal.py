"""The multi-host rehearsal (accord-cluster) driven from Python: what cluster_chaos.py,
cluster_scenarios.py and bench/failover.py share."""
import io
import json
import os
import subprocess
import sys
import zipfile

CLUSTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "accord-cluster")


class Rehearsal:
    """One rehearsal in its own folder; `run` is an accord-cluster command on it."""

    def __init__(self, directory, bin_dir=None):
        self.dir = directory
        self.env = dict(os.environ, **({"ACCORD_BIN": os.path.abspath(bin_dir)} if bin_dir else {}))

    def run(self, *argv, check=True):
        result = subprocess.run([sys.executable, CLUSTER, "--dir", self.dir, *argv], text=True, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if check and result.returncode != 0:
            raise RuntimeError(f"accord-cluster {' '.join(argv)}: {result.stderr.strip()}")
        return result

    def up(self, *argv):
        """Brings it up; returns (Gateway URLs, API key)."""
        lines = self.run("up", *argv).stdout.splitlines()
        urls = [line.split("=", 1)[1] for line in lines if line.startswith("ACCORD_URL=")]
        key = next(line.split("=", 1)[1] for line in lines if line.startswith("ACCORD_API_KEY="))
        return urls, key

    def leader(self):
        """The leading Scheduler's host, or None while none leads."""
        found = self.run("leader", check=False)
        return found.stdout.strip() if found.returncode == 0 else None

    def state(self):
        with open(os.path.join(self.dir, "cluster.json")) as f:
            return json.load(f)

    def hosts(self, kind):
        return sorted(h for h in self.state()["hosts"] if h.startswith(kind + "-"))

    def netns(self, host):
        return f"{self.state()['name']}-{host}"

    def database_url(self):
        state = self.state()
        return f"postgres://accord:{state['db_password']}@{state['hosts']['db']}:5432/accord"


def trivial_archive(text):
    """A ZIP whose flow logs `text` and ends."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("_main.json", json.dumps({"entryPoint": "main"}))
        z.writestr("processes/main.yml", f'main:\n- log: "{text}"\n')
    return buf.getvalue()
