/**
 * The namespace lab every privileged test uses. iproute2 builds and inspects
 * it, so it is an oracle independent of our netlink code.
 *
 * A lab owns throwaway network namespaces (named
 * `<prefix>-<pid>-<n>-<role>`), temp dirs and child processes. Disposing it
 * deletes them all, also after a failure, and never throws: problems are
 * logged and left for `zz_leaks_test.ts` to report. The root namespace's
 * interfaces are never touched; the "physical" master is always a veth end
 * inside a lab namespace.
 *
 * While a lab is alive, a marker file `/run/macvtap-test-labs/<lab id>`
 * records its owner pid and what it created. Labs of concurrent test files
 * (one process under `deno test --parallel`) and of other processes can
 * therefore tell each other's live namespaces from leaked ones.
 *
 * @example A namespace pair joined by a veth
 * ```ts ignore
 * import { Lab } from "./lab.ts";
 * await using lab = await Lab.create();
 * const a = await lab.netns("a");
 * const b = await lab.netns("b");
 * await lab.veth(a, "v0", b, "v0p");
 * console.log(await lab.ipJson(a, "link", "show", "v0"));
 * ```
 *
 * @module
 */

import { type ExecOptions, type ExecResult, run, runOk } from "./run.ts";
import { CNI_BIN } from "./cni.ts";

/** Tests that change namespaces need root. */
export const privileged: boolean = Deno.uid() === 0;

/** The reference host-local plugin (Debian `containernetworking-plugins`). */
export const HOST_LOCAL = `${CNI_BIN}/host-local`;

/** Where each live lab keeps its marker file. */
export const MARKER_DIR = "/run/macvtap-test-labs";

/** Prefix of lab namespaces and temp dirs unless a test picks another. */
export const DEFAULT_PREFIX = "mvt";

/** Where `ip netns add` mounts namespaces. */
export const NETNS_DIR = "/run/netns";

const encoder = new TextEncoder();

/**
 * This module instance's activity token, `<MARKER_DIR>/.module-<pid>-<rand>`.
 * Every test file importing the lab creates one at load and removes it on
 * `unload` (after its last test), so `zz_leaks_test.ts` can wait for the
 * other files of a `--parallel` run, which share this process, to finish.
 */
export const moduleToken: string = `${MARKER_DIR}/.module-${Deno.pid}-${
  crypto.randomUUID().slice(0, 8)
}`;

function registerModule(): void {
  if (!privileged) return;
  try {
    Deno.mkdirSync(MARKER_DIR, { recursive: true });
    Deno.writeTextFileSync(moduleToken, String(Deno.pid));
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(moduleToken);
      } catch {
        // gone already
      }
    });
  } catch {
    // no /run access: the leak check is off anyway
  }
}
registerModule();

/** Write a diagnostic line `[tag] msg` to stderr (stdout stays clean; lint forbids console). */
export function labLog(msg: string, tag = "lab"): void {
  try {
    Deno.stderr.writeSync(encoder.encode(`[${tag}] ${msg}\n`));
  } catch {
    // stderr closed: nothing to do.
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether `cmd` resolves to an executable: absolute paths as is, bare names on PATH. */
export function hasExecutable(cmd: string): boolean {
  const candidates = cmd.includes("/")
    ? [cmd]
    : (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":").concat([
      "/usr/sbin",
      "/sbin",
    ]).map((d) => `${d}/${cmd}`);
  for (const path of candidates) {
    try {
      const st = Deno.statSync(path);
      if (st.isFile && st.mode !== null && (st.mode & 0o111) !== 0) return true;
    } catch {
      // try the next one
    }
  }
  return false;
}

/**
 * The tools among `ip`, {@linkcode HOST_LOCAL} and `extra` that are missing.
 * Empty means the lab can run.
 */
export function missingTools(extra: readonly string[] = []): string[] {
  return ["ip", HOST_LOCAL, ...extra].filter((t) => !hasExecutable(t));
}

/**
 * `ignore` value for a privileged lab test: not root, or a tool missing.
 * Logs why once per reason so a skipped run is never silent.
 *
 * @example
 * ```ts ignore
 * Deno.test({ name: "x", ignore: labIgnore(["dnsmasq"]), fn: async () => {} });
 * ```
 */
export function labIgnore(extra: readonly string[] = []): boolean {
  if (!privileged) {
    warnOnce("not root: privileged namespace tests are ignored");
    return true;
  }
  const missing = missingTools(extra);
  if (missing.length > 0) {
    warnOnce(
      `missing ${missing.join(", ")}: the tests needing them are ignored (run tools/setup.sh)`,
    );
    return true;
  }
  return false;
}

const warned = new Set<string>();
function warnOnce(msg: string): void {
  if (warned.has(msg)) return;
  warned.add(msg);
  labLog(msg);
}

/** What a marker file records about its lab. */
export interface LabMarker {
  id: string;
  pid: number;
  prefix: string;
  created: string;
  netns: string[];
  dirs: string[];
  children: number[];
  /** Set by a dispose that could not remove everything. */
  failed?: string[];
}

/** Options for {@linkcode Lab.create}. */
export interface LabOptions {
  /** Name prefix, `[a-z0-9]{1,8}`; default {@linkcode DEFAULT_PREFIX}. */
  prefix?: string;
}

/** Names of the seed 002 network (`Lab.seed002Net()`): seed 002 without a container. */
export interface Seed002Net {
  /** The plugin's namespace: uplink `eth0` 192.168.10.22/24 + fd10::22/64, master `eth1`. */
  host: string;
  /** Router side of `eth0`: `eth0p` 192.168.10.1/24 + fd10::1/64. */
  router: string;
  /** LAN side of the master `eth1`: `lan0` 192.168.122.1/24 + fd22::1/64. */
  lan: string;
  /** The master interface in `host` (`eth1`, up, no address). */
  master: string;
  /** The uplink in `host` (`eth0`). */
  uplink: string;
  /** The LAN peer interface in `lan` (`lan0`). */
  lanIf: string;
}

/** Names of the seed 002 preset (`Lab.seed002()`). */
export interface Seed002 extends Seed002Net {
  /** An empty container namespace. */
  ctr: string;
  /** `/run/netns/<ctr>`. */
  ctrPath: string;
}

/** Names of the simple preset (`Lab.simple()`). */
export interface SimpleLab {
  /** The plugin's namespace with master `lab0` (up, no address). */
  host: string;
  /** Peer side: `lab0p` with 10.99.0.1/24. */
  peer: string;
  /** An empty container namespace. */
  ctr: string;
  /** `/run/netns/<ctr>`. */
  ctrPath: string;
  /** `lab0`. */
  master: string;
  /** `lab0p`. */
  peerIf: string;
}

/**
 * A set of throwaway namespaces, temp dirs and child processes, all removed
 * by `await using`.
 */
export class Lab implements AsyncDisposable {
  /** `<prefix>-<pid>-<n>`; every namespace and temp dir name starts with it. */
  readonly id: string;
  readonly prefix: string;
  #marker: LabMarker;
  #netns: string[] = [];
  #dirs: string[] = [];
  #children = new Map<number, { child: Deno.ChildProcess; what: string }>();
  #deferred: { what: string; fn: () => void | Promise<void> }[] = [];
  #disposed = false;
  #pending: Promise<void> = Promise.resolve();

  private constructor(id: string, prefix: string, marker: LabMarker) {
    this.id = id;
    this.prefix = prefix;
    this.#marker = marker;
  }

  /**
   * Reserve a unique lab id (its marker file is created exclusively) and
   * return the empty lab.
   */
  static async create(options: LabOptions = {}): Promise<Lab> {
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    if (!/^[a-z0-9]{1,8}$/.test(prefix)) {
      throw new TypeError(`Lab prefix "${prefix}" must match [a-z0-9]{1,8}`);
    }
    await Deno.mkdir(MARKER_DIR, { recursive: true });
    for (let n = 1;; n++) {
      const id = `${prefix}-${Deno.pid}-${n}`;
      const marker: LabMarker = {
        id,
        pid: Deno.pid,
        prefix,
        created: new Date().toISOString(),
        netns: [],
        dirs: [],
        children: [],
      };
      try {
        await Deno.writeTextFile(markerPath(id), JSON.stringify(marker), { createNew: true });
      } catch (err) {
        if (err instanceof Deno.errors.AlreadyExists) continue;
        throw err;
      }
      return new Lab(id, prefix, marker);
    }
  }

  /** The full name for `role`. */
  name(role: string): string {
    if (!/^[a-z0-9]{1,16}$/.test(role)) {
      throw new TypeError(`Lab role "${role}" must match [a-z0-9]{1,16}`);
    }
    return `${this.id}-${role}`;
  }

  /** `/run/netns/<ns>`. */
  path(ns: string): string {
    return `${NETNS_DIR}/${ns}`;
  }

  /**
   * Create the namespace `<id>-<role>` with `lo` up and return its name.
   * Equivalent to `ip netns add NAME && ip -n NAME link set lo up`.
   */
  async netns(role: string): Promise<string> {
    this.#alive();
    const ns = this.name(role);
    if (this.#netns.includes(ns)) throw new Error(`Lab namespace "${ns}" exists already`);
    // Record first: a crash between the two steps still leaves a trace.
    this.#netns.push(ns);
    await this.#saveMarker();
    await runOk(["ip", "netns", "add", ns]);
    await this.ip(ns, "link", "set", "lo", "up");
    return ns;
  }

  /**
   * A veth pair `ifA` (in `nsA`) ↔ `ifB` (in `nsB`), both up.
   * Equivalent to `ip -n A link add IFA type veth peer name IFB netns B`.
   */
  async veth(nsA: string, ifA: string, nsB: string, ifB: string): Promise<void> {
    this.#own(nsA);
    this.#own(nsB);
    await this.ip(nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB);
    await this.ip(nsA, "link", "set", ifA, "up");
    await this.ip(nsB, "link", "set", ifB, "up");
  }

  /** `ip -n NS ARGS…`; returns stdout, throws with stderr on failure. */
  ip(ns: string, ...args: string[]): Promise<string> {
    this.#own(ns);
    return runOk(["ip", "-n", ns, ...args]);
  }

  /**
   * A macvtap made by hand on `master` in `ns` (as `ip link add` or another
   * device plugin makes one), at `options.index` when given.
   *
   * Equivalent to `ip -n NS link add link MASTER name NAME [index N] type macvtap [mode MODE]`.
   */
  async macvtap(
    ns: string,
    master: string,
    name: string,
    options: { index?: string; mode?: string } = {},
  ): Promise<void> {
    await this.ip(
      ns,
      "link",
      "add",
      "link",
      master,
      "name",
      name,
      ...(options.index ? ["index", options.index] : []),
      "type",
      "macvtap",
      ...(options.mode ? ["mode", options.mode] : []),
    );
  }

  /** `ip -n NS -j -d ARGS…`, parsed (`[]` when ip prints nothing). */
  async ipJson<T = Record<string, unknown>[]>(ns: string, ...args: string[]): Promise<T> {
    const out = (await this.ip(ns, "-j", "-d", ...args)).trim();
    return JSON.parse(out === "" ? "[]" : out) as T;
  }

  /** Run `cmd` inside `ns` (`ip netns exec NS CMD…`); never throws on a non-zero exit. */
  exec(ns: string, cmd: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    this.#own(ns);
    return run(["ip", "netns", "exec", ns, ...cmd], options);
  }

  /**
   * Start a long-running `cmd` inside `ns` (or in the test's own namespace
   * when `ns` is `null`); the lab kills it on dispose if it still runs.
   * `ip netns exec` execs the command, so the child's pid is the command's.
   */
  spawn(
    ns: string | null,
    cmd: readonly string[],
    options: {
      what?: string;
      stdout?: "null" | "piped" | "inherit";
      stderr?: "null" | "piped" | "inherit";
    } = {},
  ): Deno.ChildProcess {
    this.#alive();
    if (ns !== null) this.#own(ns);
    const full = ns === null ? [...cmd] : ["ip", "netns", "exec", ns, ...cmd];
    const [program, ...args] = full;
    const child = new Deno.Command(program!, {
      args,
      stdin: "null",
      stdout: options.stdout ?? "null",
      stderr: options.stderr ?? "inherit",
    }).spawn();
    const what = options.what ?? cmd.join(" ");
    this.#children.set(child.pid, { child, what });
    this.#marker.children = [...this.#children.keys()];
    this.#pending = this.#pending.then(() => this.#saveMarker()).catch(() => {});
    child.status.then(() => this.#children.delete(child.pid), () => {});
    return child;
  }

  /** Stop a child started by {@linkcode Lab.spawn}: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(child: Deno.ChildProcess, graceMs = 2000): Promise<Deno.CommandStatus> {
    return await stopChild(child, graceMs);
  }

  /**
   * Write a sysctl inside `ns`, e.g. `lab.sysctl(ns, "net.ipv6.conf.all.forwarding", "1")`.
   * Keys use dots (or slashes) as `sysctl -w` does.
   */
  async sysctl(ns: string, key: string, value: string): Promise<void> {
    const rel = key.includes("/") ? key : key.replaceAll(".", "/");
    const r = await this.exec(ns, [
      "sh",
      "-c",
      'printf "%s\\n" "$1" > "/proc/sys/$2"',
      "sh",
      value,
      rel,
    ]);
    if (!r.success) throw new Error(`sysctl ${key}=${value} in ${ns} failed: ${r.stderr.trim()}`);
  }

  /** A temp dir `$TMPDIR/<id>-<role>-XXXX` (default /tmp), removed on dispose. */
  async tempDir(role = "tmp"): Promise<string> {
    this.#alive();
    const dir = await Deno.makeTempDir({ prefix: `${this.name(role)}-` });
    this.#dirs.push(dir);
    await this.#saveMarker();
    return dir;
  }

  /** Run `fn` on dispose, before children are stopped and namespaces deleted (LIFO). */
  defer(what: string, fn: () => void | Promise<void>): void {
    this.#alive();
    this.#deferred.push({ what, fn });
  }

  /** The namespaces created so far (names). */
  get namespaces(): readonly string[] {
    return [...this.#netns];
  }

  /** The temp dirs created so far. */
  get dirs(): readonly string[] {
    return [...this.#dirs];
  }

  /**
   * Seed 002: the "host" namespace has an uplink `eth0` (192.168.10.22/24,
   * fd10::22/64; its peer `eth0p` in "router" has .1/::1) and a master `eth1`
   * (up, no address) whose peer `lan0` in "lan" has 192.168.122.1/24 and
   * fd22::1/64. Plus an empty "ctr" namespace. IPv6 addresses skip DAD.
   */
  async seed002(): Promise<Seed002> {
    const net = await this.seed002Net();
    const ctr = await this.netns("ctr");
    return { ...net, ctr, ctrPath: this.path(ctr) };
  }

  /** {@linkcode Lab.seed002} without the container namespace (callers add their own). */
  async seed002Net(): Promise<Seed002Net> {
    const host = await this.netns("host");
    const router = await this.netns("router");
    const lan = await this.netns("lan");
    await this.veth(host, "eth0", router, "eth0p");
    await this.veth(host, "eth1", lan, "lan0");
    await this.ip(host, "addr", "add", "192.168.10.22/24", "dev", "eth0");
    await this.ip(host, "addr", "add", "fd10::22/64", "dev", "eth0", "nodad");
    await this.ip(router, "addr", "add", "192.168.10.1/24", "dev", "eth0p");
    await this.ip(router, "addr", "add", "fd10::1/64", "dev", "eth0p", "nodad");
    await this.ip(lan, "addr", "add", "192.168.122.1/24", "dev", "lan0");
    await this.ip(lan, "addr", "add", "fd22::1/64", "dev", "lan0", "nodad");
    return { host, router, lan, master: "eth1", uplink: "eth0", lanIf: "lan0" };
  }

  /**
   * The simple lab of real-clients.md §1: "host" with master `lab0` (veth, up,
   * no address), its peer `lab0p` in "peer" with 10.99.0.1/24, and an empty
   * "ctr" namespace.
   */
  async simple(): Promise<SimpleLab> {
    const host = await this.netns("host");
    const peer = await this.netns("peer");
    const ctr = await this.netns("ctr");
    await this.veth(host, "lab0", peer, "lab0p");
    await this.ip(peer, "addr", "add", "10.99.0.1/24", "dev", "lab0p");
    return { host, peer, ctr, ctrPath: this.path(ctr), master: "lab0", peerIf: "lab0p" };
  }

  /** Remove everything; idempotent; never throws (failures are logged and kept in the marker). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#pending;
    const failed: string[] = [];
    const fail = (what: string, err: unknown) => {
      failed.push(`${what}: ${errText(err)}`);
      labLog(`${this.id}: cannot ${what}: ${errText(err)}`);
    };

    for (const step of this.#deferred.reverse()) {
      try {
        await step.fn();
      } catch (err) {
        fail(step.what, err);
      }
    }
    this.#deferred = [];

    for (const [pid, { child, what }] of [...this.#children]) {
      try {
        await stopChild(child, 2000);
      } catch (err) {
        fail(`stop ${what} (pid ${pid})`, err);
      }
    }

    for (const ns of [...this.#netns].reverse()) {
      try {
        await deleteNetns(ns);
      } catch (err) {
        fail(`delete namespace ${ns}`, err);
      }
    }

    for (const dir of this.#dirs) {
      try {
        await Deno.remove(dir, { recursive: true });
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) fail(`remove ${dir}`, err);
      }
    }

    try {
      if (failed.length === 0) {
        await Deno.remove(markerPath(this.id));
      } else {
        this.#marker.failed = failed;
        await Deno.writeTextFile(markerPath(this.id), JSON.stringify(this.#marker));
      }
    } catch (err) {
      labLog(`${this.id}: cannot update marker: ${errText(err)}`);
    }
  }

  #alive(): void {
    if (this.#disposed) throw new Error(`Lab ${this.id} is disposed`);
  }

  #own(ns: string): void {
    // Refuse anything that is not ours: this is what keeps tests off the root namespace.
    if (!this.#netns.includes(ns)) {
      throw new Error(`Namespace "${ns}" does not belong to lab ${this.id}`);
    }
  }

  async #saveMarker(): Promise<void> {
    this.#marker.netns = [...this.#netns];
    this.#marker.dirs = [...this.#dirs];
    await Deno.writeTextFile(markerPath(this.id), JSON.stringify(this.#marker));
  }
}

/** A temp dir for host-local's `dataDir`, removed with the lab. */
export function ipamDataDir(lab: Lab): Promise<string> {
  return lab.tempDir("ipam");
}

/** The marker file of lab `id`. */
export function markerPath(id: string): string {
  return `${MARKER_DIR}/${id}`;
}

/** The lab id a namespace or temp-dir name belongs to, if it has the lab shape. */
export function labIdOf(name: string): string | undefined {
  const base = name.slice(name.lastIndexOf("/") + 1);
  return /^([a-z0-9]{1,8}-\d+-\d+)-[a-z0-9]/.exec(base)?.[1];
}

/** Whether process `pid` exists. */
export function pidAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Names of all namespaces in `/run/netns` (`ip netns list`). */
export async function listNetns(): Promise<string[]> {
  const out = await runOk(["ip", "netns", "list"]);
  return out.split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "").filter((n) => n !== "");
}

async function stopChild(child: Deno.ChildProcess, graceMs: number): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGTERM");
  } catch {
    // exited meanwhile
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([
    child.status.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs))),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
  return await child.status;
}

/**
 * Delete a lab namespace: kill whatever still runs inside it (a process
 * keeps a namespace, and its links, alive after the unmount), then
 * `ip netns del`. Throws if it is still mounted afterwards.
 */
async function deleteNetns(ns: string): Promise<void> {
  if (!(await exists(`${NETNS_DIR}/${ns}`))) return;
  const pids = await run(["ip", "netns", "pids", ns]);
  for (const p of pids.stdout.split(/\s+/).filter((s) => /^\d+$/.test(s))) {
    const pid = Number(p);
    if (pid === Deno.pid) continue;
    try {
      Deno.kill(pid, "SIGKILL");
      labLog(`killed pid ${pid} left in namespace ${ns}`);
    } catch {
      // gone already
    }
  }
  let last = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = await run(["ip", "netns", "del", ns]);
    if (!(await exists(`${NETNS_DIR}/${ns}`))) return;
    last = r.stderr.trim();
    await new Promise((res) => setTimeout(res, 100 * (attempt + 1)));
  }
  throw new Error(`ip netns del ${ns}: ${last || "still present"}`);
}

/** Whether `path` exists (without following a final symlink). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
