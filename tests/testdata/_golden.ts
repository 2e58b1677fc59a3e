/**
 * Loads the golden captures of this folder (see `capture.ts`).
 *
 * @module
 */

/** The bytes of `tests/testdata/<name>.hex` (`#` lines are comments). */
export function golden(name: string): Uint8Array {
  const text = Deno.readTextFileSync(new URL(`./${name}.hex`, import.meta.url));
  const hex = text.split("\n").filter((l) => !l.startsWith("#")).join(" ").trim();
  return Uint8Array.from(hex.split(/\s+/), (h) => {
    if (!/^[0-9a-f]{2}$/.test(h)) throw new SyntaxError(`Bad hex byte "${h}" in ${name}.hex`);
    return parseInt(h, 16);
  });
}

/** The `ip …` command a capture came from (its `# $ ` comment). */
export function goldenCommand(name: string): string {
  const text = Deno.readTextFileSync(new URL(`./${name}.hex`, import.meta.url));
  return /^# \$ (.*)$/m.exec(text)?.[1] ?? "";
}
