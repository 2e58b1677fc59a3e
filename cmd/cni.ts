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

function context(req: SkelRequest): CniContext {
  return {
    containerId: req.containerId,
    netns: req.netns,
    ifname: req.ifname,
    args: req.args,
    path: req.path,
  };
}

/**
 * The handlers the executable registers (the chaos suite drives them in-process too).
 * One call per process, so the config's logger becomes the process's
 * (`processLogger`): no async context to load on the start-up path.
 */
export const cniHandlers: SkelHandlers = {
  add: (req) => cmdAdd(req.config, context(req), { stdin: req.stdin, processLogger: true }),
  del: (req) => cmdDel(req.config, context(req), { stdin: req.stdin, processLogger: true }),
  check: (req) => cmdCheck(req.config, context(req), { stdin: req.stdin, processLogger: true }),
  status: (req) => cmdStatus(req.config, context(req), { stdin: req.stdin, processLogger: true }),
  gc: (req) => cmdGc(req.config, context(req), { stdin: req.stdin, processLogger: true }),
  toCniError,
};

/** Run the CNI plugin on this process's env and stdin; exits. */
export async function runCniMain(): Promise<void> {
  await runSkelMain(cniHandlers);
}
