/**
 * Give the kernel back the pages of the Deno executable that only start-up
 * used. A Deno process that serves HTTP/2 touches ~40 MiB of its ~90 MiB
 * executable (V8's snapshot, start-up code, the module loader); a long-running
 * daemon keeps them resident, and counted in its RSS, for ever. After
 * start-up (and after each registration burst) the device plugin asks for
 * its executable's read-only mappings to be paged out (`MADV_PAGEOUT`, Linux
 * 5.4+): clean file pages mapped by this process alone are dropped, the code
 * it keeps running faults back in at its next use, and pages that another
 * process also maps (the CNI's Deno) are left alone by the kernel. Writable
 * mappings and anonymous memory (the heaps) are not advised.
 *
 * @module
 */

import { libc } from "../internal/_libc.ts";

const MADV_PAGEOUT = 21;

/** One mapping of `/proc/self/maps`. */
export interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
}

/** Parse `/proc/<pid>/maps` text. */
export function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (m) {
      out.push({ start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), perms: m[3]!, path: m[4]! });
    }
  }
  return out;
}

/** The mappings {@linkcode trimExecutablePages} advises: read-only or executable views of `file`. */
export function trimmable(maps: readonly Mapping[], file: string): Mapping[] {
  return maps.filter((m) => m.path === file && !m.perms.includes("w"));
}

/**
 * Page out this process's read-only mappings of its own executable.
 *
 * @returns the bytes advised (0 when the kernel refused, e.g. before 5.4)
 */
export function trimExecutablePages(): number {
  const exe = Deno.realPathSync(Deno.execPath());
  let advised = 0;
  for (const m of trimmable(parseMaps(Deno.readTextFileSync("/proc/self/maps")), exe)) {
    const len = m.end - m.start;
    if (libc().madvise(Deno.UnsafePointer.create(m.start), len, MADV_PAGEOUT) === 0) {
      advised += Number(len);
    }
  }
  return advised;
}
