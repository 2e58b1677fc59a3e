#!/bin/bash
# Prepare a Debian 12 machine (run as root) for the demo and the tests. Idempotent: every step is
# skipped when its result is already there, so tools/run calls it every time.
#
#   tools/setup.sh          base: the packages below + Deno 2.9.6
#   tools/setup.sh --e2e    also the container engines for `deno task test:e2e` (heavy), and
#                           tools/e2e_setup.sh when it exists (cnitool, local images)
#   tools/setup.sh --check  install nothing; report what is missing (exit 1 if anything is)
#
# Deno comes from the npm registry: `npm i --prefix /opt/deno-2.9.6 deno@2.9.6`, then
# /usr/local/bin/deno -> the platform binary in node_modules/@deno/<platform>/deno (no install
# scripts run). A deno 2.9.6 already on PATH is kept.
#
# To add a package: append it to BASE_PACKAGES (needed by `tools/run test`) or E2E_PACKAGES (only
# with --e2e), with a comment saying who needs it.
set -euo pipefail

DENO_VERSION=2.9.6
# Overridable for testing this script without touching the machine's deno.
DENO_PREFIX=${DENO_PREFIX:-/opt/deno-${DENO_VERSION}}
DENO_BIN_DIR=${DENO_BIN_DIR:-/usr/local/bin}

BASE_PACKAGES=(
  libmnl0                     # netlink/: dlopen("libmnl.so.0")
  iproute2                    # ip, ss: the test lab and its oracle
  containernetworking-plugins # /usr/lib/cni: host-local, static, dhcp, macvlan (reference)
  dnsmasq-base                # the DHCP server of the dhcp IPAM tests (tests/_dhcp.ts)
  busybox-static              # ping inside namespaces
  util-linux                  # unshare, nsenter
  procps                      # ps/pgrep for humans debugging a run
  ca-certificates             # npm over https
)
E2E_PACKAGES=(
  podman runc       # podman 4.3 with the CNI backend
  containerd        # containerd 1.6 + ctr
  golang-go         # builds cnitool
  golang-github-appc-cni-dev # libcni sources for cnitool
  busybox-static    # the container image
  strace            # tests/chaos/security_test.ts: which programs the plugin executes
  time              # deno task bench: peak RSS (/usr/bin/time %M)
)

export DEBIAN_FRONTEND=noninteractive
export PATH="${DENO_BIN_DIR}:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

E2E=0
CHECK_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --e2e) E2E=1 ;;
    --check) CHECK_ONLY=1 ;;
    -h | --help)
      sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup: unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

log() { printf 'setup: %s\n' "$*" >&2; }
die() {
  printf 'setup: error: %s\n' "$*" >&2
  exit 1
}

if ! [ -r /etc/debian_version ] || ! command -v dpkg-query >/dev/null; then
  die "this script supports Debian 12 (bookworm) only: no dpkg found"
fi
case "$(cat /etc/debian_version)" in
  12* | bookworm*) ;;
  *) log "warning: tested on Debian 12, this is Debian $(cat /etc/debian_version)" ;;
esac

# No `cmd | grep -q` / `| head` here: under pipefail, a reader that stops early
# makes the writer die of SIGPIPE and the whole test fail at random.
is_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# Whether the deno binary $1 is exactly the pinned version.
is_pinned_deno() {
  local v
  v=$("$1" --version 2>/dev/null) || return 1
  [[ "${v%%$'\n'*}" == "deno ${DENO_VERSION} "* ]]
}

deno_ok() {
  # A deno on PATH that is exactly the pinned version.
  command -v deno >/dev/null 2>&1 && is_pinned_deno deno
}

deno_platform() {
  case "$(uname -m)" in
    x86_64 | amd64) echo linux-x64-glibc ;;
    aarch64 | arm64) echo linux-arm64-glibc ;;
    *) return 1 ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# 1. packages
wanted=("${BASE_PACKAGES[@]}")
if [ "$E2E" = 1 ]; then
  wanted+=("${E2E_PACKAGES[@]}")
fi
need_npm=0
if ! deno_ok && ! { command -v npm >/dev/null && command -v node >/dev/null; }; then
  # Deno is installed from the npm registry, so npm is needed once.
  need_npm=1
  wanted+=(nodejs npm)
fi

missing=()
declare -A seen=()
for p in "${wanted[@]}"; do
  if [ -z "${seen[$p]:-}" ]; then
    seen[$p]=1
    is_installed "$p" || missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$CHECK_ONLY" = 1 ]; then
    log "missing Debian packages: ${missing[*]}"
  elif [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages: ${missing[*]}; run as root (or: apt-get install -y ${missing[*]})"
  else
    log "installing: ${missing[*]}"
    apt-get update -qq || die "apt-get update failed; packages still missing: ${missing[*]}"
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
      still=()
      for p in "${missing[@]}"; do is_installed "$p" || still+=("$p"); done
      die "apt-get install failed; still missing: ${still[*]}"
    fi
  fi
else
  log "packages present: ${wanted[*]}"
fi

# ---------------------------------------------------------------------------------------------
# 2. Deno
if deno_ok; then
  log "deno ${DENO_VERSION} present: $(command -v deno)"
elif [ "$CHECK_ONLY" = 1 ]; then
  log "missing: deno ${DENO_VERSION} on PATH"
  missing+=("deno-${DENO_VERSION}")
else
  platform=$(deno_platform) || die "no Deno npm package for $(uname -m); install deno ${DENO_VERSION} by hand"
  bin="${DENO_PREFIX}/node_modules/@deno/${platform}/deno"
  if ! [ -x "$bin" ] || ! is_pinned_deno "$bin"; then
    gaps=()
    command -v node >/dev/null || gaps+=("node (Debian package nodejs)")
    command -v npm >/dev/null || gaps+=("npm (Debian package npm)")
    if [ "${#gaps[@]}" -gt 0 ]; then
      die "cannot install Deno ${DENO_VERSION} from the npm registry: missing ${gaps[*]}"
    fi
    [ "$(id -u)" -eq 0 ] || die "deno ${DENO_VERSION} is missing; run as root to install it into ${DENO_PREFIX}"
    log "installing deno@${DENO_VERSION} from the npm registry into ${DENO_PREFIX}"
    mkdir -p "$DENO_PREFIX"
    # --ignore-scripts: the postinstall only copies the platform binary, which we link directly.
    npm install --prefix "$DENO_PREFIX" --ignore-scripts --no-audit --no-fund --loglevel=error \
      "deno@${DENO_VERSION}" >&2 ||
      die "npm install deno@${DENO_VERSION} failed (is the npm registry $(npm config get registry 2>/dev/null) reachable?)"
    [ -x "$bin" ] || die "npm installed deno@${DENO_VERSION} but ${bin} is missing (optional dependency @deno/${platform} skipped?)"
    is_pinned_deno "$bin" ||
      die "${bin} does not report deno ${DENO_VERSION}: $("$bin" --version 2>&1)"
  fi
  mkdir -p "$DENO_BIN_DIR"
  ln -sfn "$bin" "${DENO_BIN_DIR}/deno"
  hash -r
  deno_ok || die "${DENO_BIN_DIR}/deno -> ${bin} is set up, but 'deno' on PATH is $(command -v deno) ($(deno --version 2>&1 | head -n1)); put ${DENO_BIN_DIR} first in PATH"
  log "deno ${DENO_VERSION}: ${DENO_BIN_DIR}/deno -> ${bin}"
fi
if [ "$need_npm" = 1 ] && [ "$CHECK_ONLY" = 0 ]; then
  log "note: nodejs and npm were installed only to fetch Deno; they may be removed"
fi

# ---------------------------------------------------------------------------------------------
# 3. what the tests use, checked (never silently skipped)
problems=()
for tool in ip ss dnsmasq busybox unshare; do
  command -v "$tool" >/dev/null || problems+=("$tool")
done
for plugin in host-local static dhcp macvlan; do
  [ -x "/usr/lib/cni/$plugin" ] || problems+=("/usr/lib/cni/$plugin")
done
if ! [[ "$(ldconfig -p 2>/dev/null)" == *"libmnl.so.0 "* ]]; then
  problems+=("libmnl.so.0")
fi
if [ "${#problems[@]}" -gt 0 ]; then
  if [ "$CHECK_ONLY" = 1 ]; then
    log "missing: ${problems[*]}"
    exit 1
  fi
  die "still missing after installation: ${problems[*]}"
fi
if [ "$CHECK_ONLY" = 1 ] && [ "${#missing[@]}" -gt 0 ]; then
  exit 1
fi

# ---------------------------------------------------------------------------------------------
# 4. e2e extras (cnitool, images) from their own script
if [ "$E2E" = 1 ] && [ "$CHECK_ONLY" = 0 ]; then
  e2e_setup="$(cd "$(dirname "$0")" && pwd)/e2e_setup.sh"
  if [ -f "$e2e_setup" ]; then
    log "running ${e2e_setup}"
    bash "$e2e_setup" || die "${e2e_setup} failed"
  else
    log "no tools/e2e_setup.sh: engine packages only"
  fi
fi

log "ready"
