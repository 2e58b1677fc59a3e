/**
 * Child processes through libc `posix_spawn`, for IPAM delegates.
 *
 * `Deno.Command` costs ~8 ms the first time in a process (process driver,
 * stream setup); a CNI plugin spawns once or twice per call, so that is all
 * first time. `posix_spawn` (vfork-style) with plain pipes costs ~0.3 ms.
 * Spawning, writing stdin and reading are synchronous FFI on the main
 * thread; only waiting (poll, waitpid) runs as `nonblocking` FFI on a pool
 * thread, so the event loop stays free. Never call this inside an `inNetns`
 * section: the child would start in that namespace.
 *
 * @module
 */

import { concatBytes } from "../internal/_bytes.ts";
import { ERRNO, errnoText } from "../internal/_errno.ts";
import {
  cstr,
  cStringArray,
  errno,
  libc,
  O_CLOEXEC,
  POLLERR,
  PollFds,
  POLLHUP,
  POLLIN,
  POLLOUT,
} from "../internal/_libc.ts";

const WNOHANG = 1;
const SIGKILL = 9;
/** Writes of at most PIPE_BUF bytes to a pipe that polls writable never block. */
const PIPE_BUF = 4096;
/** A pipe holds 64 KiB: a first write of that much to a new pipe never blocks. */
const PIPE_CAPACITY = 65536;
/** Slice of each wait, so that the child's exit is noticed with pipes still open. */
const POLL_SLICE_MS = 50;

/** A failed spawn; `errno` `ERRNO.ETXTBSY` means the executable is being written. */
export class SpawnError extends Error {
  readonly errno: number;
  constructor(path: string, errno: number) {
    super(`Cannot run ${path}: ${errnoText(errno)}`);
    this.name = "SpawnError";
    this.errno = errno;
  }
}

/** How a child ended. */
export interface ChildResult {
  /** Exit code (128 + signal when killed by one). */
  code: number;
  success: boolean;
  /** The terminating signal number, if any. */
  signal: number | undefined;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** We killed it: the time limit passed. */
  timedOut: boolean;
  /** We killed it: stdout passed its limit. */
  overflow: boolean;
}

/** Limits for {@linkcode Child.wait}. */
export interface WaitOptions {
  timeoutMs: number;
  maxStdout: number;
  maxStderr: number;
  /** How long to keep reading after the child exited (a grandchild may hold the pipes). */
  exitedGraceMs: number;
}

function makePipe(): [number, number] {
  const fds = new Int32Array(new ArrayBuffer(8));
  if (libc().pipe2(new Uint8Array(fds.buffer), O_CLOEXEC) < 0) {
    throw new SpawnError("pipe2", errno());
  }
  return [fds[0]!, fds[1]!];
}

/** A running child with piped stdin, stdout and stderr. */
export class Child {
  readonly pid: number;
  #stdin: number;
  #stdout: number;
  #stderr: number;
  #input: Uint8Array;
  #written: number;
  #reaped: ChildResult | undefined;

  private constructor(
    pid: number,
    fds: [number, number, number],
    input: Uint8Array,
    written: number,
  ) {
    this.pid = pid;
    [this.#stdin, this.#stdout, this.#stderr] = fds;
    this.#input = input;
    this.#written = written;
  }

  /**
   * Start `path` with exactly `env` as its environment and `input` on its
   * stdin (written as far as the pipe takes it now, the rest while waiting).
   *
   * @throws {SpawnError} when the program cannot be started (ETXTBSY included).
   */
  static spawn(path: string, env: Readonly<Record<string, string>>, input: Uint8Array): Child {
    const c = libc();
    const pipes = [makePipe(), makePipe(), makePipe()];
    const [stdin, stdout, stderr] = pipes as [[number, number], [number, number], [number, number]];
    const fa = new Uint8Array(new ArrayBuffer(128)); // posix_spawn_file_actions_t is 80 bytes
    c.posix_spawn_file_actions_init(fa);
    let pid: number;
    try {
      c.posix_spawn_file_actions_adddup2(fa, stdin[0], 0);
      c.posix_spawn_file_actions_adddup2(fa, stdout[1], 1);
      c.posix_spawn_file_actions_adddup2(fa, stderr[1], 2);
      const argv = cStringArray([path]);
      const envp = cStringArray(Object.entries(env).map(([k, v]) => `${k}=${v}`));
      const pidBuf = new Int32Array(new ArrayBuffer(8));
      const rc = c.posix_spawn(
        new Uint8Array(pidBuf.buffer),
        cstr(path),
        fa,
        null,
        argv.array,
        envp.array,
      );
      // Keep the string blocks alive until the call returned.
      void argv.block, envp.block;
      if (rc !== 0) {
        for (const [r, w] of pipes) c.close(r), c.close(w);
        throw new SpawnError(path, rc);
      }
      pid = pidBuf[0]!;
    } finally {
      c.posix_spawn_file_actions_destroy(fa);
    }
    c.close(stdin[0]);
    c.close(stdout[1]);
    c.close(stderr[1]);
    const child = new Child(pid, [stdin[1], stdout[0], stderr[0]], input, 0);
    child.#writeSome(PIPE_CAPACITY);
    return child;
  }

  /** Write up to `max` more bytes of stdin; close it when all is written (or the child left). */
  #writeSome(max: number): void {
    if (this.#stdin < 0) return;
    const c = libc();
    const end = Math.min(this.#input.length, this.#written + max);
    while (this.#written < end) {
      const chunk = this.#input.subarray(this.#written, end) as Uint8Array<ArrayBuffer>;
      const n = Number(c.write(this.#stdin, chunk, BigInt(chunk.length)));
      if (n < 0) {
        const e = errno();
        if (e === ERRNO.EINTR) continue;
        if (e === ERRNO.EAGAIN) return;
        this.#written = this.#input.length; // EPIPE: the child does not read; stop feeding it
        break;
      }
      this.#written += n;
    }
    if (this.#written >= this.#input.length) {
      c.close(this.#stdin);
      this.#stdin = -1;
    }
  }

  /** Read what is there from `fd` into `sink`; `false` at EOF. */
  static #drain(fd: number, sink: Uint8Array[], budget: { left: number }): boolean {
    const buf = new Uint8Array(new ArrayBuffer(65536));
    const n = Number(libc().read(fd, buf, BigInt(buf.length)));
    if (n < 0) {
      const e = errno();
      return e === ERRNO.EINTR || e === ERRNO.EAGAIN;
    }
    if (n === 0) return false;
    if (budget.left > 0) sink.push(buf.slice(0, Math.min(n, budget.left)));
    budget.left -= n;
    return true;
  }

  #reap(flags: number): number | undefined {
    const status = new Int32Array(new ArrayBuffer(8));
    const pid = libc().waitpid(this.pid, new Uint8Array(status.buffer), flags);
    return pid === this.pid ? status[0]! : undefined;
  }

  #closePipes(): void {
    for (const fd of [this.#stdin, this.#stdout, this.#stderr]) if (fd >= 0) libc().close(fd);
    this.#stdin = this.#stdout = this.#stderr = -1;
  }

  /** Kill the child now (SIGKILL). */
  kill(): void {
    if (!this.#reaped) libc().kill(this.pid, SIGKILL);
  }

  /**
   * Feed stdin, collect stdout and stderr, and reap the child; kill it when
   * `timeoutMs` passes or stdout exceeds its limit.
   */
  async wait(options: WaitOptions): Promise<ChildResult> {
    if (this.#reaped) return this.#reaped;
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    const outBudget = { left: options.maxStdout };
    const errBudget = { left: options.maxStderr };
    let outOpen = true, errOpen = true;
    let timedOut = false, overflow = false;
    let status: number | undefined;
    let exitedAt = 0;
    const deadline = Date.now() + options.timeoutMs;
    const pollfds = new PollFds(3);

    try {
      while (outOpen || errOpen || this.#stdin >= 0) {
        const now = Date.now();
        if (!timedOut && now >= deadline) {
          timedOut = true;
          this.kill();
        }
        if (status === undefined) {
          status = this.#reap(WNOHANG);
          if (status !== undefined) exitedAt = now;
        }
        if (
          status !== undefined &&
          now - exitedAt > (timedOut || overflow ? 100 : options.exitedGraceMs)
        ) {
          break; // a grandchild holds the pipes: stop waiting for EOF
        }
        const fds = [this.#stdin, outOpen ? this.#stdout : -1, errOpen ? this.#stderr : -1];
        fds.forEach((fd, i) => pollfds.set(i, fd, i === 0 ? POLLOUT : POLLIN));
        const ready = await pollfds.poll(POLL_SLICE_MS);
        if (ready <= 0) continue;
        if (this.#stdin >= 0 && pollfds.revents(0) & (POLLOUT | POLLERR | POLLHUP)) {
          this.#writeSome(PIPE_BUF);
        }
        if (outOpen && pollfds.revents(1) & (POLLIN | POLLHUP | POLLERR)) {
          outOpen = Child.#drain(this.#stdout, out, outBudget);
          if (outBudget.left < 0 && !overflow) {
            overflow = true;
            this.kill();
          }
        }
        if (errOpen && pollfds.revents(2) & (POLLIN | POLLHUP | POLLERR)) {
          errOpen = Child.#drain(this.#stderr, err, errBudget);
        }
      }
    } catch (e) {
      // Never leave a child or its pipes behind, whatever failed here.
      this.kill();
      this.#closePipes();
      this.#reap(0);
      throw e;
    }
    this.#closePipes();
    while (status === undefined) {
      status = this.#reap(WNOHANG);
      if (status === undefined) {
        if (!timedOut && Date.now() >= deadline) {
          timedOut = true;
          this.kill();
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    const signal = (status & 0x7f) !== 0 ? status & 0x7f : undefined;
    const code = signal !== undefined ? 128 + signal : (status >> 8) & 0xff;
    return this.#reaped = {
      code,
      success: code === 0,
      signal,
      stdout: concatBytes(out),
      stderr: concatBytes(err),
      timedOut,
      overflow,
    };
  }
}
