/**
 * What every plugin command receives besides the config: the CNI
 * environment, already validated by the skel (declared once, in `cni/`),
 * and the namespace the call treats as the host.
 *
 * @module
 */

import type { CniContext } from "../cni/mod.ts";
import type { HandleOptions } from "../netlink/mod.ts";
import { statPath } from "../internal/_libc.ts";

export type { CniContext };

/** The namespace of the calling thread, which is the host unless `ctx.hostNetns` says otherwise. */
const OWN_NETNS = "/proc/thread-self/ns/net";

/** Options of a handle on the call's host namespace (`ctx.hostNetns`, else the caller's). */
export function hostHandleOptions(ctx: Pick<CniContext, "hostNetns">): HandleOptions {
  return ctx.hostNetns === undefined ? {} : { netns: ctx.hostNetns };
}

/** Path of the call's host namespace. */
export function hostNetnsPath(ctx: Pick<CniContext, "hostNetns">): string {
  return ctx.hostNetns ?? OWN_NETNS;
}

/** Inode of the call's host namespace, or `undefined` when it cannot be read. */
export function hostNetnsIno(ctx: Pick<CniContext, "hostNetns">): number | undefined {
  try {
    return statPath(hostNetnsPath(ctx)).ino;
  } catch {
    return undefined;
  }
}
