/**
 * The CNI entry: the skel (protocol, env, stdin, stdout) with the plugin's
 * commands registered. Nothing else happens here.
 *
 * @module
 */

import { runSkelMain, type SkelHandlers, type SkelRequest } from "../cni/mod.ts";
import { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus } from "../plugin/commands.ts";
import type { CniContext } from "../plugin/context.ts";
import { toCniError } from "../plugin/errors.ts";
import { mark } from "../internal/_timing.ts";

function opts(req: SkelRequest): { stdin: Uint8Array; processLogger: true } {
  return { stdin: req.stdin, processLogger: true };
}

function context(req: SkelRequest): CniContext {
  return {
    containerId: req.containerId,
    netns: req.netns,
    ifname: req.ifname,
    args: req.args,
    path: req.path,
  };
}

/** Run a handler between two timing marks (see internal/_timing.ts). */
async function marked<T>(label: string, run: () => Promise<T>): Promise<T> {
  mark("skel");
  try {
    return await run();
  } finally {
    mark(label);
  }
}

/**
 * The handlers the executable registers (the chaos suite drives them in-process too).
 * One call per process, so the config's logger becomes the process's
 * (`processLogger`): no async context to load on the start-up path.
 */
export const cniHandlers: SkelHandlers = {
  add: (req) => marked("ADD", () => cmdAdd(req.config, context(req), opts(req))),
  del: (req) => marked("DEL", () => cmdDel(req.config, context(req), opts(req))),
  check: (req) => marked("CHECK", () => cmdCheck(req.config, context(req), opts(req))),
  status: (req) => marked("STATUS", () => cmdStatus(req.config, context(req), opts(req))),
  gc: (req) => marked("GC", () => cmdGc(req.config, context(req), opts(req))),
  toCniError,
};

/** Run the CNI plugin on this process's env and stdin; exits. */
export async function runCniMain(): Promise<void> {
  await runSkelMain(cniHandlers);
}
