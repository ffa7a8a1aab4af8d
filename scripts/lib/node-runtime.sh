# Sourced by scripts/setup.sh, scripts/test and scripts/demo: makes `node` on PATH a
# supported Node (>= 22.12, package.json "engines"; CI and docs use 24). When the system's
# node is older (Debian 12 ships 18, this project's machines 20), Node 24 is installed from
# the npm registry into a project-local prefix, .node/ (the official binary and headers,
# npm package node-linux-<arch>), and put first on PATH. The system's node is not touched.
#
# After sourcing:  PATH has the chosen node first; FARMLB_NODEDIR is the directory whose
# include/node holds that node's headers (node-gyp --nodedir).
# Call farmlb_node_ensure (installs when needed, prints one line when it does).

FARMLB_NODE_MAJOR=24
FARMLB_NODE_MIN=22.12.0

# 0 when version $1 (x.y.z) >= $2.
farmlb_version_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1) == "$2" ]]; }

farmlb_node_arch() {
  case $(uname -m) in
    x86_64) echo x64 ;;
    aarch64) echo arm64 ;;
    ppc64le) echo ppc64le ;;
    s390x) echo s390x ;;
    *) return 1 ;;
  esac
}

# $1: repository root. Leaves PATH and FARMLB_NODEDIR set, installing Node 24 if needed.
farmlb_node_ensure() {
  local root=$1 local_prefix="$1/.node" sys_version="" arch pkg_dir
  if [[ -x $local_prefix/bin/node ]]; then
    export PATH="$local_prefix/bin:$PATH"
  fi
  if command -v node >/dev/null; then sys_version=$(node -p 'process.versions.node' 2>/dev/null || true); fi
  if [[ -n $sys_version ]] && farmlb_version_ge "$sys_version" "$FARMLB_NODE_MIN"; then
    farmlb_node_set_nodedir
    return 0
  fi
  arch=$(farmlb_node_arch) || { echo "setup: no Node $FARMLB_NODE_MAJOR package for $(uname -m); install Node >= $FARMLB_NODE_MIN yourself" >&2; return 1; }
  command -v npm >/dev/null || { echo "setup: node ${sys_version:-missing} is older than $FARMLB_NODE_MIN and npm is missing to fetch Node $FARMLB_NODE_MAJOR; install npm (apt-get install npm)" >&2; return 1; }
  echo "setup: node ${sys_version:-missing} is older than $FARMLB_NODE_MIN: installing Node $FARMLB_NODE_MAJOR into $local_prefix (npm package node-linux-$arch)"
  mkdir -p "$local_prefix"
  # --ignore-scripts: the package is the plain binary, nothing to run. A prefix of its own,
  # so the project's package.json and lock file are not involved.
  npm install --prefix "$local_prefix" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
    --loglevel=error "node-linux-$arch@$FARMLB_NODE_MAJOR" >/dev/null \
    || { echo "setup: npm install node-linux-$arch@$FARMLB_NODE_MAJOR failed" >&2; return 1; }
  pkg_dir="$local_prefix/node_modules/node-linux-$arch"
  [[ -x $pkg_dir/bin/node ]] || { echo "setup: $pkg_dir/bin/node missing after install" >&2; return 1; }
  mkdir -p "$local_prefix/bin"
  ln -sfn "../node_modules/node-linux-$arch/bin/node" "$local_prefix/bin/node"
  export PATH="$local_prefix/bin:$PATH"
  hash -r
  farmlb_node_set_nodedir
}

# Headers of the node on PATH: the official package ships include/node next to bin/;
# Debian's nodejs has them in /usr/include/node.
farmlb_node_set_nodedir() {
  local bin
  bin=$(readlink -f "$(command -v node)")
  if [[ -d ${bin%/bin/node}/include/node ]]; then
    FARMLB_NODEDIR=${bin%/bin/node}
  elif [[ -d /usr/include/node ]]; then
    FARMLB_NODEDIR=/usr
  else
    FARMLB_NODEDIR=""
  fi
  export FARMLB_NODEDIR
}

# Without installing: put an already installed project-local node first (scripts/test,
# scripts/demo after scripts/setup.sh ran).
farmlb_node_path() {
  [[ -x $1/.node/bin/node ]] && export PATH="$1/.node/bin:$PATH"
  farmlb_node_set_nodedir
}
