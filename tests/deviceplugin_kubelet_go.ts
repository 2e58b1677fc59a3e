/**
 * The grpc-go kubelet stand-in (`tests/kubelet_go/main.go`), driven from
 * tests: built once per source version from Debian's golang-google-grpc-dev
 * in GOPATH mode (no module proxy), run as a child process, commanded over
 * stdin, observed through its JSON-line events on stdout.
 *
 * @module
 */

import { run } from "../lab/mod.ts";

const SOURCE = new URL("./kubelet_go/main.go", import.meta.url).pathname;
const GOPATH = "/usr/share/gocode";
const CACHE = Deno.env.get("MACVTAP_TEST_CACHE") ?? "/var/cache/macvtap-test";

/** Why the grpc-go stand-in cannot be built here, or `undefined`. */
export function goKubeletMissing(): string | undefined {
  for (const p of ["/usr/bin/go", `${GOPATH}/src/google.golang.org/grpc/server.go`]) {
    try {
      Deno.statSync(p);
    } catch {
      return `${p} missing (tools/setup.sh --e2e installs golang-go and golang-google-grpc-dev)`;
    }
  }
  return undefined;
}

let built: Promise<string> | undefined;

/** Build (or reuse) the stand-in binary; its path. */
export function buildGoKubelet(): Promise<string> {
  built ??= (async () => {
    const src = await Deno.readFile(SOURCE);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", src));
    const tag = Array.from(digest.slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
    const bin = `${CACHE}/kubelet-go-${tag}`;
    try {
      await Deno.stat(bin);
      return bin;
    } catch {
      // build below
    }
    await Deno.mkdir(`${CACHE}/gocache`, { recursive: true });
    const r = await run(["go", "build", "-o", `${bin}.tmp`, SOURCE], {
      env: {
        GOPATH,
        GO111MODULE: "off",
        GOFLAGS: "",
        GOCACHE: `${CACHE}/gocache`,
        GOPROXY: "off",
      },
      timeoutMs: 300_000,
    });
    if (!r.success) throw new Error(`go build ${SOURCE} failed: ${r.stderr}`);
    await Deno.rename(`${bin}.tmp`, bin);
    return bin;
  })();
  return built;
}

/** One event line of the stand-in. */
export interface GoEvent {
  event: "listening" | "registered" | "devices" | "stream-end" | "allocated" | "error";
  resource?: string;
  endpoint?: string;
  devices?: { id: string; health: string }[];
  hostPaths?: string[];
  error?: string;
  cmd?: string;
  /** The kubelet.sock incarnation (listening, registered). */
  gen?: number;
  /** Position in the event log. */
  seq: number;
}

/** How the stand-in restarts: see tests/kubelet_go/main.go. */
export type GoRestart = "goaway" | "graceful" | "abrupt";

/** A running grpc-go kubelet on `<dir>/kubelet.sock`. */
export class GoKubelet implements AsyncDisposable {
  readonly dir: string;
  readonly events: GoEvent[] = [];
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #waiters: (() => void)[] = [];
  #reading: Promise<void>;

  private constructor(dir: string, child: Deno.ChildProcess) {
    this.dir = dir;
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    this.#reading = this.#read();
  }

  /** Start the stand-in (it wipes the directory's sockets and serves kubelet.sock). */
  static async start(dir: string): Promise<GoKubelet> {
    const bin = await buildGoKubelet();
    const child = new Deno.Command(bin, {
      args: [dir],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const k = new GoKubelet(dir, child);
    await k.waitFor((e) => e.event === "listening");
    return k;
  }

  async #read(): Promise<void> {
    const dec = new TextDecoderStream();
    let buf = "";
    for await (const chunk of this.#child.stdout.pipeThrough(dec)) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        this.events.push({ ...JSON.parse(line), seq: this.events.length });
        for (const w of this.#waiters.splice(0)) w();
      }
    }
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The next event index: pass as `since` to wait for what happens after now. */
  get mark(): number {
    return this.events.length;
  }

  /** Wait for an event at or after `since` matching `pred`. */
  async waitFor(
    pred: (e: GoEvent) => boolean,
    options: { since?: number; timeoutMs?: number } = {},
  ): Promise<GoEvent> {
    const since = options.since ?? 0;
    const timeoutMs = options.timeoutMs ?? 10_000;
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const e = this.events.slice(since).find(pred);
      if (e) return e;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(
          `grpc-go kubelet: no matching event within ${timeoutMs} ms; last: ${
            JSON.stringify(this.events.slice(-3))
          }`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The current kubelet.sock incarnation. */
  get gen(): number {
    return this.events.findLast((e) => e.event === "listening")?.gen ?? 0;
  }

  /** Wait for a Register of `resource` with the current kubelet.sock incarnation. */
  waitForRegistration(resource: string, timeoutMs = 10_000): Promise<GoEvent> {
    const gen = this.gen;
    return this.waitFor(
      (e) => e.event === "registered" && e.resource === resource && e.gen === gen,
      { timeoutMs },
    );
  }

  async #send(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
  }

  /** Allocate `ids` for one container on `endpoint`; the host paths, or throws the gRPC error. */
  async allocate(endpoint: string, ids: string[]): Promise<string[]> {
    const since = this.mark;
    await this.#send(`allocate ${endpoint} ${ids.join(" ")}`);
    const e = await this.waitFor(
      (e) => e.event === "allocated" || (e.event === "error" && e.cmd === "allocate"),
      { since },
    );
    if (e.event === "error") throw new Error(`Allocate: ${e.error}`);
    return e.hostPaths ?? [];
  }

  /** Restart in `mode`; with `onlySock` only kubelet.sock is replaced. Resolves once listening. */
  async restart(mode: GoRestart, onlySock = false): Promise<number> {
    const since = this.mark;
    await this.#send(`restart ${mode}${onlySock ? " only-sock" : ""}`);
    await this.waitFor((e) => e.event === "listening", { since, timeoutMs: 20_000 });
    return since;
  }

  /** SIGKILL: a crashed kubelet (sockets left behind, no RST_STREAM, no GOAWAY). */
  async kill9(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await this.#child.status;
    await this.#reading.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.#send("quit");
      await this.#stdin.close();
    } catch {
      // already gone
    }
    const t = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, 5000);
    await this.#child.status;
    clearTimeout(t);
    await this.#reading.catch(() => {});
  }
}
