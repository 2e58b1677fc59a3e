/**
 * The fixture of the tests with tenants (networks with `hostrouteif` on one
 * seed 002 node, tests/_owner.ts `Tenant`): the node with its per-test state
 * and log roots, tenants on it with their own state dirs, the usual two (X
 * and Y, or a victim and an attacker) in disjoint address ranges, and a
 * `Deno.test` that builds a lab with one tenant and hands it over.
 *
 * @example
 * ```ts ignore
 * tenantTest("X survives Y's GC", { ignore }, async ({ lab, node }) => {
 *   const { x, y } = twoTenants(node, ["netx", "nety"]);
 *   const px = await x.addOk("px", node.s.ctr);
 *   // …
 * });
 * ```
 *
 * @module
 */

import type { Lab, Seed002 } from "../lab/mod.ts";
import { labTest } from "./_hostroute_lab.ts";
import { hostLocal, type Json, makeRoots, type Roots, Tenant } from "./_owner.ts";

/** An address range `[first, last]` on the seed 002 task LAN. */
export type Range = readonly [string, string];

/** Tenant X's (or the victim's) addresses. */
export const X_RANGE: { v4: Range; v6: Range } = {
  v4: ["192.168.122.171", "192.168.122.179"],
  v6: ["fd22::171", "fd22::179"],
};
/** Tenant Y's (or the attacker's) addresses, disjoint from X's. */
export const Y_RANGE: { v4: Range; v6: Range } = {
  v4: ["192.168.122.181", "192.168.122.199"],
  v6: ["fd22::181", "fd22::199"],
};

/** One seed 002 node that tenants share. */
export interface TenantNode {
  lab: Lab;
  s: Seed002;
  /** Fresh state and log roots of the test. */
  roots: Roots;
  /** host-local's `dataDir`, shared by the tenants unless one has its own. */
  dataDir: string;
}

/**
 * The seed 002 node with fresh roots and a host-local `dataDir`; with
 * `defaultRoutes`, the host's default routes via the router (an address no
 * task may take).
 */
export async function tenantNode(
  lab: Lab,
  opts: { defaultRoutes?: boolean } = {},
): Promise<TenantNode> {
  const s = await lab.seed002();
  if (opts.defaultRoutes) {
    await lab.ip(s.host, "route", "add", "default", "via", "192.168.10.1");
    await lab.ip(s.host, "-6", "route", "add", "default", "via", "fd10::1");
  }
  return { lab, s, roots: await makeRoots(lab), dataDir: await lab.tempDir("ipam") };
}

/** A tenant: its network name and what differs from the defaults. */
export interface TenantSpec {
  name: string;
  /** Its state dir, relative to the state root (default: the network name). */
  stateDir?: string;
  /** host-local `dataDir` (default: the node's). */
  dataDir?: string;
  /** host-local's IPv4 range (default {@linkcode X_RANGE}). */
  v4?: Range;
  /** host-local's IPv6 range (default {@linkcode X_RANGE}; `null`: IPv4 only). */
  v6?: Range | null;
  /** The whole IPAM config instead of host-local (given the `dataDir`). */
  ipam?: (dataDir: string) => Json;
  version?: string;
  /** CNI_PATH. */
  path?: string;
  /** Extra config keys. */
  extra?: Json;
}

function pair(r: Range): [string, string] {
  return [r[0], r[1]];
}

/** A tenant on `node` (nothing is called yet). */
export function tenantOf(node: TenantNode, spec: TenantSpec): Tenant {
  const dataDir = spec.dataDir ?? node.dataDir;
  const v6 = spec.v6 === null ? undefined : spec.v6 ?? X_RANGE.v6;
  return new Tenant(node.lab, node.s, node.roots, {
    name: spec.name,
    stateDir: `${node.roots.stateRoot}/${spec.stateDir ?? spec.name}`,
    dataDir,
    ipam: spec.ipam?.(dataDir) ??
      hostLocal(dataDir, pair(spec.v4 ?? X_RANGE.v4), v6 ? pair(v6) : undefined),
    ...(spec.version ? { version: spec.version } : {}),
    ...(spec.path ? { path: spec.path } : {}),
    ...(spec.extra ? { extra: spec.extra } : {}),
  });
}

/**
 * Two tenants on `node`, each with its own state dir, in {@linkcode X_RANGE}
 * and {@linkcode Y_RANGE} unless `ranges` says otherwise; `common` applies
 * to both (a CNI_PATH, say).
 */
export function twoTenants(
  node: TenantNode,
  names: readonly [string, string],
  opts: {
    ranges?: readonly [{ v4: Range; v6: Range | null }, { v4: Range; v6: Range | null }];
    common?: Omit<TenantSpec, "name" | "v4" | "v6">;
  } = {},
): { x: Tenant; y: Tenant } {
  const [rx, ry] = opts.ranges ?? [X_RANGE, Y_RANGE];
  return {
    x: tenantOf(node, { ...opts.common, name: names[0], v4: rx.v4, v6: rx.v6 }),
    y: tenantOf(node, { ...opts.common, name: names[1], v4: ry.v4, v6: ry.v6 }),
  };
}

/** What a {@linkcode tenantTest} hands its body. */
export interface TenantFixture extends TenantNode {
  /** The tenant of the test (network "tasks" unless the spec names another). */
  t: Tenant;
  /** Its state dir. */
  stateDir: string;
}

/**
 * A `Deno.test` on a fresh lab (removed after, also on failure) with one
 * tenant, `tasks` in {@linkcode X_RANGE} unless `spec` says otherwise;
 * `dist/macvtap` must be built.
 */
export function tenantTest(
  name: string,
  opts: { ignore: boolean; spec?: Partial<TenantSpec> },
  fn: (f: TenantFixture) => Promise<void>,
): void {
  labTest(name, opts.ignore, async (lab) => {
    const node = await tenantNode(lab);
    const t = tenantOf(node, { name: "tasks", ...opts.spec });
    await fn({ ...node, t, stateDir: t.o.stateDir });
  });
}
