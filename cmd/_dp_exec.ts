/**
 * How the device plugin's Deno is started: its V8 flags and glibc arenas.
 * Its launcher line (`dist/macvtap-deviceplugin`, tools/build.ts), the
 * DaemonSet's command (deploy/macvtap.yaml, checked by tests/deploy_test.ts)
 * and the compiled `bin/macvtap-deviceplugin` all use these; the CNI's own
 * flags (eager compilation, a large heap: right for a process that lives
 * 30 ms) would let a daemon's heap grow past 130 MiB.
 *
 * @module
 */

/** The device plugin's V8 flags: a small bounded heap, tuned for size. */
export const DP_V8_FLAGS = "--max-old-space-size=48,--max-semi-space-size=1,--optimize-for-size";

/** glibc arenas: one per thread by default (~8 MiB of RSS each under load); two suffice. */
export const DP_MALLOC_ARENA_MAX = "2";
