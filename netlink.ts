/**
 * Netlink for Deno over libmnl (`Deno.dlopen`): links, addresses, routes,
 * neighbours, network namespaces, sysctls and events (links, addresses,
 * routes, neighbours), with the names `ip` uses for flags, scopes and
 * protocols.
 *
 * Permissions: `--allow-ffi` for everything (sysctls are read and written
 * through libc, since Deno asks for `--allow-all` before it writes under
 * `/proc`), plus `--allow-read` to open a namespace by path and
 * `--allow-read --allow-write` to create one (`/run/netns`). Changes need
 * root or CAP_NET_ADMIN; reading (`links.list()`, `routes.list()` …) does not.
 * `deno run --allow-ffi --allow-read --allow-write script.ts` runs every
 * example here (tests/module_examples_test.ts runs `deno test --doc` on this
 * module with exactly these flags; the examples that need root and named
 * namespaces are functions there, type-checked but not called).
 *
 * Paths under `/proc/<pid>` (`/proc/self/ns/net`, a CNI_NETNS of
 * `/proc/1234/ns/net`) are stat'ed and opened through libc: `Deno.statSync`
 * and `Deno.readLinkSync` would ask for `--allow-all` there.
 *
 * Every operation is synchronous (one request, one reply) except waiting
 * for events. Errors are {@linkcode NetlinkError}s naming the
 * operation, what it was about and the errno:
 * `RTM_NEWLINK eth9: File exists (EEXIST)`.
 *
 * A namespace is given the same way everywhere (`NetnsRef`: an open
 * {@linkcode Netns} or a path). If the main thread ever cannot return to its
 * namespace after a section inside another, the library throws
 * {@linkcode NetnsRestoreError} and refuses namespace work from then on; it
 * never exits the process.
 *
 * @example The links of our own namespace, like `ip link show` (no root needed)
 * ```ts
 * import { NetlinkHandle } from "./netlink.ts";
 *
 * using h = NetlinkHandle.open();
 * for (const l of h.links.list()) console.log(l.index, l.name, l.kind ?? "");
 * ```
 *
 * @module
 */

export * from "./netlink/mod.ts";
