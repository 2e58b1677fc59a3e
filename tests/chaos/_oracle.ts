/**
 * The pure part of the suite, shared by the tests and the in-process worker:
 * a seeded PRNG and the spec oracle for one plugin run. No lab, no I/O.
 *
 * @module
 */

/** A CNI call's outcome as the oracle sees it. */
export interface Outcome {
  /** Exit code of the process (or `runSkel`'s return value). */
  exit: number;
  stdout: string;
  /** Only known for real processes. */
  stderr?: string;
}

/** Codes of the spec's error table (notes §6); plugin-specific codes are ≥ 100. */
export const SPEC_CODES: ReadonlySet<number> = new Set([1, 2, 3, 4, 5, 6, 7, 11, 50, 51]);

/** mulberry32: small, fast and good enough to drive a fuzzer reproducibly. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** A random string of `len` characters drawn from `alphabet`. */
  str(len: number, alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"): string {
    let s = "";
    for (let i = 0; i < len; i++) s += alphabet[this.int(alphabet.length)];
    return s;
  }
}

/** The per-case seed: the run seed mixed with the case index (splitmix-like). */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** What the oracle accepts from one run. */
export interface Expectation {
  /** Whether success is a correct answer. */
  ok: boolean;
  /** Error codes that are correct answers; `"any"` = any legal code. */
  codes: ReadonlySet<number> | "any";
}

/** Whether `code` is a legal CNI error code: the spec table or plugin-specific (≥ 100). */
export function legalCode(code: unknown): boolean {
  return typeof code === "number" && Number.isInteger(code) &&
    (SPEC_CODES.has(code) || code >= 100);
}

/**
 * Check a failed run's stdout: exactly one JSON object
 * `{cniVersion?, code, msg, details?}` with a legal code, no stack trace.
 *
 * @returns the problem, or `undefined`.
 */
export function errorJsonProblem(stdout: string): string | undefined {
  if (/\n\s+at |\bat file:\/\/|Uncaught/.test(stdout)) return "stack trace on stdout";
  let v: unknown;
  try {
    v = JSON.parse(stdout);
  } catch {
    return "stdout is not one JSON document";
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "error is not a JSON object";
  const o = v as Record<string, unknown>;
  const extra = Object.keys(o).filter((k) => !["cniVersion", "code", "msg", "details"].includes(k));
  if (extra.length) return `unexpected keys ${extra.join(",")}`;
  if (!legalCode(o.code)) return `illegal code ${JSON.stringify(o.code)}`;
  if (typeof o.msg !== "string" || o.msg === "") return "msg missing or not a string";
  if ("details" in o && typeof o.details !== "string") return "details not a string";
  if ("cniVersion" in o && typeof o.cniVersion !== "string") return "cniVersion not a string";
  // Input is quoted as a prefix and a length, never whole (cni/errors.ts caps: 1024 and 4096).
  if (o.msg.length > 1100) return `msg of ${o.msg.length} characters`;
  if (typeof o.details === "string" && o.details.length > 4200) {
    return `details of ${o.details.length} characters`;
  }
  if (typeof o.cniVersion === "string" && o.cniVersion.length > 32) {
    return `cniVersion of ${o.cniVersion.length} characters`;
  }
  return undefined;
}

/**
 * Judge one run of `command` against `expect`.
 *
 * @returns the problem, or `undefined` when the answer is acceptable.
 */
export function judge(
  command: string | undefined,
  out: Outcome,
  expect: Expectation,
): string | undefined {
  if (
    out.stderr !== undefined && /error: Uncaught|panicked at|Segmentation fault/.test(out.stderr)
  ) {
    return "crashed (uncaught exception on stderr)";
  }
  const stdout = out.stdout.trim();
  if (out.exit === 0) {
    if (!expect.ok) {
      return `succeeded, expected an error with code ${
        expect.codes === "any" ? "any" : [...expect.codes].join("|")
      }`;
    }
    if (command === "ADD" || command === "VERSION") {
      try {
        const v = JSON.parse(stdout);
        if (typeof v !== "object" || v === null || typeof v.cniVersion !== "string") {
          return "success output lacks cniVersion";
        }
      } catch {
        return "success output is not JSON";
      }
    } else if (stdout !== "") {
      return "unexpected output on success";
    }
    return undefined;
  }
  const problem = errorJsonProblem(stdout);
  if (problem) return problem;
  const code = (JSON.parse(stdout) as { code: number }).code;
  if (expect.codes !== "any" && !expect.codes.has(code)) {
    return `code ${code}, expected ${expect.ok ? "success or " : ""}${[...expect.codes].join("|")}`;
  }
  return undefined;
}

// ------------------------------------------------------------------------
// Ownership scenarios (issue 10).

/** What a scenario step's calls must answer. */
export interface StepExpect extends Expectation {
  /** A regular expression (source, case-insensitive) the error msg must match. */
  msg?: string;
  /** Of the step's parallel calls exactly one succeeds (the others fail). */
  exactlyOne?: boolean;
}

/**
 * Judge the calls of one step (one, or several run at once).
 *
 * @returns the problems, empty when every answer is acceptable.
 */
export function judgeStep(command: string, outs: readonly Outcome[], expect: StepExpect): string[] {
  const problems: string[] = [];
  if (expect.exactlyOne) {
    const wins = outs.filter((o) => o.exit === 0).length;
    if (wins !== 1) {
      problems.push(`${wins} of ${outs.length} concurrent calls succeeded, expected 1`);
    }
    for (const o of outs) {
      const p = judge(command, o, { ok: true, codes: "any" });
      if (p) problems.push(p);
    }
    return problems;
  }
  for (const o of outs) {
    const p = judge(command, o, expect);
    if (p) {
      problems.push(p);
      continue;
    }
    if (o.exit !== 0 && expect.msg) {
      const msg = String((JSON.parse(o.stdout.trim()) as { msg?: unknown }).msg);
      if (!new RegExp(expect.msg, "i").test(msg)) {
        problems.push(`msg ${JSON.stringify(msg)} does not match /${expect.msg}/i`);
      }
    }
  }
  return problems;
}

/** What the ownership oracle compares before and after a scenario. */
export interface OwnershipCensus {
  /** The victim's container links (`ns/ifname`), sorted. */
  victimLinks: string[];
  /** The victim's leases, sorted. */
  victimLeases: string[];
  /** The victim network's record files, sorted. */
  victimRecords: string[];
  /** Every route of the host namespace (all tables), sorted. */
  hostRoutes: string[];
  /** Contents of the sentinel files. */
  sentinels: Record<string, string>;
  /** Links other than `lo` in the attacker's namespaces. */
  attackerLinks: string[];
  /** The attacker network's records and leases. */
  attackerState: string[];
  /** Evidence that something named by a record ran. */
  ran: string[];
}

/**
 * Compare the census after a scenario with the baseline taken before it:
 * the victim keeps every link, lease, record and host route, no sentinel
 * changes, nothing ran, and the attacker's side is empty again.
 *
 * @returns the problems, empty when nothing was harmed or left behind.
 */
export function ownershipProblems(before: OwnershipCensus, after: OwnershipCensus): string[] {
  const problems: string[] = [];
  const diff = (what: string, a: readonly string[], b: readonly string[]) => {
    const lost = a.filter((x) => !b.includes(x));
    const gained = b.filter((x) => !a.includes(x));
    if (lost.length) problems.push(`${what} lost: ${lost.join("; ")}`);
    if (gained.length) problems.push(`${what} gained: ${gained.join("; ")}`);
  };
  diff("victim links", before.victimLinks, after.victimLinks);
  diff("victim leases", before.victimLeases, after.victimLeases);
  diff("victim records", before.victimRecords, after.victimRecords);
  diff("host routes", before.hostRoutes, after.hostRoutes);
  for (const [path, text] of Object.entries(before.sentinels)) {
    if (after.sentinels[path] !== text) problems.push(`sentinel ${path} changed`);
  }
  if (after.attackerLinks.length) problems.push(`attacker links left: ${after.attackerLinks}`);
  if (after.attackerState.length) problems.push(`attacker state left: ${after.attackerState}`);
  if (after.ran.length) problems.push(`ran something: ${after.ran.join("; ")}`);
  return problems;
}
