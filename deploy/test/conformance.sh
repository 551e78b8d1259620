#!/usr/bin/env bash
# Starts a fresh local deployment on a free port in a temporary data folder, runs the shared
# conformance suite and then this repository's own black-box suite (tests/blackbox) against it, and
# stops everything it started, whatever happens.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
suite=${ACCORD_CONFORMANCE:-$here/../shared/conformance}
bin=${ACCORD_BIN:-$here/.build/debug}
data=$(mktemp -d /tmp/accord-conformance.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

ACCORD_DATA=$data ACCORD_PORT=$port ACCORD_BIN=$bin setsid "$here/deploy/local/accord-local" >"$data/launcher.out" 2>&1 &
launcher=$!
cleanup() {
  kill -TERM "$launcher" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- -"$launcher" 2>/dev/null
  rm -rf "$data"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
  grep -q '^ACCORD_API_KEY=' "$data/launcher.out" 2>/dev/null && break
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.1
done
url=$(sed -n 's/^ACCORD_URL=//p' "$data/launcher.out")
key=$(sed -n 's/^ACCORD_API_KEY=//p' "$data/launcher.out")
if [ -z "$url" ] || [ -z "$key" ]; then
  echo "conformance: the deployment did not start" >&2
  cat "$data/launcher.out" "$data"/logs/*.log >&2 2>/dev/null
  exit 1
fi
if [ -n "${ACCORD_DATABASE_URL:-}" ]; then
  # Said by the Scheduler itself, so a deployment that silently fell back to files is caught.
  for _ in $(seq 1 50); do grep -q "leading" "$data/logs/scheduler.log" && break; sleep 0.1; done
  grep -q "leading" "$data/logs/scheduler.log" ||
    { echo "conformance: the Scheduler is not leading on PostgreSQL" >&2; cat "$data/logs/scheduler.log" >&2; exit 1; }
  echo "conformance: the Scheduler keeps its log in PostgreSQL"
fi
echo "conformance: $suite against $url"
ACCORD_URL=$url ACCORD_API_KEY=$key python3 -m pytest -q -p no:cacheprovider "$suite"
status=$?
echo "black-box: $here/tests/blackbox against $url"
ACCORD_URL=$url ACCORD_API_KEY=$key ACCORD_CONFORMANCE=$suite python3 -m pytest -q -p no:cacheprovider "$here/tests/blackbox"
[ $? -ne 0 ] && status=1
if [ $status -ne 0 ]; then
  echo "--- component logs (tail) ---" >&2
  tail -n 40 "$data"/logs/*.log >&2
fi
exit $status
