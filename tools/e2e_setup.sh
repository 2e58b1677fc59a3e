#!/bin/bash
# Prepare a Debian 12 machine for the end-to-end suite (`deno task test:e2e`).
# Idempotent: safe to run again; each step is skipped when its result exists.
#
#   1. engine packages: podman (CNI backend, runc), containerd 1.6 + ctr, reference CNI plugins,
#      golang-go + golang-github-appc-cni-dev (for cnitool), busybox-static, jq, iproute2,
#      qemu-system-x86 + linux-image-amd64 (tests/e2e/vm_test.ts boots a VM on /dev/tapN),
#      libvirt-daemon + libvirt-daemon-driver-qemu + libvirt-clients (tests/e2e/libvirt_test.ts) ...
#   2. cnitool built offline from Debian's libcni source package in GOPATH mode
#      (shared/notes/real-clients.md §4) -> $E2E_CACHE/cnitool
#   3. a busybox image made from busybox-static, no registry:
#        $E2E_CACHE/images/bb-rootfs.tar      rootfs tarball
#        $E2E_CACHE/images/bb-probe.oci.tar   OCI archive of localhost/bb:probe (CMD sh) and
#        $E2E_CACHE/images/bb-pause.oci.tar   of localhost/bb:pause (CMD sleep), for `ctr images import`
#        $E2E_CACHE/podman-images             podman image store holding both tags; the tests use it
#                                             read-only (storage.conf additionalimagestores)
#   4. $E2E_CACHE/podman/containers.conf + storage.conf templates: CNI backend, runc, cgroupfs,
#      ulimits that work without CAP_SYS_RESOURCE (real-clients.md §5). The tests write their own
#      per-test copies; these are for humans reproducing a run.
#
# Env: E2E_CACHE (default /var/cache/macvtap-e2e), E2E_SKIP_APT=1 to skip apt-get install.
# The deb-src entry needed for `apt-get source` lives only in a private apt list directory under a
# temporary directory that is removed on exit; /etc/apt is never touched.
set -euo pipefail

CACHE=${E2E_CACHE:-/var/cache/macvtap-e2e}
export DEBIAN_FRONTEND=noninteractive

log() { printf 'e2e_setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root"
  exit 1
fi

TMP=$(mktemp -d /tmp/macvtap-e2e-setup.XXXXXX)
cleanup() {
  if [ -n "${TMP:-}" ] && [ -d "$TMP" ]; then
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# 1. packages
PKGS=(
  podman runc crun conmon catatonit iptables # podman 4.3, CNI backend (no netavark: no recommends)
  containerd                                 # 1.6, includes ctr and the CRI plugin
  containernetworking-plugins                # /usr/lib/cni: macvlan (reference), host-local, loopback
  golang-go golang-github-appc-cni-dev       # cnitool from libcni sources, GOPATH mode
  golang-google-grpc-dev                     # the grpc-go kubelet stand-in (tests/kubelet_go), GOPATH mode
  busybox-static                             # the image, ping inside namespaces, the VM's initramfs
  qemu-system-x86 linux-image-amd64          # the VM test: qemu on /dev/tapN, a Debian guest kernel
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients # libvirt_test: virtqemud/libvirtd + virsh, as virt-launcher
  iproute2 util-linux jq xz-utils ca-certificates
)
missing=()
for p in "${PKGS[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ] && [ "${E2E_SKIP_APT:-0}" != 1 ]; then
  log "installing: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "packages present"
fi
mkdir -p "$CACHE" "$CACHE/images"

# ---------------------------------------------------------------------------------------------
# 2. cnitool (real-clients.md §4): Debian's libcni under /usr/share/gocode + cnitool/ from the
#    source package, GOPATH mode, no network for Go.
if [ ! -x "$CACHE/cnitool" ]; then
  log "building cnitool from Debian's golang-github-appc-cni source package"
  # Mirror URI of the installed deb entry for bookworm main (deb822 or one-line format).
  mirror=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u {print u; exit}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -z "$mirror" ]; then
    mirror=$(awk '$1=="deb" && / bookworm /{for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1 || true)
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
  # Private apt state: the deb-src entry exists only inside $TMP.
  mkdir -p "$TMP/apt/lists/partial" "$TMP/apt/cache/archives/partial" "$TMP/src"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" \
    >"$TMP/apt/sources.list"
  APT_OPTS=(
    -o "Dir::Etc::SourceList=$TMP/apt/sources.list"
    -o "Dir::Etc::SourceParts=$TMP/apt/none"
    -o "Dir::State::Lists=$TMP/apt/lists"
    -o "Dir::Cache=$TMP/apt/cache"
    -o "APT::Sandbox::User=root"
  )
  apt-get "${APT_OPTS[@]}" update -qq
  (cd "$TMP/src" && apt-get "${APT_OPTS[@]}" source --download-only -qq golang-github-appc-cni)
  origs=("$TMP"/src/golang-github-appc-cni_*.orig.tar.*)
  tar -C "$TMP/src" -xf "${origs[0]}"
  srcdirs=("$TMP"/src/*/cnitool)
  srcdir=${srcdirs[0]}
  (cd "$srcdir" && GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= \
    GOCACHE="$TMP/gocache" go build -o "$TMP/cnitool" ./cnitool.go)
  install -m 0755 "$TMP/cnitool" "$CACHE/cnitool"
  log "cnitool -> $CACHE/cnitool"
else
  log "cnitool present"
fi

# ---------------------------------------------------------------------------------------------
# 3. busybox image (real-clients.md §5 and §6), no registry pulls.
if [ ! -s "$CACHE/images/bb-rootfs.tar" ]; then
  log "building the busybox rootfs"
  r="$TMP/rootfs"
  mkdir -p "$r"/{bin,etc,proc,sys,dev,tmp,root}
  cp /bin/busybox "$r/bin/"
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"
  echo 'root:x:0:' >"$r/etc/group"
  tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$TMP/bb-rootfs.tar" .
  mv "$TMP/bb-rootfs.tar" "$CACHE/images/bb-rootfs.tar"
fi

STORE="$CACHE/podman-images"
had_var_lib_containers=0
[ -e /var/lib/containers ] && had_var_lib_containers=1
# libpod records runroot and tmpdir in its database: keep them fixed (tmpfs, recreated as needed).
pstore() {
  podman --root "$STORE" --runroot /run/macvtap-e2e/podman-images/run \
    --tmpdir /run/macvtap-e2e/podman-images/tmp --storage-driver overlay --events-backend none \
    --cgroup-manager cgroupfs "$@"
}
if ! pstore image exists localhost/bb:probe 2>/dev/null ||
  ! pstore image exists localhost/bb:pause 2>/dev/null; then
  log "importing localhost/bb:probe and localhost/bb:pause into $STORE"
  pstore import --change 'CMD ["/bin/sh"]' "$CACHE/images/bb-rootfs.tar" localhost/bb:probe >/dev/null
  pstore import --change 'CMD ["/bin/sleep","1000000"]' "$CACHE/images/bb-rootfs.tar" \
    localhost/bb:pause >/dev/null
  rm -f "$CACHE"/images/bb-*.oci.tar
fi
for tag in probe pause; do
  # One OCI archive per tag: podman 4.3 writes only the first image into an oci-archive.
  if [ ! -s "$CACHE/images/bb-$tag.oci.tar" ]; then
    log "writing $CACHE/images/bb-$tag.oci.tar"
    pstore save --format oci-archive -o "$TMP/bb-$tag.oci.tar" "localhost/bb:$tag" >/dev/null
    mv "$TMP/bb-$tag.oci.tar" "$CACHE/images/bb-$tag.oci.tar"
  fi
done
# The overlay driver bind-mounts its home onto itself; do not leave that mount behind.
umount "$STORE/overlay" 2>/dev/null || true
if [ "$had_var_lib_containers" = 0 ]; then
  # podman created /var/lib/containers/cache (blob-info cache) although --root points elsewhere.
  rm -rf /var/lib/containers
fi

# ---------------------------------------------------------------------------------------------
# 4. podman configuration templates (the tests write per-test copies with their own paths).
mkdir -p "$CACHE/podman"
cat >"$CACHE/podman/containers.conf" <<EOF
# podman 4.3 with the CNI backend on a cgroup v1 hybrid host without systemd or CAP_SYS_RESOURCE.
# Use: CONTAINERS_CONF=$CACHE/podman/containers.conf CONTAINERS_STORAGE_CONF=$CACHE/podman/storage.conf
[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "/run/macvtap-e2e/podman/events.log"
runtime = "runc"
tmp_dir = "/run/macvtap-e2e/podman/tmp"

[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = "/run/macvtap-e2e/podman/net.d"
default_subnet = "10.97.0.0/24"
EOF
cat >"$CACHE/podman/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "/run/macvtap-e2e/podman/storage"
runroot = "/run/macvtap-e2e/podman/run"

[storage.options]
additionalimagestores = ["$STORE"]
EOF

# ---------------------------------------------------------------------------------------------
# Check the result.
usage=$("$CACHE/cnitool" 2>&1 || true)
grep -q 'cnitool add' <<<"$usage" || {
  log "cnitool does not run"
  exit 1
}
for f in /usr/lib/cni/macvlan /usr/lib/cni/host-local /usr/lib/cni/loopback; do
  [ -x "$f" ] || {
    log "missing $f"
    exit 1
  }
done
log "ok: cache $CACHE ($(podman --version), $(containerd --version | awk '{print $1, $3}'), $(runc --version | head -n1))"
