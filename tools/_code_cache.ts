/**
 * Seeding the V8 code cache of an installed `macvtap` launcher, so that the
 * first CNI call after a build or install already starts from the cache.
 *
 * Deno keys the cache on the script's path and source, so it is seeded where
 * the file will run: `dist/macvtap` after the build, `DIR/macvtap` after the
 * install. The seed is a CNI VERSION call (no side effects): with no stamp
 * yet, the plugin writes its stamp and ends normally, and Deno writes the
 * cache (see internal/_exit.ts).
 *
 * @module
 */

/**
 * Run `file` once as a CNI VERSION call so Deno writes its code cache.
 *
 * @param file The installed launcher.
 * @returns `undefined` on success, else why it failed (a warning: the plugin
 *   still works, its first call writes the cache instead).
 */
export async function seedCodeCache(file: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(file, {
      env: { CNI_COMMAND: "VERSION", PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.success) return undefined;
    return `exit code ${out.code}: ${new TextDecoder().decode(out.stderr).trim()}`;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
