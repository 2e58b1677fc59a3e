/**
 * Allocate: the macvtap behind a device ID, and its `/dev/tapN` node.
 *
 * The macvtap is named `deviceIfname(id)` (the rule the CNI's `deviceID`
 * import uses) and created **down** in the host namespace with a chosen
 * ifindex derived from the ID: high enough never to collide with the few
 * links of a pod namespace, so the CNI's move with `IFLA_NEW_IFINDEX` keeps
 * it and `/dev/tap<ifindex>` stays valid.
 *
 * @module
 */

import { deviceIfname, tapIndexCandidates } from "../internal/_ifname.ts";
import { UndoStack } from "../internal/_undo.ts";
import { isErrno } from "../netlink/mod.ts";
import type { ResourceConfig } from "./config.ts";
import type { LinkBackend } from "./links.ts";
import { errorText } from "../internal/_error_text.ts";

export { TAP_INDEX_BASE, TAP_INDEX_SPAN, tapIndexFor } from "../internal/_ifname.ts";

/** What an allocated device is. */
export interface AllocatedDevice {
  id: string;
  /** Host interface name, `deviceIfname(id)`. */
  ifname: string;
  /** Its ifindex (also the N of `/dev/tapN`). */
  index: number;
  /** `<devDir>/tap<index>`. */
  tapPath: string;
  /** `major:minor` of the char device. */
  devNumber: string;
}

/** Allocate failed for a reason kubelet should see (gRPC status name). */
export class AllocateError extends Error {
  readonly status:
    | "CANCELLED"
    | "NOT_FOUND"
    | "INVALID_ARGUMENT"
    | "RESOURCE_EXHAUSTED"
    | "FAILED_PRECONDITION"
    | "INTERNAL";
  constructor(
    status: AllocateError["status"],
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "AllocateError";
    this.status = status;
  }
}

/** File-system access for the `/dev/tapN` node, injectable for tests. */
export interface TapNodeFs {
  /** `major:minor` from `/sys/class/net/<ifname>/macvtap/tap<index>/dev`. */
  readDevNumber(ifname: string, index: number): string;
  /** `rdev` of a char device at `path`, `undefined` when missing, `null` when not a char device. */
  charDev(path: string): number | null | undefined;
  /** Whether a registered device has the number `dev` (in any namespace). */
  isLive(dev: number): boolean;
  remove(path: string): void;
  /** `mknod(path, S_IFCHR | 0600, makedev(major, minor))`. */
  mknod(path: string, major: number, minor: number): void;
}

/** Options of {@linkcode allocateDevice}. */
export interface AllocateOptions {
  /** The host's links. */
  backend: LinkBackend;
  /** sysfs and `/dev` access. */
  fs: TapNodeFs;
  /** Where `tapN` nodes live (default `/dev`). */
  devDir?: string;
  /**
   * Where to push the undo steps (a caller allocating several devices undoes
   * them all if a later one fails). Without it, a failure undoes this
   * device's steps and a success keeps them.
   */
  undo?: UndoStack;
}

export { makedev, splitDev } from "../internal/_tap_node.ts";
import { makedev, splitDev } from "../internal/_tap_node.ts";

/**
 * Create the macvtap of device `id` on the resource's lower device (or keep
 * the one that is already exactly that, unused), and make sure its
 * `/dev/tapN` exists with the right major:minor.
 *
 * @throws {AllocateError} `FAILED_PRECONDITION` when the lower device is
 *   missing, `INTERNAL` when the kernel refuses.
 */
export function allocateDevice(
  resource: ResourceConfig,
  id: string,
  options: AllocateOptions,
): AllocatedDevice {
  const { backend } = options;
  const ifname = deviceIfname(id);
  const lower = backend.find(resource.lowerDevice);
  if (!lower) {
    throw new AllocateError(
      "FAILED_PRECONDITION",
      `Cannot allocate "${id}": lower device "${resource.lowerDevice}" does not exist`,
    );
  }
  using own = new UndoStack();
  const undo = options.undo ?? own;
  const candidates = tapIndexCandidates(id);
  // A link of this name that is already what Allocate would create (an
  // Allocate retried, a sandbox that never reached CNI ADD) is kept: down,
  // on this lower device, in this mode, at an index of the rule. Deleting
  // it costs the kernel ~30 ms (RCU); anything else is stale and replaced.
  const existing = backend.find(ifname);
  const reusable = existing !== undefined && existing.kind === "macvtap" && !existing.up &&
    existing.parentIndex === lower.index &&
    // A bridge device the MAC guard set private (its VM lives elsewhere) is still the one.
    (existing.mode === resource.mode ||
      (resource.mode === "bridge" && existing.mode === "private")) &&
    candidates.includes(existing.index);
  let index = reusable ? existing.index : 0;
  const devDir = options.devDir ?? "/dev";
  if (!reusable && existing) {
    removeNodeOf(options.fs, existing, devDir);
    backend.delete(ifname);
  }
  // /dev is the node's, ifindexes are per namespace: an index whose /dev/tapN
  // is a live device's (another pod's imported tap) is never taken, or the
  // node would be replaced under that pod's VM.
  const free = reusable ? [] : candidates.filter((c) => {
    const node = options.fs.charDev(`${devDir}/tap${c}`);
    return node === undefined || node === null || !options.fs.isLive(node);
  });
  if (!reusable && free.length === 0) {
    throw new AllocateError(
      "INTERNAL",
      `Cannot allocate "${id}": every /dev/tapN of its index rule (${
        candidates[0]
      } on) is a live device's`,
    );
  }
  for (const [probe, candidate] of free.entries()) {
    try {
      backend.addMacvtap({
        name: ifname,
        parent: lower.index,
        mode: resource.mode,
        index: candidate,
        ...(lower.txQueueLen ? { txQueueLen: lower.txQueueLen } : {}),
      });
      index = candidate;
      break;
    } catch (err) {
      // A taken index: the kernel finds the link by ifi_index and answers
      // EEXIST (while no link has our name); EBUSY on older kernels, which is
      // also a lower that is a bridge/bond port (stop probing then).
      const indexTaken = isErrno(err, "EEXIST")
        ? !backend.find(ifname)
        : isErrno(err, "EBUSY") && !backend.find(resource.lowerDevice)?.masterIndex;
      if (indexTaken && probe + 1 < free.length) continue;
      throw new AllocateError(
        "INTERNAL",
        `Cannot create macvtap "${ifname}" on "${resource.lowerDevice}" for "${id}": ${
          errorText(err)
        }`,
        { cause: err },
      );
    }
  }
  if (!reusable) undo.push(`delete ${ifname}`, () => backend.delete(ifname));

  const tapPath = `${devDir}/tap${index}`;
  let devNumber: string;
  try {
    devNumber = ensureTapNode(options.fs, { ifname, index, tapPath }, undo);
  } catch (err) {
    throw new AllocateError(
      "INTERNAL",
      `Cannot provide ${tapPath} for "${ifname}": ${errorText(err)}`,
      { cause: err },
    );
  }
  own.disarm();
  return { id, ifname, index, tapPath, devNumber };
}

/**
 * Remove the `/dev/tapN` of a stale link before the link goes: a node made
 * with mknod would stay, and once the link is gone its minor is the next
 * macvtap's, anywhere on the node. Only a node whose major:minor is this
 * link's (sysfs of the plugin's own namespace) is removed.
 */
function removeNodeOf(fs: TapNodeFs, link: { name: string; index: number }, devDir: string): void {
  const path = `${devDir}/tap${link.index}`;
  let own: number;
  try {
    const m = /^(\d+):(\d+)$/.exec(fs.readDevNumber(link.name, link.index));
    if (!m) return;
    own = makedev(Number(m[1]), Number(m[2]));
  } catch {
    return; // not a macvtap, or no tap in sysfs: no node of its own
  }
  if (fs.charDev(path) !== own) return;
  try {
    fs.remove(path);
  } catch (err) {
    throw new AllocateError(
      "INTERNAL",
      `Cannot remove ${path} of the stale "${link.name}" before replacing it: ${errorText(err)}`,
      { cause: err },
    );
  }
}

/**
 * Make `tapPath` the char device of macvtap `ifname`: keep a correct node,
 * replace a wrong one, create a missing one (a `/dev` that is not the host's
 * devtmpfs, e.g. KinD nodes). Returns `major:minor`. With `undo`, the steps
 * that put back what was there are pushed on it: the node made is removed
 * (if it is still ours) and a replaced char device is made again.
 */
export function ensureTapNode(
  fs: TapNodeFs,
  tap: { ifname: string; index: number; tapPath: string },
  undo?: UndoStack,
): string {
  const { ifname, index, tapPath } = tap;
  const devNumber = fs.readDevNumber(ifname, index);
  const m = /^(\d+):(\d+)$/.exec(devNumber);
  if (!m) throw new Error(`unexpected sysfs dev value "${devNumber}"`);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  const ours = makedev(major, minor);
  const current = fs.charDev(tapPath);
  if (current === ours) return devNumber;
  if (current !== undefined && current !== null && fs.isLive(current)) {
    const [oldMajor, oldMinor] = splitDev(current);
    throw new Error(
      `${tapPath} is the node of live device ${oldMajor}:${oldMinor}, not replacing it`,
    );
  }
  if (current !== undefined) {
    fs.remove(tapPath);
    if (current !== null) {
      const [oldMajor, oldMinor] = splitDev(current);
      undo?.push(`restore ${tapPath} (${oldMajor}:${oldMinor})`, () => {
        if (fs.charDev(tapPath) === undefined) fs.mknod(tapPath, oldMajor, oldMinor);
      });
    }
  }
  fs.mknod(tapPath, major, minor);
  undo?.push(`remove ${tapPath}`, () => {
    if (fs.charDev(tapPath) === ours) fs.remove(tapPath);
  });
  return devNumber;
}
