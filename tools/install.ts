/**
 * `deno task install [--cni-bin-dir DIR] [--from FILE]`: put the built plugin
 * into a CNI bin dir atomically, the way the DaemonSet does.
 *
 * `dist/macvtap` is the CNI plugin alone (the device plugin is
 * `dist/macvtap-deviceplugin`, which a CNI bin dir does not need).
 *
 * The file is written as `DIR/.macvtap.tmp-<pid>`, fsynced, made 0755 and
 * renamed over `DIR/macvtap`, so a runtime exec'ing the plugin sees either the
 * old or the new executable, never a partial one. `DIR` defaults to
 * `/opt/cni/bin`; `--from` defaults to this repository's `dist/macvtap`.
 * Missing directories (the bin dir, the launcher's cache dir) are made 0755
 * whatever the umask; a cache dir that fails the launcher's rule
 * (internal/_trusted_dir.ts) is made again. The code cache is then seeded for
 * the installed path.
 *
 * @module
 */

import { seedCodeCache } from "./_code_cache.ts";
import { mkdirChain } from "../internal/_trusted_dir.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Where CNI runtimes look for plugins by default. */
export const DEFAULT_CNI_BIN_DIR = "/opt/cni/bin";

/** The executable `deno task build` writes. */
export const DEFAULT_SOURCE = `${root}/dist/macvtap`;

/** Options for {@linkcode installPlugin}. */
export interface InstallOptions {
  /** The executable to install (default: dist/macvtap). */
  from?: string;
  /** The CNI bin dir (default /opt/cni/bin); created when missing. */
  cniBinDir?: string;
  /** File name in the bin dir, i.e. the CNI `type` (default "macvtap"). */
  name?: string;
}

/**
 * Copy the plugin into the CNI bin dir atomically (temp file, fsync, chmod
 * 0755, rename).
 *
 * @param opts source, destination dir and name
 * @returns the installed path
 * @throws {Deno.errors.NotFound} when the source is missing (run `deno task build`)
 *
 * @example Install into a scratch dir
 * ```ts ignore
 * const path = await installPlugin({ cniBinDir: "/tmp/cni-bin" });
 * ```
 */
export async function installPlugin(opts: InstallOptions = {}): Promise<string> {
  const from = opts.from ?? DEFAULT_SOURCE;
  const dir = (opts.cniBinDir ?? DEFAULT_CNI_BIN_DIR).replace(/(.)\/+$/, "$1");
  const name = opts.name ?? "macvtap";
  let data: Uint8Array;
  try {
    data = await Deno.readFile(from);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot install "${from}": it does not exist; run \`deno task build\` first`,
        { cause: err },
      );
    }
    throw err;
  }
  // 0755 whatever the umask: the launcher's own directory (internal/_trusted_dir.ts).
  mkdirChain(dir);
  const dest = `${dir}/${name}`;
  const tmp = `${dir}/.${name}.tmp-${Deno.pid}`;
  try {
    const f = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o755 });
    try {
      let off = 0;
      while (off < data.length) off += await f.write(data.subarray(off));
      await f.sync();
    } finally {
      f.close();
    }
    // The umask may have masked the create mode.
    await Deno.chmod(tmp, 0o755);
    await Deno.rename(tmp, dest);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  // Persist the rename itself (best effort: not every filesystem allows a dir fsync).
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // ignore
  }
  return dest;
}

function usage(): string {
  return "usage: deno task install [--cni-bin-dir DIR] [--from FILE]\n" +
    `  --cni-bin-dir DIR    CNI plugin dir (default ${DEFAULT_CNI_BIN_DIR})\n` +
    "  --from FILE          executable to install (default dist/macvtap)\n";
}

/** Parse the command line; throws `TypeError` for bad usage. */
export function parseArgs(args: readonly string[]): InstallOptions & { help?: boolean } {
  const out: InstallOptions & { help?: boolean } = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const [flag, inline] = a.startsWith("--") && a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, undefined];
    const value = (): string => {
      const v = inline ?? args[++i];
      if (!v) throw new TypeError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--cni-bin-dir":
        out.cniBinDir = value();
        break;
      case "--from":
        out.from = value();
        break;
      case "-h":
      case "--help":
        out.help = true;
        break;
      default:
        throw new TypeError(`unknown argument "${a}"`);
    }
  }
  return out;
}

async function main(): Promise<number> {
  const enc = new TextEncoder();
  let opts;
  try {
    opts = parseArgs(Deno.args);
  } catch (err) {
    await Deno.stderr.write(enc.encode(`install: ${(err as Error).message}\n${usage()}`));
    return 2;
  }
  if (opts.help) {
    await Deno.stdout.write(enc.encode(usage()));
    return 0;
  }
  try {
    const dest = await installPlugin(opts);
    const size = (await Deno.stat(dest)).size;
    await Deno.stdout.write(enc.encode(`installed ${dest} (${(size / 1024).toFixed(1)} KiB)\n`));
    // The code cache is keyed on the path: seed it where the plugin now lives.
    const problem = await seedCodeCache(dest);
    if (problem) {
      await Deno.stderr.write(enc.encode(`install: warning: code cache not seeded: ${problem}\n`));
    }
    return 0;
  } catch (err) {
    await Deno.stderr.write(enc.encode(`install: ${(err as Error).message}\n`));
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main());
