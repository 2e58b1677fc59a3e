// deno-lint-ignore-file no-console -- part of a command-line tool: stdout is its output
/**
 * The end-to-end figure of `deno task bench`: wall time of
 * `podman run --rm --network <net> localhost/bb:probe true` (podman 4.3, CNI
 * backend, runc) on a network of our plugin (`type: macvtap`) and on the same
 * network of the reference `macvlan`, interleaved in one run.
 *
 * Both networks: master `lab0` (a veth inside the lab host namespace of
 * lab/e2e.ts), mode bridge, the same host-local IPAM (own dataDir in the
 * lab's temp dir), no hostrouteif. podman runs as
 * `nsenter --net=/run/netns/<lab host> podman …` with its own
 * containers.conf/storage.conf, network config dir and graph root in the
 * lab's temp dir, a short run root `/run/mvb-<id>` (see below), the image
 * read-only from the store tools/e2e_setup.sh filled. Everything
 * (containers, mounts, namespaces, files) goes when the lab is disposed, also
 * after a failure.
 *
 * @module
 */

import type { ExecResult } from "../lab/mod.ts";
import type { E2eLab, LAN } from "../lab/e2e.ts";

/** Median and p95 of a series (ms). */
export interface Stats {
  median: number;
  p95: number;
  min: number;
}

/** What {@linkcode podmanBench} measured. */
export interface PodmanFigures {
  runs: number;
  command: string;
  ours: Stats;
  ref: Stats;
  /** ours median / ref median. */
  ratio: number;
  times: { ours: number[]; ref: number[] };
}

/** Options for {@linkcode podmanBench}. */
export interface PodmanOptions {
  /** Our plugin (the `macvtap` executable). */
  ours: string;
  /** The reference plugin (`/usr/lib/cni/macvlan`). */
  ref: string;
  /** Measured runs per plugin (after one warm-up each). */
  runs: number;
  stats: (xs: number[]) => Stats;
}

const IMAGE = "localhost/bb:probe";
const WARMUP = 1;

/** Why the podman figure cannot be taken here, or undefined. */
export function podmanMissing(imageStore: string): string | undefined {
  for (const f of ["/usr/bin/podman", "/usr/sbin/runc", "/usr/bin/nsenter", imageStore]) {
    try {
      Deno.statSync(f);
    } catch {
      return `${f} is missing (podman and its image store come from tools/e2e_setup.sh)`;
    }
  }
  return undefined;
}

/** One network config list: the plugin, host-local like the e2e suite's. */
function conflist(name: string, type: string, lab: E2eLab, lan: typeof LAN): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name,
    plugins: [{
      type,
      master: "lab0",
      mode: "bridge",
      ipam: {
        type: "host-local",
        subnet: lan.subnet,
        rangeStart: lan.rangeStart,
        rangeEnd: lan.rangeEnd,
        gateway: lan.peer,
        routes: [{ dst: "0.0.0.0/0" }],
        dataDir: lab.ipamDir,
      },
    }],
  });
}

/**
 * Build a lab, time `podman run --rm` on both networks (alternating which goes
 * first), tear everything down. Returns the figures, or a string saying why it
 * was skipped.
 */
export async function podmanBench(o: PodmanOptions): Promise<PodmanFigures | string> {
  // lab/e2e.ts resolves its plugin under test from E2E_PLUGIN when loaded; the
  // bench sets up its own plugin dir, so only keep that from failing.
  Deno.env.delete("E2E_PLUGIN");
  const e2e = await import("../lab/e2e.ts");
  const missing = podmanMissing(e2e.PODMAN_IMAGE_STORE);
  if (missing) return missing;

  await using lab = await e2e.E2eLab.create();
  const d = `${lab.dir}/podman`;
  const bin = `${lab.dir}/bench-bin`; // no spy: the plugins themselves
  await Deno.mkdir(bin);
  // A short run root: under the lab dir, the path of conmon's attach socket
  // gets too long and every attached \`podman run\` waits out the 20 s conmon
  // timeout. Removed (after podman rm, the cleanups run in reverse) with the lab.
  const runroot = `/run/mvb-${lab.id}`;
  lab.defer(`rm -r ${runroot}`, async () => {
    await e2e.unmountUnder(runroot);
    await Deno.remove(runroot, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  });
  for (const [name, target] of [["macvtap", o.ours], ["macvlan", o.ref]] as const) {
    await Deno.symlink(target, `${bin}/${name}`);
  }
  const env = await e2e.writePodmanConfig(d, { pluginDirs: [bin, e2e.REF_CNI_DIR], runroot });
  const nets = { ours: `${lab.net}-macvtap`, ref: `${lab.net}-macvlan` };
  await Deno.writeTextFile(
    `${d}/net.d/${nets.ours}.conflist`,
    conflist(nets.ours, "macvtap", lab, e2e.LAN),
  );
  await Deno.writeTextFile(
    `${d}/net.d/${nets.ref}.conflist`,
    conflist(nets.ref, "macvlan", lab, e2e.LAN),
  );
  const podman = (...args: string[]): Promise<ExecResult> =>
    lab.inHost(["podman", ...args], { env });
  lab.defer("podman rm -a", async () => {
    const r = await podman("rm", "--force", "--all", "--time", "0");
    if (r.code !== 0) throw new Error(r.stderr);
  });

  const once = async (net: string): Promise<number> => {
    const t0 = performance.now();
    const r = await podman("run", "--rm", "--pull", "never", "--network", net, IMAGE, "true");
    const dt = performance.now() - t0;
    if (r.code !== 0) {
      throw new Error(`podman run --network ${net} exited ${r.code}: ${r.stderr.trim()}`);
    }
    return dt;
  };
  const times = { ours: [] as number[], ref: [] as number[] };
  for (let i = 0; i < o.runs + WARMUP; i++) {
    const order = i % 2 ? (["ref", "ours"] as const) : (["ours", "ref"] as const);
    for (const k of order) {
      const dt = await once(nets[k]);
      if (i >= WARMUP) times[k].push(dt);
    }
  }
  // Each run's DEL must have released its lease (host-local dataDir/<network>).
  for (const net of Object.values(nets)) {
    const left: string[] = [];
    try {
      for await (const e of Deno.readDir(`${lab.ipamDir}/${net}`)) {
        if (/^\d+\.\d+\.\d+\.\d+$/.test(e.name)) left.push(e.name);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (left.length) throw new Error(`leases left in ${net} after podman run --rm: ${left}`);
  }
  const ours = o.stats(times.ours), ref = o.stats(times.ref);
  return {
    runs: o.runs,
    command: `podman run --rm --pull never --network <net> ${IMAGE} true`,
    ours,
    ref,
    ratio: ours.median / ref.median,
    times,
  };
}

/** Print the podman section of the bench output. */
export function printPodman(r: PodmanFigures | string): void {
  if (typeof r === "string") {
    console.log(`\npodman end-to-end: skipped: ${r}`);
    return;
  }
  const f = (x: number) => x.toFixed(1).padStart(7);
  console.log(
    `\npodman end-to-end: \`${r.command}\`, ${r.runs} runs each, interleaved ` +
      `(alternating order, 1 warm-up each); ms wall`,
  );
  console.log("network                  median     p95");
  console.log(`macvtap (ours)          ${f(r.ours.median)} ${f(r.ours.p95)}`);
  console.log(`macvlan (reference)     ${f(r.ref.median)} ${f(r.ref.p95)}`);
  const verdict = r.ratio <= 1.15 ? "within" : "ABOVE"; // issue 13
  console.log(
    `ratio ${r.ratio.toFixed(2)} (target <= 1.15: ${verdict}); ours - ref: ${
      (r.ours.median - r.ref.median).toFixed(1)
    } ms`,
  );
  console.log(
    "podman (libcni) calls VERSION before each ADD and before each DEL: one container is four plugin\n" +
      "process starts (VERSION, ADD, VERSION, DEL), so every start-up millisecond counts four times.\n" +
      "Both networks: master lab0 (a lab veth), mode bridge, host-local IPAM, no hostrouteif.",
  );
}
