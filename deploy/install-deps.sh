#!/usr/bin/env bash
# Installs what Accord needs from Debian (and PyPI for the test suite) when it is missing.
# As root it installs; otherwise it prints the exact command to run and fails.
set -euo pipefail
need=()
# bubblewrap (and util-linux's setpriv, always present) sandbox every instance.
packages=(libnng-dev libyaml-dev zlib1g-dev libsqlite3-dev bubblewrap)
# Release builds link the Swift runtime statically (--static-swift-stdlib: a runner starts in half the
# time); Foundation's networking then links libcurl, which needs its development package.
[ "${1:-}" = "--release" ] && packages+=(libcurl4-openssl-dev)
# The test suite runs the PostgreSQL event log against a throwaway server (deploy/test/throwaway-postgres),
# and the multi-host rehearsal (deploy/cluster/accord-cluster) makes its hosts with iproute2.
# The web console is tested in a real browser: headless Chromium and its driver.
[ "${1:-}" = "--test" ] && packages+=(postgresql iproute2 chromium chromium-driver)
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${1:-}" = "--test" ]; then
  # schemathesis and openapi-spec-validator check the OpenAPI document; selenium drives the console.
  python3 -c 'import pytest, requests, yaml, schemathesis, openapi_spec_validator, selenium' 2>/dev/null || pip_need=1
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${need[*]}"
    # Debian's PostgreSQL package would create and start a cluster of its own; tests start theirs.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/accord-no-main-cluster.conf
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing system packages; run:  sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
if [ "${pip_need:-0}" = 1 ]; then
  python3 -m pip install -q pytest requests pyyaml schemathesis openapi-spec-validator selenium
fi
