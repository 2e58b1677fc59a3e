/**
 * The native symbols: libmnl for the netlink socket, libc for namespaces and
 * errno. Each library is opened on first use and each symbol bound on its
 * first call (internal/_native.ts: a CNI command pays only for the symbols it
 * calls); every symbol but `poll` is synchronous, so a call made inside a
 * netns section runs on the thread that entered it.
 *
 * @module
 */

import { openLazily } from "../internal/_native.ts";
import { span } from "../internal/_timing.ts";

/**
 * Env var naming an alternative path for libmnl (default `libmnl.so.0`).
 *
 * @example Point at a specific build
 * ```ts
 * import { LIBMNL_ENV } from "./mod.ts";
 * console.log(`${LIBMNL_ENV}=/usr/lib/x86_64-linux-gnu/libmnl.so.0`);
 * ```
 */
export const LIBMNL_ENV = "MACVTAP_LIBMNL";
/**
 * Env var naming an alternative path for libc (default `libc.so.6`).
 *
 * @example
 * ```ts
 * import { LIBC_ENV } from "./mod.ts";
 * console.log(`${LIBC_ENV}=/lib/x86_64-linux-gnu/libc.so.6`);
 * ```
 */
export const LIBC_ENV = "MACVTAP_LIBC";

const LIBMNL_DEFAULT = "libmnl.so.0";
const LIBC_DEFAULT = "libc.so.6";

const mnlSymbols = {
  /**
   * struct mnl_socket *mnl_socket_open2(int bus, int flags) (libmnl ≥ 1.0.4).
   * Used with SOCK_CLOEXEC: child processes (IPAM plugins) must not inherit
   * our sockets, which would keep them, and their namespace, alive.
   */
  mnl_socket_open2: { parameters: ["i32", "i32"], result: "pointer" },
  /** int mnl_socket_bind(struct mnl_socket *nl, unsigned int groups, pid_t pid) */
  mnl_socket_bind: { parameters: ["pointer", "u32", "i32"], result: "i32" },
  /** unsigned int mnl_socket_get_portid(const struct mnl_socket *nl) */
  mnl_socket_get_portid: { parameters: ["pointer"], result: "u32" },
  /** int mnl_socket_get_fd(const struct mnl_socket *nl) */
  mnl_socket_get_fd: { parameters: ["pointer"], result: "i32" },
  /** int mnl_socket_setsockopt(const struct mnl_socket *nl, int type, void *buf, socklen_t len) */
  mnl_socket_setsockopt: { parameters: ["pointer", "i32", "buffer", "u32"], result: "i32" },
  /** ssize_t mnl_socket_sendto(const struct mnl_socket *nl, const void *req, size_t siz) */
  mnl_socket_sendto: { parameters: ["pointer", "buffer", "usize"], result: "isize" },
  /** ssize_t mnl_socket_recvfrom(const struct mnl_socket *nl, void *buf, size_t siz) */
  mnl_socket_recvfrom: { parameters: ["pointer", "buffer", "usize"], result: "isize" },
  /** int mnl_socket_close(struct mnl_socket *nl) */
  mnl_socket_close: { parameters: ["pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * libc, in three small tables: Deno compiles a trampoline per symbol (~0.2 ms
 * each), and every CNI call pays for the ones it loads. The hot path needs
 * only the core table.
 */
const libcSymbols = {
  /** int open(const char *path, int flags) (variadic mode omitted) */
  open: { parameters: ["buffer", "i32"], result: "i32" },
  /** int close(int fd) */
  close: { parameters: ["i32"], result: "i32" },
  /** int setns(int fd, int nstype) */
  setns: { parameters: ["i32", "i32"], result: "i32" },
  /** int setsockopt(int fd, int level, int name, const void *val, socklen_t len) */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /** int ioctl(int fd, unsigned long request) (no argument variant) */
  ioctl: { parameters: ["i32", "u64"], result: "i32" },
  /** int *__errno_location(void) */
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libc for creating and deleting named namespaces. */
const libcNsSymbols = {
  /** int unshare(int flags) */
  unshare: { parameters: ["i32"], result: "i32" },
  /** int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const void *data) */
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "pointer"], result: "i32" },
  /** int umount2(const char *target, int flags) */
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  /** int unlink(const char *path) */
  unlink: { parameters: ["buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libc used off the CNI path (events, diagnostics). */
const libcExtraSymbols = {
  /** ssize_t recv(int fd, void *buf, size_t len, int flags) */
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  /** char *strerror(int errnum) */
  strerror: { parameters: ["i32"], result: "pointer" },
  /** int gettid(void) */
  gettid: { parameters: [], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * poll(2) declared `nonblocking`: it runs on a pool thread and only waits for
 * an already-bound fd, so it is namespace-agnostic. Used by link event
 * subscriptions; never call it inside a netns section.
 */
const pollSymbols = {
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout) */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * Raised when a native library cannot be loaded; `cause` is the dlopen error
 * and the message names the soname, the package and the env override.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LibraryLoadError, LIBMNL_ENV } from "./mod.ts";
 *
 * const err = new LibraryLoadError("libmnl.so.0", LIBMNL_ENV, new Error("not found"));
 * assert.match(err.message, /apt-get install libmnl0/);
 * ```
 */
export class LibraryLoadError extends Error {
  /**
   * Build the error.
   *
   * @param soname The library tried.
   * @param envVar The env var that overrides its path.
   * @param cause The dlopen error.
   */
  constructor(soname: string, envVar: string, cause: unknown) {
    super(
      `Cannot load ${soname}: ${cause instanceof Error ? cause.message : cause}. ` +
        `Install it (Debian: apt-get install ${
          soname.startsWith("libmnl") ? "libmnl0" : "libc6"
        }) or set ${envVar} to its path`,
      { cause },
    );
    this.name = "LibraryLoadError";
  }
}

function load<S extends Deno.ForeignLibraryInterface>(
  envVar: string,
  fallback: string,
  symbols: S,
): Deno.DynamicLibrary<S>["symbols"] {
  const path = envOverride(envVar) || fallback;
  const t0 = performance.now();
  try {
    return openLazily(path, symbols);
  } catch (err) {
    throw new LibraryLoadError(path, envVar, err);
  } finally {
    span(`dlopen ${path} (${Object.keys(symbols).length})`, t0);
  }
}

/** The override, or `undefined` (also without `--allow-env`: `--allow-ffi` alone must do). */
function envOverride(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

let mnl: Deno.DynamicLibrary<typeof mnlSymbols>["symbols"] | undefined;
let libc: Deno.DynamicLibrary<typeof libcSymbols>["symbols"] | undefined;
let libcNs: Deno.DynamicLibrary<typeof libcNsSymbols>["symbols"] | undefined;
let libcExtra: Deno.DynamicLibrary<typeof libcExtraSymbols>["symbols"] | undefined;
let pollLib: Deno.DynamicLibrary<typeof pollSymbols>["symbols"] | undefined;

/** libmnl symbols, loaded on first use. */
export function libmnl(): Deno.DynamicLibrary<typeof mnlSymbols>["symbols"] {
  return mnl ??= load(LIBMNL_ENV, LIBMNL_DEFAULT, mnlSymbols);
}

/** libc symbols, loaded on first use. */
export function libC(): Deno.DynamicLibrary<typeof libcSymbols>["symbols"] {
  return libc ??= load(LIBC_ENV, LIBC_DEFAULT, libcSymbols);
}

/** libc symbols for namespace creation and deletion, loaded on first use. */
export function libCNs(): Deno.DynamicLibrary<typeof libcNsSymbols>["symbols"] {
  return libcNs ??= load(LIBC_ENV, LIBC_DEFAULT, libcNsSymbols);
}

/** libc symbols used off the CNI path, loaded on first use. */
export function libCExtra(): Deno.DynamicLibrary<typeof libcExtraSymbols>["symbols"] {
  return libcExtra ??= load(LIBC_ENV, LIBC_DEFAULT, libcExtraSymbols);
}

/** The nonblocking poll symbol, loaded on first use. */
export function libPoll(): Deno.DynamicLibrary<typeof pollSymbols>["symbols"] {
  return pollLib ??= load(LIBC_ENV, LIBC_DEFAULT, pollSymbols);
}

/** errno of the last failing libc/libmnl call on this thread. Read it right away. */
export function errno(): number {
  const p = libC().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** strerror(3) text for an errno. */
export function strerror(err: number): string {
  const p = libCExtra().strerror(err);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${err}`;
}

/** A NUL-terminated C string for `buffer` parameters. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const raw = new TextEncoder().encode(s);
  const out = new Uint8Array(raw.length + 1);
  out.set(raw);
  return out;
}
