/**
 * How the VM demos (`deno task demo:vm`, `demo:migrate`) tell their story:
 * sections, lines, counted checks, and the closing verdict. Colours only on a
 * terminal without `NO_COLOR`.
 *
 * @module
 */

const encoder = new TextEncoder();
const tty = Deno.stdout.isTerminal() && Deno.env.get("NO_COLOR") === undefined;
const sgr = (code: string) => (s: string) => tty ? `\x1b[${code}m${s}\x1b[0m` : s;
/** Text styles. */
export const bold: (s: string) => string = sgr("1");
/** Text styles. */
export const dim: (s: string) => string = sgr("2");
/** Text styles. */
export const green: (s: string) => string = sgr("32");
/** Text styles. */
export const red: (s: string) => string = sgr("31");

let failures = 0;

/** One line on stdout. */
export function say(text = ""): void {
  Deno.stdout.writeSync(encoder.encode(`${text}\n`));
}

/** A section heading. */
export function section(name: string): void {
  say();
  say(bold(`── ${name} `.padEnd(72, "─")));
}

/** A check, counted when it fails. */
export function check(ok: boolean, what: string): void {
  if (!ok) failures++;
  say(`  ${ok ? green("✔") : red("✘")} ${what}`);
}

/** Run the demo's story; say the verdict; its exit code (a throw counts as a failed check). */
export async function tell(story: () => Promise<void>): Promise<number> {
  try {
    await story();
  } catch (err) {
    failures++;
    say(red(`failed: ${err instanceof Error ? err.stack : err}`));
  }
  say();
  say(
    failures === 0 ? green(bold("All checks passed.")) : red(bold(`${failures} check(s) failed.`)),
  );
  return failures === 0 ? 0 : 1;
}
