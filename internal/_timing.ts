/**
 * In-process timing marks for `deno task bench`'s breakdown of where a CNI
 * command's time goes. Off unless `MACVTAP_TIMING=1` is in the environment;
 * then the marks are written to stderr as one line at the end of the process:
 *
 * ```text
 * MACVTAP_TIMING {"marks":[["main",9.1],["config",9.6],…],"spans":[["ipam ADD",10.2,14.9],…]}
 * ```
 *
 * Times are `performance.now()` (ms since the runtime's time origin). A mark
 * closes the stretch since the previous mark; a span is an interval that may
 * overlap others (an IPAM delegate runs while netlink works). Off, a mark costs
 * one boolean test: production pays nothing.
 *
 * @module
 */

function readEnabled(): boolean {
  try {
    return Deno.env.get("MACVTAP_TIMING") === "1";
  } catch {
    return false; // no --allow-env
  }
}

/** Whether marks are recorded (fixed at start-up). */
export const TIMING: boolean = readEnabled();

const marks: [string, number][] = [];
const spans: [string, number, number][] = [];

/**
 * Close the stretch since the previous mark under `label`.
 *
 * @param label What the stretch did.
 */
export function mark(label: string): void {
  if (TIMING) marks.push([label, performance.now()]);
}

/**
 * Record an interval that began at `start` (a `performance.now()` value) and
 * ends now.
 *
 * @param label What ran.
 * @param start When it began.
 */
export function span(label: string, start: number): void {
  if (TIMING) spans.push([label, start, performance.now()]);
}

/** Write the marks to stderr (once, at the end of the process). */
export function flushTiming(): void {
  if (!TIMING || (marks.length === 0 && spans.length === 0)) return;
  const round = (x: number) => Math.round(x * 1000) / 1000;
  const line = `MACVTAP_TIMING ${
    JSON.stringify({
      marks: marks.map(([l, t]) => [l, round(t)]),
      spans: spans.map(([l, a, b]) => [l, round(a), round(b)]),
    })
  }\n`;
  marks.length = 0;
  spans.length = 0;
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(line));
  } catch {
    // stderr closed
  }
}
