/**
 * libmnl, for the netlink socket; libc is internal/_libc.ts. The library is
 * opened on first use and each symbol bound on its first call
 * (internal/_native.ts: a CNI command pays only for the symbols it calls).
 *
 * @module
 */

import { openLibrary } from "../internal/_native.ts";

export { LibraryLoadError } from "../internal/_native.ts";

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

const LIBMNL_DEFAULT = "libmnl.so.0";

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
  /**
   * mnl_socket_sendto again, `nonblocking`: on a pool thread, for requests
   * whose kernel work is long (the socket's namespace is fixed at open, so
   * any thread may send on it).
   */
  mnl_socket_sendto_in_background: {
    name: "mnl_socket_sendto",
    parameters: ["pointer", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  /** ssize_t mnl_socket_recvfrom(const struct mnl_socket *nl, void *buf, size_t siz) */
  mnl_socket_recvfrom: { parameters: ["pointer", "buffer", "usize"], result: "isize" },
  /** int mnl_socket_close(struct mnl_socket *nl) */
  mnl_socket_close: { parameters: ["pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let mnl: Deno.DynamicLibrary<typeof mnlSymbols>["symbols"] | undefined;

/** libmnl symbols, loaded on first use. */
export function libmnl(): Deno.DynamicLibrary<typeof mnlSymbols>["symbols"] {
  return mnl ??= openLibrary(LIBMNL_ENV, LIBMNL_DEFAULT, mnlSymbols);
}
