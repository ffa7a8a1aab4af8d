#!/usr/bin/env bash
# Prepare this machine to run and test farmlb: Debian packages, bpffs, npm deps, the
# native addon, the BPF objects and the TypeScript build. Idempotent: a second run does
# nothing it does not have to and prints nothing unless something changes.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/setup.sh [--help]

Prepares a development or test machine (Debian 12, run as root): the Debian packages
of the build toolchain and of the lab tests and demo, Node 24 when the system's node is
older than 22.12 (from the npm registry into .node/, the system's node is not replaced),
bpffs at /sys/fs/bpf, npm dependencies (npm ci), the native addon (node-gyp against the
headers of that node), the BPF objects (bpf/build/) and the TypeScript build (dist/).

A production node needs none of the toolchain: see README.md ("Install on a node").
USAGE
}

die() { echo "setup: $*" >&2; exit 1; }
say() { echo "setup: $*"; }

[[ "${1:-}" == "--help" || "${1:-}" == "-h" ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

# Debian packages, one a line so that additions merge cleanly.
# What a production node needs at run time (README.md "Install on a node"):
runtime_packages=(
  libbpf1
  libelf1
  zlib1g
  iproute2
)
# What `<farmlb membership="corosync">` needs at run time (loaded only by that backend;
# docs/membership.md "Corosync"): the engine itself, and for a two-node farm's witness
# corosync-qdevice on the nodes (corosync-qnetd on the third host, lab_packages below).
corosync_runtime_packages=(
  corosync
  libcpg4
  libquorum5
  libvotequorum8
  libcmap4
  corosync-qdevice
)
# What building the addon and the BPF objects needs:
build_packages=(
  clang
  llvm
  libbpf-dev
  libelf-dev
  zlib1g-dev
  bpftool
  make
  g++
  python3
  pkg-config
  libcpg-dev
  libquorum-dev
  libvotequorum-dev
  libcmap-dev
)
# What the tests and scripts/demo use (real tools, real clients; prometheus for promtool,
# which checks docs/farmlb-alerts.yml; systemd for systemd-analyze, which checks the unit;
# man-db for man, which checks the generated farmlb(1)):
lab_packages=(
  nftables
  iputils-ping
  iputils-arping
  tcpdump
  netsniff-ng
  ethtool
  netcat-openbsd
  curl
  util-linux
  procps
  keepalived
  jq
  man-db
  prometheus
  systemd
  corosync-qnetd
)
packages=("${runtime_packages[@]}" "${corosync_runtime_packages[@]}" "${build_packages[@]}" "${lab_packages[@]}")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || die "missing packages (${missing[*]}); run as root to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install failed"
fi

# Node: a supported major first on PATH (scripts/lib/node-runtime.sh).
# shellcheck source=lib/node-runtime.sh
. "$here/scripts/lib/node-runtime.sh"
farmlb_node_ensure "$here" || die "no supported Node"
[[ -n $FARMLB_NODEDIR ]] || die "headers of node $(node --version) not found (include/node next to its bin/, or /usr/include/node)"

# bpffs: maps are pinned under /sys/fs/bpf/farmlb/<module>/.
if [[ $(id -u) -eq 0 ]] && ! mountpoint -q /sys/fs/bpf; then
  say "mounting bpffs at /sys/fs/bpf"
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs at /sys/fs/bpf"
fi

# npm deps: only when the lock file changed since the last install. An installed package
# (npm pack / npm install -g) has no lock file: npm installed its dependencies already.
stamp=node_modules/.farmlb-lock-stamp
if [[ ! -f package-lock.json ]]; then
  [[ -d node_modules/node-addon-api ]] || {
    say "installing npm dependencies"
    npm install --omit=dev --no-audit --no-fund --loglevel=error >/dev/null || die "npm install failed"
  }
elif [[ ! -f $stamp ]] || ! cmp -s package-lock.json "$stamp"; then
  say "installing npm dependencies"
  # --ignore-scripts: the addon is built below, against the right headers.
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci failed"
  cp package-lock.json "$stamp"
fi

# The addon: rebuilt when a source or the ABI header is newer than the binary.
addon=build/Release/farmlb_native.node
if [[ ! -f $addon ]] || [[ -n $(find native binding.gyp bpf/farmlb_abi.h -newer "$addon" 2>/dev/null | head -1) ]] \
  || ! cmp -s <(echo "$FARMLB_NODEDIR") build/.farmlb-nodedir 2>/dev/null; then
  say "building the native addon"
  # npm's bundled node-gyp (npm puts it on PATH for scripts); npx would try to download one.
  # --nodedir: the headers of the node that runs farmlb (N-API: any major >= the one built
  # against loads it), never a download.
  npm run --silent build:native -- --nodedir="$FARMLB_NODEDIR" --loglevel=error >/tmp/farmlb-node-gyp.log 2>&1 \
    || { cat /tmp/farmlb-node-gyp.log >&2; die "addon build failed"; }
  echo "$FARMLB_NODEDIR" >build/.farmlb-nodedir
fi

# BPF objects: make is incremental and quiet.
make -s -C bpf || die "BPF build failed"

# TypeScript: rebuilt when a source is newer than the output.
if [[ ! -f dist/cli/main.js ]] || [[ -n $(find src tsconfig.json tsconfig.build.json -newer dist/cli/main.js 2>/dev/null | head -1) ]]; then
  say "compiling TypeScript"
  npx --no-install tsc -p tsconfig.build.json || die "TypeScript build failed"
  touch dist/cli/main.js
fi
