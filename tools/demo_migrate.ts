/**
 * `deno task demo:migrate`: live migration on macvtap without a black hole
 * (issue 23, kubevirt/kubevirt#5912), told to a person with the figures.
 *
 * Two nodes on a bridge "switch" with a LAN peer; on each node
 * `macvtap deviceplugin` (with its kubelet stand-in) and a client pod on a
 * bridge-mode macvtap of the node's NIC. A real VM (qemu as 107:107 on the
 * device plugin's `/dev/tapN`, imported by the CNI's `deviceID` with the
 * VM's MAC) boots on A. The clients and the peer ping it every 20 ms and keep
 * a TCP stream to it. A target is prepared on B, the VM migrates A→B (the
 * source pod stays 10 s), then B→A, then an A→B is cancelled.
 *
 * The story runs twice: first without the MAC guard, to show the black
 * holes, then with it. Needs root and `tools/e2e_setup.sh` (qemu-system-x86,
 * linux-image-amd64, busybox-static). Exit status 0 when every check passed.
 *
 * @module
 */

import { Lab, pluginBuilt } from "../lab/mod.ts";
import { vmMissing } from "../lab/vm.ts";
import { formatReport, runScenario, type ScenarioReport, VM_IP, VM_MAC } from "../lab/migration.ts";
import { check, dim, red, say, section, tell } from "./_story.ts";

/** Longest ping gap of `client` in the first phase whose name starts with `phase`. */
function gap(r: ScenarioReport, client: string, phase: string): number {
  const per = r.pings[client] ?? {};
  const key = Object.keys(per).find((k) => k.startsWith(phase));
  return key ? per[key]!.maxGapMs : NaN;
}

async function scenario(guard: boolean, holdMs: number): Promise<ScenarioReport> {
  await using lab = await Lab.create({ prefix: "demomig" });
  return await runScenario(lab, {
    guard,
    holdMs,
    prepareMs: 1500,
    sourceQemu: "exited",
    log: (line) => say(dim(`  ${line}`)),
  });
}

async function demo(): Promise<void> {
  section("The lab");
  say(`  switch: a Linux bridge with the LAN peer; nodes A and B: a veth each as their NIC`);
  say(
    `  on each node: macvtap deviceplugin + kubelet stand-in, a client pod (bridge-mode macvtap)`,
  );
  say(`  the VM: ${VM_IP}, MAC ${VM_MAC} on both nodes (as KubeVirt passes it), qemu as 107:107`);
  say(`  three clients (client on A, client on B, LAN peer) ping it every 20 ms and stream TCP`);

  section("1. Without the MAC guard (MACVTAP_DP_MAC_GUARD=0): kubevirt/kubevirt#5912");
  const off = await scenario(false, 4000);
  say(formatReport(off));
  say();
  say("  A node's macvlan port delivers the VM's MAC to the local macvtap that has it while");
  say("  that macvtap is up, whether or not the VM runs behind it:");
  check(
    gap(off, "client on A", "A→B") > 3000,
    `after A→B, the client on A hears nothing for ${
      gap(off, "client on A", "A→B").toFixed(0)
    } ms: its frames go to the stale source macvtap`,
  );
  check(
    gap(off, "client on B", "target prepared on B") > 1000,
    `while a target waits on B, the client on B hears nothing for ${
      gap(off, "client on B", "target prepared on B").toFixed(0)
    } ms`,
  );
  check(
    gap(off, "client on B", "cancelled") > 3000,
    `a cancelled migration leaves its target on B up: ${
      gap(off, "client on B", "cancelled").toFixed(0)
    } ms without an answer on B`,
  );

  section("2. With the MAC guard (the default)");
  say("  Each device the plugin allocates starts in private mode; it is switched to bridge");
  say("  mode when its VM transmits from this node (a frame with the VM's MAC leaving on the");
  say("  NIC), and back to private when the VM's announcements arrive from the wire.");
  const on = await scenario(true, 10_000);
  say(formatReport(on));
  say();
  const downtime = Math.max(...Object.values(on.migrations).map((m) => m.downtimeMs ?? 0));
  const limit = Math.max(1000, 3 * downtime);
  const worst = Math.max(
    ...Object.values(on.pings).flatMap((per) => Object.values(per).map((s) => s.maxGapMs)),
  );
  check(
    worst < limit,
    `the longest silence any client saw in any phase: ${worst.toFixed(0)} ms ` +
      `(migration downtime up to ${downtime} ms)`,
  );
  const broken = Object.entries(on.streams).filter(([, s]) => s.error);
  check(broken.length === 0, `every TCP stream survived (${Object.keys(on.streams).length})`);
  const u = Object.entries(on.usage).map(([k, v]) =>
    `${k}: ${v.cpuMs} ms CPU / ${(v.windowMs / 1000).toFixed(1)} s, RSS ${
      (v.rssKiB / 1024).toFixed(1)
    } MiB`
  );
  say(dim(`  device plugin cost:\n    ${u.join("\n    ")}`));
}

async function main(): Promise<number> {
  const missing = vmMissing() ?? (pluginBuilt() ? undefined : "dist/macvtap not built");
  if (missing) {
    say(red(`cannot run: ${missing}`));
    return 1;
  }
  return await tell(demo);
}

Deno.exit(await main());
