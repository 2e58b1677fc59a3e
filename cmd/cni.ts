/**
 * The CNI entry: the skel (protocol, env, stdin, stdout) with the plugin's
 * commands registered. Nothing else happens here.
 *
 * @module
 */

import { runSkelMain, type SkelRequest } from "../cni/mod.ts";
import { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus } from "../plugin/commands.ts";
import { toCniError } from "../plugin/errors.ts";
import type { CniContext } from "../plugin/context.ts";

function context(req: SkelRequest): CniContext {
  return {
    containerId: req.containerId,
    netns: req.netns,
    ifname: req.ifname,
    args: req.args,
    path: req.path,
  };
}

/** Run the CNI plugin on this process's env and stdin; exits. */
export async function runCniMain(): Promise<void> {
  await runSkelMain({
    add: (req) => cmdAdd(req.config, context(req), { stdin: req.stdin }),
    del: (req) => cmdDel(req.config, context(req), { stdin: req.stdin }),
    check: (req) => cmdCheck(req.config, context(req), { stdin: req.stdin }),
    status: (req) => cmdStatus(req.config, context(req), { stdin: req.stdin }),
    gc: (req) => cmdGc(req.config, context(req), { stdin: req.stdin }),
    toCniError,
  });
}
