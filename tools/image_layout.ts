/**
 * What the container image holds and where, shared by the image build
 * (`tools/image.ts`), the manifest checks (`tests/deploy_test.ts`) and the
 * DaemonSet end-to-end test (`tests/e2e/daemonset_test.ts`).
 *
 * Besides these files the image holds only the shared libraries the Deno
 * binary and the netlink module need (found with `ldd` at build time, at the
 * paths the loader searches), an empty `/tmp` and the mount points `/host`,
 * `/var/lib/kubelet/device-plugins`.
 *
 * @module
 */

import { VERSION } from "../cmd/version.ts";

/** Image name (local: nothing is pushed anywhere). */
export const IMAGE_NAME = "localhost/macvtap";

/** The reference the manifests use: `localhost/macvtap:<version>`. */
export const IMAGE_REF = `${IMAGE_NAME}:${VERSION}`;

/** The Deno release the image carries (and `tools/setup.sh` pins). */
export const DENO_VERSION = "2.9.6";

/** Where the install step puts Deno on the node; the node's launcher names it. */
export const NODE_DENO = "/opt/cni/bin/.deno/deno";

/** The launcher's `DENO_DIR` on the node (made 0755 root by the install step). */
export const NODE_DENO_DIR = "/var/cache/macvtap/deno";

/**
 * The libmnl the node's CNI plugin loads (the launcher sets `MACVTAP_LIBMNL`
 * to it): the image's copy, installed beside the node's Deno, so the node
 * needs nothing but a glibc new enough for Deno.
 */
export const NODE_LIBMNL = "/opt/cni/bin/.deno/libmnl.so.0";

/**
 * The oldest glibc the node-side Deno runs on: the newest `GLIBC_x.y`
 * symbol version Deno 2.9.6 needs (`objdump -T deno`; the image build
 * checks it). The install step refuses an older node with this figure.
 */
export const MIN_GLIBC = "2.27";

/** Executables in the image. */
export const IMAGE_EXECUTABLES = {
  deno: "/usr/local/bin/deno",
  /** The CNI plugin; its launcher line names {@linkcode NODE_DENO}: it runs on the node. */
  macvtap: "/usr/local/bin/macvtap",
  /** The device plugin; the container's command runs it with Deno directly. */
  deviceplugin: "/usr/local/bin/macvtap-deviceplugin",
  busybox: "/bin/busybox",
} as const;

/** libmnl at a fixed path in the image, for the install step to copy (the loader's copy is elsewhere). */
export const IMAGE_LIBMNL = "/usr/local/lib/macvtap/libmnl.so.0";

/**
 * busybox applets linked as `/bin/<name>`: the shell and the commands the
 * install step, the uninstall step and the probes run, nothing else.
 */
export const BUSYBOX_APPLETS: readonly string[] = Object.freeze([
  "sh",
  "basename",
  "chmod",
  "chroot",
  "cmp",
  "cp",
  "date",
  "dirname",
  "find",
  "head",
  "mkdir",
  "mv",
  "rm",
  "sed",
  "sleep",
  "stat",
  "sync",
]);

/** Shell built-ins the install script may use without an applet. */
export const SHELL_BUILTINS: readonly string[] = Object.freeze([
  "echo",
  "return",
  "set",
  "local",
  "if",
  "then",
  "fi",
  "exit",
  "true",
  "false",
  "printf",
  "test",
  "[",
  "read",
  "exec",
]);

/** Directories created empty in the image (mount points and scratch). */
export const IMAGE_DIRS: readonly string[] = Object.freeze([
  "/tmp",
  "/host",
  "/host/opt/cni/bin",
  "/host/root",
  "/host/var/cache",
  "/host/var/cache/macvtap",
  "/host/var/lib/cni",
  "/etc/macvtap",
  "/run/netns",
  "/var/lib/kubelet/device-plugins",
]);

/** Every executable path in the image: the binaries and the applet links. */
export function imageCommands(): string[] {
  return [
    ...Object.values(IMAGE_EXECUTABLES),
    ...BUSYBOX_APPLETS.map((a) => `/bin/${a}`),
  ];
}
