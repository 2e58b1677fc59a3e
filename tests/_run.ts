// deno-lint-ignore-file no-console -- a command-line tool: its summary is its output
/**
 * `deno task test`: runs `deno test ARGS…` the way the suite needs, then
 * says what was not run.
 *
 * - Its own state root: a fresh directory `mt-XXXX` in the caller's
 *   temporary directory becomes `TMPDIR` for the run, so every lab
 *   temp dir, every `stateDir`, the plugin's state and log roots
 *   (lab/cni.ts `TEST_ROOTS`) and the registry `<root>/.statedirs` live in
 *   it; it is removed when `deno test` ends (also on Ctrl-C).
 * - A summary of every test and step that was ignored (from `deno test
 *   --junit-path`), after deno's own.
 * - Not root: the privileged tests (every lab test) were ignored, so the
 *   run fails even when every test that ran passed, unless
 *   `MACVTAP_ALLOW_UNPRIVILEGED=1` accepts a partial run. The last line then
 *   starts with `unprivileged run:` (.ci/run counts it as a failure).
 *
 * Exit status: deno test's when it failed; 1 for a refused unprivileged
 * run; else 0.
 *
 * @module
 */

/** The environment variable that accepts a run without root. */
export const ALLOW_UNPRIVILEGED_ENV = "MACVTAP_ALLOW_UNPRIVILEGED";

/** A test or step the report marks skipped: `file` and `name` (`test > step` for steps). */
export interface NotRun {
  file: string;
  name: string;
}

function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|quot|apos|amp|#(\d+)|#x([0-9a-fA-F]+));/g, (_, e, dec, hex) => {
    if (dec) return String.fromCodePoint(Number(dec));
    if (hex) return String.fromCodePoint(parseInt(hex, 16));
    return { lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" }[e as string] ?? "";
  });
}

/**
 * The skipped test cases of a `deno test --junit-path` report, and how many
 * test cases it has in all (tests and steps).
 */
export function skippedOf(junit: string): { total: number; skipped: NotRun[] } {
  const skipped: NotRun[] = [];
  let total = 0;
  const re = /<testcase name="([^"]*)" classname="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const m of junit.matchAll(re)) {
    total++;
    if (/^\s*<skipped\s*\/>/.test(m[4] ?? "")) {
      skipped.push({ file: unescapeXml(m[2]!), name: unescapeXml(m[1]!) });
    }
  }
  return { total, skipped };
}

/** The summary lines and the exit status of a finished run. */
export function verdict(
  o: {
    testCode: number;
    report: { total: number; skipped: NotRun[] } | undefined;
    root: boolean;
    allowUnprivileged: boolean;
  },
): { lines: string[]; code: number } {
  const lines: string[] = [];
  if (!o.report) {
    lines.push(`no test report: deno test exited ${o.testCode} before writing it`);
  } else if (o.report.skipped.length === 0) {
    lines.push(`not run: none (all ${o.report.total} tests and steps ran)`);
  } else {
    lines.push(
      `NOT RUN: ${o.report.skipped.length} of ${o.report.total} tests and steps were ignored:`,
    );
    for (const s of o.report.skipped) lines.push(`  ${s.file} => ${s.name}`);
  }
  if (o.testCode !== 0) return { lines, code: o.testCode };
  if (o.root) return { lines, code: 0 };
  const n = o.report?.skipped.length ?? 0;
  if (o.allowUnprivileged) {
    lines.push(
      `unprivileged run accepted (${ALLOW_UNPRIVILEGED_ENV}=1): not root, ${n} tests and steps ` +
        `not run`,
    );
    return { lines, code: 0 };
  }
  lines.push(
    `unprivileged run: FAILED: not root, so the privileged tests (${n} ignored above) did not ` +
      `run; run as root (CI does), or set ${ALLOW_UNPRIVILEGED_ENV}=1 to accept a partial run`,
  );
  return { lines, code: 1 };
}

/**
 * A new directory `<tmp>/mt-XXXX`, made exclusively (mkdir fails on anything
 * already there, a symlink included). Short on purpose: tests bind Unix
 * sockets in lab temp dirs below it (`sun_path` holds 107 bytes; the device
 * plugin's `<dir>/macvtap.network.kubevirt.io_<resource>` needs ~90 of them
 * under /tmp), and `makeTempDir`'s 16-character suffix would not fit.
 * Traversable like /tmp (a test may open a directory of its own to another
 * uid, as lab/vm.ts does for qemu), not listable or writable by others.
 */
export function makeRunRoot(tmp: string): string {
  for (let attempt = 0;; attempt++) {
    const rand = crypto.getRandomValues(new Uint16Array(1))[0]!.toString(16).padStart(4, "0");
    const root = `${tmp}/mt-${rand}`;
    try {
      Deno.mkdirSync(root, { mode: 0o700 });
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists && attempt < 100) continue;
      throw err;
    }
    Deno.chmodSync(root, 0o711);
    return root;
  }
}

async function main(args: string[]): Promise<number> {
  const root = makeRunRoot(Deno.env.get("TMPDIR") || "/tmp");
  const junit = `${root}/junit.xml`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", `--junit-path=${junit}`, ...args],
    env: { TMPDIR: root },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // Ctrl-C reaches deno test too (same process group): wait for it, then clean up.
  const onSignal = () => {};
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, onSignal);
  let testCode: number;
  let report: { total: number; skipped: NotRun[] } | undefined;
  try {
    testCode = (await child.status).code;
    try {
      report = skippedOf(Deno.readTextFileSync(junit));
    } catch {
      report = undefined;
    }
  } finally {
    try {
      Deno.removeSync(root, { recursive: true });
    } catch (err) {
      console.error(`cannot remove the test root ${root}: ${err}`);
    }
  }
  const { lines, code } = verdict({
    testCode,
    report,
    root: Deno.uid() === 0,
    allowUnprivileged: Deno.env.get(ALLOW_UNPRIVILEGED_ENV) === "1",
  });
  console.log(`\n${lines.join("\n")}`);
  return code;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
