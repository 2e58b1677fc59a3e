/**
 * A private containerd 1.6 for one test (real-clients.md §6): its own config,
 * root, state and socket under the lab's temp dir, started inside the lab host
 * netns (`nsenter --net=…`, so the CRI plugin execs CNI plugins there), and
 * stopped by its own pid. Shims it started are stopped with it.
 *
 * @module
 */

import { type ExecOptions, type ExecResult, run, runOk } from "../../lab/mod.ts";
import { CACHE, type E2eLab, note, waitFor } from "../../lab/e2e.ts";

/** Options for {@linkcode Containerd.start}. */
export interface ContainerdOptions {
  /** Enable the CRI plugin with this CNI bin dir and conf dir. */
  cri?: { binDir: string; confDir: string };
  /**
   * Run containerd in a private mount namespace where `source` is bound over
   * `target` (e.g. a test node's `/opt`), so it and the CNI plugins it execs
   * see that directory. Mounts it makes (pod netns, rootfs) stay in that
   * namespace: reach them with `nsenter --mount=/proc/<pid>/ns/mnt`.
   */
  bindOver?: { source: string; target: string };
  /** Extra environment of containerd, which the CNI plugins it runs inherit. */
  env?: Record<string, string>;
}

/** A running private containerd. */
export class Containerd implements AsyncDisposable {
  readonly dir: string;
  readonly sock: string;
  readonly #lab: E2eLab;
  readonly #child: Deno.ChildProcess;
  readonly #runcRoots: string[];
  #stopped = false;

  private constructor(lab: E2eLab, dir: string, child: Deno.ChildProcess, runcRoots: string[]) {
    this.#lab = lab;
    this.#runcRoots = runcRoots;
    this.dir = dir;
    this.sock = `${dir}/containerd.sock`;
    this.#child = child;
  }

  /** Start containerd and wait until it answers. */
  static async start(lab: E2eLab, opts: ContainerdOptions = {}): Promise<Containerd> {
    const dir = `${lab.dir}/ctrd`;
    await Deno.mkdir(dir, { recursive: true });
    const cri = opts.cri
      ? `
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/bb:pause"
  # oom_score_adj -998 needs CAP_SYS_RESOURCE, which this machine does not grant.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "${opts.cri.binDir}"
  conf_dir = "${opts.cri.confDir}"
  max_conf_num = 1
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  Root = "${dir}/runc"
`
      : `disabled_plugins = ["io.containerd.grpc.v1.cri"]\n`;
    await Deno.writeTextFile(
      `${dir}/config.toml`,
      `version = 2
root = "${dir}/root"
state = "${dir}/state"
${opts.cri ? "" : cri}
[grpc]
  address = "${dir}/containerd.sock"
[ttrpc]
  address = "${dir}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
${opts.cri ? cri : ""}`,
    );
    // nsenter (and unshare) exec containerd, so the child's pid is containerd's.
    const unshare = opts.bindOver
      ? `exec unshare --mount --propagation private sh -c 'mount --bind "$0" "$1" && shift && exec "$@"' ` +
        `${opts.bindOver.source} ${opts.bindOver.target} `
      : "exec ";
    const child = new Deno.Command("sh", {
      ...(opts.env ? { env: opts.env } : {}),
      args: [
        "-c",
        `${unshare}nsenter --net=/run/netns/${lab.hostNs} containerd --config ${dir}/config.toml ` +
        `>${dir}/containerd.log 2>&1`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    // runc state of this containerd's containers: the CRI runtime gets its own root
    // (<Root>/<namespace>); ctr uses the default root with a namespace of its own.
    const c = new Containerd(
      lab,
      dir,
      child,
      opts.cri ? [`${dir}/runc/k8s.io`] : [`/run/containerd/runc/${lab.net}`],
    );
    lab.defer("stop containerd", () => c.stop());
    const t0 = performance.now();
    try {
      await waitFor("containerd to answer", async () => {
        return (await run(["ctr", "-a", c.sock, "version"], { timeoutMs: 2000 })).code === 0;
      }, 15_000);
    } catch (err) {
      note(`containerd log:\n${await c.log()}`);
      throw err;
    }
    note(`containerd up in ${(performance.now() - t0).toFixed(0)} ms`);
    return c;
  }

  /** containerd's pid. */
  get pid(): number {
    return this.#child.pid;
  }

  /** containerd's log so far. */
  async log(): Promise<string> {
    return await Deno.readTextFile(`${this.dir}/containerd.log`).catch(() => "");
  }

  /** `ctr -a SOCK -n NAMESPACE …`, run in the lab host netns. */
  ctr(namespace: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.#lab.inHost(["ctr", "-a", this.sock, "-n", namespace, ...args], opts);
  }

  /** Import `localhost/bb:<tag>` from the setup's OCI archives into `namespace`. */
  async importImage(namespace: string, tag: "probe" | "pause"): Promise<void> {
    await runOk([
      "ctr",
      "-a",
      this.sock,
      "-n",
      namespace,
      "images",
      "import",
      "--base-name",
      "localhost/bb",
      `${CACHE}/images/bb-${tag}.oci.tar`,
    ]);
    const list = await runOk(["ctr", "-a", this.sock, "-n", namespace, "images", "ls", "-q"]);
    if (!list.split("\n").includes(`localhost/bb:${tag}`)) {
      throw new Error(`localhost/bb:${tag} not imported; images: ${list.trim()}`);
    }
  }

  /** The ctr namespace tests should use (its runc root is cleaned on stop). */
  get namespace(): string {
    return this.#lab.net;
  }

  /**
   * Stop containerd (SIGTERM, then SIGKILL) and the shims it started. Any
   * container still alive (a test failed midway) is deleted with runc first.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const root of this.#runcRoots) {
      const list = await run(["runc", "--root", root, "list", "-q"]);
      for (const id of list.stdout.split("\n").filter((l) => l.trim())) {
        note(`deleting leftover container ${id} (runc root ${root})`);
        await run(["runc", "--root", root, "delete", "--force", id]);
      }
    }
    // Shims outlive containerd: find ours by the socket path in their command line.
    const shims: number[] = [];
    for await (const e of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      try {
        const cmdline = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
        if (cmdline.startsWith("/usr/bin/containerd-shim") && cmdline.includes(this.sock)) {
          shims.push(Number(e.name));
        }
      } catch {
        // process gone
      }
    }
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already exited
    }
    const exited = await Promise.race([
      this.#child.status.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 5000)),
    ]);
    if (!exited) {
      this.#child.kill("SIGKILL");
      await this.#child.status;
    }
    for (const pid of shims) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    for (const root of this.#runcRoots) {
      // Only when empty: runc keeps the state of live containers there.
      await Deno.remove(root).catch(() => {});
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
