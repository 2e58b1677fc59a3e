/**
 * The one rule for the launcher's cache directory (`DENO_DIR`) and every
 * file the plugin reads back from it (the V8 code cache, Deno's analysis
 * caches, the code-cache stamps, the IPAM version cache).
 *
 * Deno reads that directory before any plugin code runs: whoever can write
 * into it, or replace it or any of its parents, can plant V8 bytecode that
 * the next root call runs. So a cache path is used only when it and every
 * directory above it up to `/` are:
 *
 * - owned by root (uid 0),
 * - not writable by group or others (mode & 0o022 === 0),
 * - not a symlink (checked with lstat: a link's target is not what was checked);
 *
 * and, for the cache directory itself, every entry directly in it too (a
 * file planted while the directory was once open stays after a chmod).
 *
 * The shell header of `dist/macvtap` applies this same rule with `find(1)`
 * before it execs Deno ({@linkcode launcherCheck}); the install creates the
 * directories so ({@linkcode ensureTrustedDir}); the code-cache stamp and the
 * IPAM version cache read and write only where {@linkcode untrustedReason}
 * says nothing.
 *
 * @module
 */

/** Why `st` (of `path`) fails the rule, or `undefined`. */
function entryProblem(path: string, st: Deno.FileInfo): string | undefined {
  if (st.isSymlink) return `"${path}" is a symlink`;
  if (st.uid !== 0) return `"${path}" is owned by uid ${st.uid}, not root`;
  if ((st.mode ?? 0o777) & 0o022) {
    return `"${path}" is writable by group or others (mode ${
      ((st.mode ?? 0) & 0o7777).toString(8).padStart(4, "0")
    })`;
  }
  return undefined;
}

/** `path` and each directory above it, `/` first. */
export function pathChain(path: string): string[] {
  const parts = path.split("/").filter((p) => p !== "");
  const out = ["/"];
  for (let i = 1; i <= parts.length; i++) out.push("/" + parts.slice(0, i).join("/"));
  return out;
}

/**
 * Why the cache path `path` may not be used, or `undefined` when it may.
 *
 * @param path An absolute path (a directory, or a file in a trusted one).
 * @param options `entries: true` also checks every entry directly in `path`
 *   (for the cache directory itself, as the launcher does).
 * @returns The first problem found, or `undefined`.
 */
export function untrustedReason(
  path: string,
  options: { entries?: boolean } = {},
): string | undefined {
  if (!path.startsWith("/") || path.includes("\0")) return `"${path}" is not an absolute path`;
  if (path.split("/").some((p) => p === "." || p === "..")) {
    return `"${path}" has a '.' or '..' component`;
  }
  for (const p of pathChain(path)) {
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(p);
    } catch (err) {
      return `cannot look at "${p}": ${err instanceof Error ? err.message : String(err)}`;
    }
    const problem = entryProblem(p, st);
    if (problem) return problem;
  }
  if (options.entries) {
    try {
      for (const e of Deno.readDirSync(path)) {
        const p = `${path === "/" ? "" : path}/${e.name}`;
        const problem = entryProblem(p, Deno.lstatSync(p));
        if (problem) return problem;
      }
    } catch (err) {
      return `cannot list "${path}": ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  return undefined;
}

/** The characters a launcher's cache path may hold (it is written into a shell line). */
export const CACHE_PATH_RE = /^(\/[A-Za-z0-9._-]+)+$/;

/**
 * The shell code of the launcher's check: it sets `d` to the cache dir when
 * the rule holds and to a path that cannot exist otherwise (Deno then keeps
 * its caches in memory; the warning says why), and `n` to `--no-code-cache`
 * in that case. `find` prints every path of the chain, and every entry of
 * the directory, that is not owned by root, is writable by group or others
 * (a symlink is 0777), or cannot be looked at (its error, via `2>&1`).
 *
 * @param denoDir The cache directory (matching {@linkcode CACHE_PATH_RE}, not `/`).
 * @returns One line of POSIX shell.
 */
export function launcherCheck(denoDir: string): string {
  if (!CACHE_PATH_RE.test(denoDir) || denoDir.split("/").some((p) => p === "." || p === "..")) {
    throw new TypeError(`cache dir "${denoDir}" must be an absolute path of [A-Za-z0-9._-] parts`);
  }
  const chain = pathChain(denoDir);
  return `d=${denoDir} n=; u=$(PATH=/usr/bin:/bin:/usr/sbin:/sbin LC_ALL=C find ${
    chain.join(" ")
  } ` +
    `-maxdepth 1 \\( -path $d -o -path "$d/*" -o -prune \\) ` +
    `\\( ! -user 0 -o -perm -020 -o -perm -002 \\) -print 2>&1); ` +
    `if [ -n "$u" ]; then printf 'macvtap: warning: not using the code cache %s (each path below ` +
    `is not owned by root, is writable by group or others, or cannot be looked at):\\n%s\\n' "$d" "$u" >&2; ` +
    `d=/dev/null/macvtap-no-cache n=--no-code-cache; fi`;
}

/**
 * Make `dir` and its missing parents (mode 0755, owner root, whatever the
 * umask), and check the whole chain with {@linkcode untrustedReason}.
 * Directories from `ownedFrom` down are the plugin's own (a cache: nothing in
 * them is needed): one that fails the rule (say, made 0777 by an older Deno
 * run under umask 000, or holding a file of another user) is removed and made
 * again. A failing directory above `ownedFrom` is not ours to change: it is
 * reported.
 *
 * @param dir The cache directory.
 * @param ownedFrom The outermost directory that is the plugin's own (default:
 *   the parent of `dir`, `/var/cache/macvtap` for the default `DENO_DIR`).
 * @returns `undefined` when `dir` is now trusted, else why not.
 */
export function ensureTrustedDir(dir: string, ownedFrom?: string): string | undefined {
  const chain = pathChain(dir);
  const owned = ownedFrom ?? chain.at(-2) ?? "/";
  const firstOwned = chain.indexOf(owned);
  if (firstOwned < 1) return `"${owned}" is not a directory above "${dir}" (and not "/")`;
  const above = untrustedReason(chain[firstOwned - 1]!);
  if (above) return above;
  for (const p of chain.slice(firstOwned)) {
    const last = p === dir;
    if (untrustedReason(p, { entries: last }) !== undefined) {
      try {
        Deno.lstatSync(p);
        Deno.removeSync(p, { recursive: true });
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) {
          return `cannot remove "${p}": ${err instanceof Error ? err.message : String(err)}`;
        }
      }
      try {
        Deno.mkdirSync(p, { mode: 0o755 });
        Deno.chmodSync(p, 0o755); // the umask narrowed the mode, or at 000 left it as asked
      } catch (err) {
        return `cannot create "${p}": ${err instanceof Error ? err.message : String(err)}`;
      }
    }
  }
  return untrustedReason(dir, { entries: true });
}

/**
 * Create the missing directories of `dir` with mode 0755, whatever the umask
 * (`mkdir -p` would make them 0777 under umask 000). Existing ones are left
 * as they are.
 *
 * @param dir An absolute path.
 * @returns The directories this call created, outermost first.
 */
export function mkdirChain(dir: string): string[] {
  const made: string[] = [];
  for (const p of pathChain(dir).slice(1)) {
    try {
      Deno.mkdirSync(p, { mode: 0o755 });
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) continue;
      throw err;
    }
    Deno.chmodSync(p, 0o755);
    made.push(p);
  }
  return made;
}
