/**
 * Live migration without a black hole (issue 23, kubevirt/kubevirt#5912):
 * the scenario of lab/migration.ts twice, once with the device plugin's MAC
 * guard and once without it.
 *
 * Two nodes on a bridge "switch" with a LAN peer, a bridge-mode client pod on
 * each node; all three ping the VM every 20 ms and keep a TCP stream to it.
 * The VM boots on A; a target is prepared on B; A→B, the source pod and its
 * paused qemu kept 10 s; the source gone, a target on A; B→A; then an A→B
 * that is cancelled (the VM stays on A).
 *
 * - With the guard (and node A's device plugin restarted while the VM runs
 *   there, so the new process must take over the device): no client sees a
 *   gap near a second in any phase, and no TCP stream breaks.
 * - Without it (`MACVTAP_DP_MAC_GUARD=0`), the same run shows the black
 *   holes: A's client loses the VM after A→B for as long as the source stays
 *   up, and B's client while a target waits on B. So the test can see what
 *   it asserts away.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Lab, pluginBuilt } from "../../lab/mod.ts";
import { note } from "../../lab/e2e.ts";
import { vmMissing } from "../../lab/vm.ts";
import { formatReport, runScenario, type ScenarioReport } from "../../lab/migration.ts";

const missing = vmMissing() ?? (pluginBuilt() ? undefined : "dist/macvtap not built");
if (missing) note(`migration_test skipped: ${missing}`);

/** A silence this long is a black hole, not a migration's downtime (11–140 ms measured). */
const BLACK_HOLE_MS = 1000;
const PHASES = {
  steady: "VM on A",
  targetB: "target prepared on B",
  afterAB: "A→B, source kept",
  targetA: "source gone, target prepared on A",
  afterBA: "B→A",
  cancelled: "cancelled A→B, VM stays on A",
} as const;

function gap(r: ScenarioReport, client: string, phase: string): number {
  const per = r.pings[client];
  assert(per, `no figures for ${client}`);
  const key = Object.keys(per).find((k) => k.startsWith(phase));
  assert(key, `no phase "${phase}" for ${client}`);
  return per[key]!.maxGapMs;
}

function log(line: string): void {
  note(line);
}

Deno.test({
  name: "a VM migrates A→B→A and a cancelled A→B: no client of either node sees a black hole " +
    "with the MAC guard; without it, #5912's black holes [root]",
  ignore: missing !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await t.step("with the MAC guard", async () => {
      await using lab = await Lab.create({ prefix: "migr" });
      const r = await runScenario(lab, {
        guard: true,
        holdMs: 10_000,
        prepareMs: 1500,
        sourceQemu: "exited",
        // The new process must take over the running VM's device (adopt).
        restartDevicePlugin: true,
        log,
      });
      note(formatReport(r));
      assert.deepStrictEqual(
        Object.values(r.migrations).map((m) => m.status),
        ["completed", "completed", "cancelled"],
      );
      // Far above the migration's own downtime (which TCG under load stretches).
      const downtimes = Object.values(r.migrations).map((m) => m.downtimeMs ?? 0);
      const limit = Math.max(BLACK_HOLE_MS, 3 * Math.max(...downtimes));
      for (const [client, per] of Object.entries(r.pings)) {
        for (const [phase, s] of Object.entries(per)) {
          assert(
            s.maxGapMs < limit,
            `${client}, ${phase}: ${
              s.maxGapMs.toFixed(0)
            } ms without an answer (${s.lost}/${s.sent} lost)`,
          );
          assert(s.sent > 0, `${client}, ${phase}: no pings`);
        }
      }
      for (const [client, s] of Object.entries(r.streams)) {
        assert.strictEqual(s.error, undefined, `TCP stream of ${client} broke: ${s.error}`);
        // What was in flight when the probe stopped may miss its echo.
        assert(s.echoed >= s.sent - 5, `TCP ${client}: ${s.echoed} of ${s.sent} echoed`);
        // A stream may back off once or twice (RTO 200 ms, doubling), never stall.
        for (const [phase, silence] of Object.entries(s.perPhase)) {
          assert(silence < 3 * limit, `TCP ${client}, ${phase}: ${silence.toFixed(0)} ms silent`);
        }
      }
    });

    await t.step("without it (MACVTAP_DP_MAC_GUARD=0): the black holes are there", async () => {
      await using lab = await Lab.create({ prefix: "migr" });
      const r = await runScenario(lab, {
        guard: false,
        holdMs: 4000,
        prepareMs: 1500,
        sourceQemu: "exited",
        log,
      });
      note(formatReport(r));
      // A's client: after A→B, its frames go to the stale source for as long as it stays up.
      assert(gap(r, "client on A", PHASES.afterAB) > 3000, formatReport(r));
      // B's client: a prepared target swallows its frames until the switchover.
      assert(gap(r, "client on B", PHASES.targetB) > BLACK_HOLE_MS, formatReport(r));
      assert(gap(r, "client on B", PHASES.cancelled) > 3000, formatReport(r));
      // The LAN peer never had one: the switch follows qemu's RARPs.
      for (const phase of Object.values(PHASES)) {
        assert(gap(r, "LAN peer", phase) < BLACK_HOLE_MS, `LAN peer, ${phase}`);
      }
    });
  },
});
