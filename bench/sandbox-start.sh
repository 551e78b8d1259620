#!/usr/bin/env bash
# What a sandbox costs per runner start: 100 starts of /bin/true each way, as root.
#   bash bench/sandbox-start.sh
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root (the sandbox needs it)" >&2; exit 1; }
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
chown 65534:65534 "$home"
drop=(/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --ambient-caps=-all
  --bounding-set=-all --no-new-privs --)
time100() {
  local label=$1
  shift
  local start end
  start=$(date +%s%N)
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  awk -v l="$label" -v ns=$((end - start)) 'BEGIN { printf "%-58s %6.2f ms a start\n", l, ns / 100 / 1e6 }'
}
time100 "/bin/true" /bin/true
time100 "setpriv to the sandbox user" "${drop[@]}" /bin/true
time100 "unshare (kernel calls: pid, ipc, uts, mount) + setpriv" \
  /usr/bin/unshare --pid --fork --ipc --uts --mount --mount-proc -- "${drop[@]}" /bin/true
time100 "bubblewrap, Accord's layout + setpriv" \
  /usr/bin/bwrap --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try --die-with-parent \
  --ro-bind /usr /usr --ro-bind /etc /etc --symlink usr/bin /bin --symlink usr/sbin /sbin \
  --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev --perms 1777 --tmpfs /tmp \
  --bind "$home" "$home" --chdir "$home" --clearenv -- "${drop[@]}" /bin/true
