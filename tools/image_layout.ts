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

/** The launcher's `DENO_DIR` on the node. */
export const NODE_DENO_DIR = "/var/cache/macvtap/deno";

/** Executables in the image. */
export const IMAGE_EXECUTABLES = {
  deno: "/usr/local/bin/deno",
  macvtap: "/usr/local/bin/macvtap",
  busybox: "/bin/busybox",
} as const;

/**
 * busybox applets linked as `/bin/<name>`: the install step's shell and the
 * commands its script runs, nothing else.
 */
export const BUSYBOX_APPLETS: readonly string[] = Object.freeze([
  "sh",
  "basename",
  "chmod",
  "cmp",
  "cp",
  "cut",
  "dirname",
  "expr",
  "head",
  "mkdir",
  "mv",
  "rm",
  "sync",
  "tail",
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
]);

/** Directories created empty in the image (mount points and scratch). */
export const IMAGE_DIRS: readonly string[] = Object.freeze([
  "/tmp",
  "/host",
  "/var/lib/kubelet/device-plugins",
]);

/** Every executable path in the image: the binaries and the applet links. */
export function imageCommands(): string[] {
  return [
    ...Object.values(IMAGE_EXECUTABLES),
    ...BUSYBOX_APPLETS.map((a) => `/bin/${a}`),
  ];
}
