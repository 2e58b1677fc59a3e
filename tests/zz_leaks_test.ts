/**
 * Runs last (file order): fails if any lab namespace, temp dir or daemon was
 * left behind.
 *
 * Under `deno test --parallel` every test file runs in this same process, so
 * a lab that is still alive may belong to a file that is still running. The
 * check therefore uses the marker files `Lab` keeps while alive:
 *
 * - a lab-named namespace, temp dir or process without a marker: leaked;
 * - a marker whose dispose failed, or whose owner pid is gone: leaked;
 * - a marker of another live process (a concurrent run): not ours, ignored;
 * - a marker of this process: waited for (up to `MACVTAP_LEAK_WAIT_MS`,
 *   default 180 s) until its file disposes it; still there ⇒ leaked.
 *
 * Before looking, it waits until every other test file of this process that
 * imports the lab has finished (their `moduleToken`s are gone for 1 s).
 *
 * Everything found leaked is reported and then removed, so one leak does not
 * fail every later run.
 */

import {
  DEFAULT_PREFIX,
  exists,
  labIdOf,
  type LabMarker,
  listNetns,
  MARKER_DIR,
  missingTools,
  moduleToken,
  NETNS_DIR,
  pidAlive,
  privileged,
  run,
} from "../lab/mod.ts";

const WAIT_MS = Number(Deno.env.get("MACVTAP_LEAK_WAIT_MS") ?? 180_000);
/** How long no other test file of this process must be active before checking. */
const QUIET_MS = 1000;

/** Activity tokens of other lab-using test files of this process (stale ones removed). */
async function activeModules(): Promise<string[]> {
  const active: string[] = [];
  try {
    for await (const e of Deno.readDir(MARKER_DIR)) {
      if (!e.name.startsWith(".module-")) continue;
      const path = `${MARKER_DIR}/${e.name}`;
      if (path === moduleToken) continue;
      const pid = Number(e.name.split("-")[1]);
      if (!pidAlive(pid)) {
        await Deno.remove(path).catch(() => {});
      } else if (pid === Deno.pid) {
        active.push(e.name);
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return active;
}

/**
 * Under `--parallel` this file starts last but alongside others: wait until
 * no other lab-using file of this process has been active for
 * {@linkcode QUIET_MS} (or the deadline passes).
 */
async function waitForOtherFiles(deadline: number): Promise<string[]> {
  let quietSince = Date.now();
  for (;;) {
    const active = await activeModules();
    if (active.length > 0) quietSince = Date.now();
    if (Date.now() - quietSince >= QUIET_MS || Date.now() >= deadline) return active;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function readMarkers(): Promise<Map<string, LabMarker>> {
  const markers = new Map<string, LabMarker>();
  try {
    for await (const e of Deno.readDir(MARKER_DIR)) {
      if (e.name.startsWith(".")) continue; // module tokens
      try {
        const m = JSON.parse(await Deno.readTextFile(`${MARKER_DIR}/${e.name}`)) as LabMarker;
        markers.set(e.name, m);
      } catch {
        // removed meanwhile, or half-written: looked at again next round
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return markers;
}

/** Processes whose command line mentions `needle` (a lab temp dir). */
async function processesMentioning(needles: string[]): Promise<{ pid: number; cmd: string }[]> {
  const found: { pid: number; cmd: string }[] = [];
  if (needles.length === 0) return found;
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    if (pid === Deno.pid) continue;
    let cmd: string;
    try {
      cmd = (await Deno.readTextFile(`/proc/${pid}/cmdline`)).replaceAll("\0", " ").trim();
    } catch {
      continue;
    }
    if (needles.some((n) => cmd.includes(n))) found.push({ pid, cmd });
  }
  return found;
}

interface Leak {
  what: string;
  clean: () => Promise<void>;
}

/**
 * Leaks visible now. With `othersDone`, no other test file of this process is
 * running, so a live lab of this process can only be an undisposed one.
 */
async function findLeaks(othersDone: boolean): Promise<{ leaks: Leak[]; waiting: string[] }> {
  const markers = await readMarkers();
  const leaks: Leak[] = [];
  const waiting: string[] = [];
  const prefixes = new Set([DEFAULT_PREFIX, ...[...markers.values()].map((m) => m.prefix)]);
  const ours = (id: string | undefined): id is string =>
    id !== undefined && prefixes.has(id.slice(0, id.indexOf("-")));
  const removeMarker = (id: string) => async () => {
    await Deno.remove(`${MARKER_DIR}/${id}`).catch(() => {});
  };

  for (const [id, m] of markers) {
    if (m.failed && m.failed.length > 0) {
      leaks.push({
        what: `lab ${id} failed to clean up: ${m.failed.join("; ")}`,
        clean: removeMarker(id),
      });
    } else if (!pidAlive(m.pid)) {
      leaks.push({
        what: `lab ${id} was never disposed (owner pid ${m.pid} is gone)`,
        clean: removeMarker(id),
      });
    } else if (m.pid === Deno.pid && othersDone) {
      leaks.push({
        what: `lab ${id} was never disposed (its test file has finished)`,
        clean: removeMarker(id),
      });
    } else if (m.pid === Deno.pid) {
      waiting.push(id);
    }
  }
  // A lab whose marker is gone (or is a leak itself) owns nothing any more.
  const orphan = (id: string) =>
    !markers.has(id) || leaks.some((l) => l.what.startsWith(`lab ${id} `));

  const orphanDirs: string[] = [];
  for (const ns of await listNetns()) {
    const id = labIdOf(ns);
    if (!ours(id) || !orphan(id)) continue;
    // The marker goes only after the namespace: re-check before calling it a leak.
    if (!markers.has(id) && !(await exists(`${NETNS_DIR}/${ns}`))) continue;
    leaks.push({
      what: `namespace ${ns}`,
      clean: async () => {
        const pids = await run(["ip", "netns", "pids", ns]);
        for (const p of pids.stdout.split(/\s+/).filter((s) => /^\d+$/.test(s))) {
          try {
            Deno.kill(Number(p), "SIGKILL");
          } catch {
            // gone
          }
        }
        await run(["ip", "netns", "del", ns]);
      },
    });
  }
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  for await (const e of Deno.readDir(tmp)) {
    const id = labIdOf(e.name);
    if (!e.isDirectory || !ours(id) || !orphan(id)) continue;
    const dir = `${tmp}/${e.name}`;
    if (!markers.has(id) && !(await exists(dir))) continue;
    orphanDirs.push(dir);
    leaks.push({
      what: `temp dir ${dir}`,
      clean: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
    });
  }
  for (const { pid, cmd } of await processesMentioning(orphanDirs.map((d) => `${d}/`))) {
    leaks.push({
      what: `process ${pid} (${cmd})`,
      clean: () => {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
        return Promise.resolve();
      },
    });
  }
  return { leaks, waiting };
}

Deno.test({
  name: "the privileged suite leaves no namespace, temp dir or daemon behind",
  ignore: !privileged || missingTools().includes("ip"),
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const deadline = Date.now() + WAIT_MS;
    const stillActive = await waitForOtherFiles(deadline);
    let found = await findLeaks(stillActive.length === 0);
    while (found.waiting.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      found = await findLeaks(false);
    }
    const problems = found.leaks.map((l) => l.what);
    for (const id of found.waiting) {
      problems.push(
        `lab ${id} of this run is still alive after ${WAIT_MS} ms (missing "await using"?)`,
      );
    }
    if (stillActive.length > 0) {
      problems.push(
        `test files of this run still active after ${WAIT_MS} ms: ${stillActive.join(", ")}`,
      );
    }
    for (const leak of found.leaks) await leak.clean();
    if (problems.length > 0) {
      throw new Error(`Leaked (now removed):\n  ${problems.join("\n  ")}`);
    }
  },
});
