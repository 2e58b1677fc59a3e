/**
 * Shared pieces of the reliability suite: a seeded PRNG, env-configurable
 * counts, a bounded-concurrency pool, the spec oracle for one plugin run,
 * the leftover census of a lab (links, host-local leases, host routes,
 * attachment records), fake IPAM plugins and the figures printed to stderr.
 *
 * @module
 */

import { type Lab, labLog, run } from "../../lab/mod.ts";

/** An integer from env `name` (e.g. `CHAOS_BAD_INPUTS`), or `fallback`. */
export function envInt(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`${name}="${raw}" is not a count`);
  return n;
}

/** The run seed: `CHAOS_SEED` or a fresh random one. Always printed, so a failure can be replayed. */
export function runSeed(what: string): number {
  const raw = Deno.env.get("CHAOS_SEED");
  const seed = raw ? Number(raw) >>> 0 : crypto.getRandomValues(new Uint32Array(1))[0]!;
  figure(what, `seed ${seed} (replay with CHAOS_SEED=${seed})`);
  return seed;
}

/** Print one line of figures to stderr (shows in CI logs). */
export function figure(what: string, text: string): void {
  labLog(`[chaos] ${what}: ${text}`);
}

/** Run `fn` over `items`, at most `limit` at a time; results in input order. */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  async function worker(): Promise<void> {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!, i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Where a lab's plugin state lives, for the leftover census. */
export interface Census {
  /** The plugin's namespace (master, hostrouteif, host routes). */
  host: string;
  /** Container namespaces (may have vanished on purpose). */
  ctrs: readonly string[];
  /** host-local `dataDir`. */
  dataDir?: string;
  /** The plugin's `stateDir`. */
  stateDir?: string;
  /** Macvtaps allowed in the host namespace (hostrouteif, kept by design). */
  hostLinks?: ReadonlySet<string>;
}

interface IpLink {
  ifname: string;
  linkinfo?: { info_kind?: string };
}

function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  const out: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return out;
  }
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...filesUnder(path, keep));
    else if (keep(e.name)) out.push(path);
  }
  return out;
}

/** A host-local lease file is named by its IP. */
function isLease(name: string): boolean {
  return /^[0-9.]+$/.test(name) && name.includes(".") ||
    /^[0-9a-f:]+$/i.test(name) && name.includes(":");
}

/**
 * Everything the plugin left behind: macvtap/macvlan links in container
 * namespaces, unexpected macvtaps or temp-named links in the host namespace,
 * host routes with protocol 249 (v4 and v6), host-local leases, attachment
 * records (any file under the state dir, also temp files).
 */
export async function leftovers(lab: Lab, c: Census): Promise<string[]> {
  const found: string[] = [];
  const existing = new Set(lab.namespaces);
  for (const ns of c.ctrs) {
    if (!(await nsAlive(lab, ns))) continue;
    const links = await lab.ipJson<IpLink[]>(ns, "link", "show");
    for (const l of links) {
      const kind = l.linkinfo?.info_kind;
      if (kind === "macvtap" || kind === "macvlan" || l.ifname.startsWith("mvtmp")) {
        found.push(`link ${l.ifname} (${kind}) in ${ns}`);
      }
    }
  }
  if (existing.has(c.host)) {
    for (const l of await lab.ipJson<IpLink[]>(c.host, "link", "show")) {
      const kind = l.linkinfo?.info_kind;
      if (l.ifname.startsWith("mvtmp")) found.push(`temp link ${l.ifname} in ${c.host}`);
      else if ((kind === "macvtap" || kind === "macvlan") && !c.hostLinks?.has(l.ifname)) {
        found.push(`link ${l.ifname} (${kind}) in ${c.host}`);
      }
    }
    for (const fam of ["-4", "-6"]) {
      const routes = (await lab.ip(c.host, fam, "route", "show", "proto", "249", "table", "all"))
        .trim();
      if (routes) found.push(...routes.split("\n").map((r) => `host route ${r}`));
    }
  }
  if (c.dataDir) {
    for (const f of filesUnder(c.dataDir, isLease)) {
      let owner = "";
      try {
        owner = Deno.readTextFileSync(f).replace("\r\n", "/");
      } catch {
        // raced with a release
      }
      found.push(`lease ${f} (${owner})`);
    }
  }
  if (c.stateDir) found.push(...filesUnder(c.stateDir, () => true).map((f) => `record ${f}`));
  return found;
}

/** Whether lab namespace `ns` still exists (fault tests delete some on purpose). */
export async function nsAlive(lab: Lab, ns: string): Promise<boolean> {
  if (!lab.namespaces.includes(ns)) return false;
  try {
    await Deno.lstat(lab.path(ns));
    return true;
  } catch {
    return false;
  }
}

/** Write an executable script `dir/name`. */
export async function writeScript(dir: string, name: string, body: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, body, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
  return path;
}

/** PIDs of processes still running inside `ns` (e.g. an orphaned IPAM child). */
export async function pidsIn(ns: string): Promise<number[]> {
  const r = await run(["ip", "netns", "pids", ns]);
  return r.stdout.split(/\s+/).filter((s) => /^\d+$/.test(s)).map(Number);
}

/** Wait (up to `ms`) until no process runs in `ns`; returns the survivors. */
export async function waitNoPids(ns: string, ms = 5000): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const pids = await pidsIn(ns);
    if (pids.length === 0 || Date.now() > deadline) return pids;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Median and p95 of `xs` (ms). */
export function stats(xs: readonly number[]): { p50: number; p95: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  return { p50: at(0.5), p95: at(0.95) };
}
