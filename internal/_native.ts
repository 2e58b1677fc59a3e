/**
 * Native symbols bound one by one, on first use, without a JIT per symbol.
 *
 * `Deno.dlopen` compiles a fast-call trampoline (Cranelift) for every symbol
 * of its table at once: ≈0.12 ms a symbol, ≈3 ms for the 26 a CNI ADD with
 * IPAM declares, most of which a given command never calls. Here the library
 * is opened with libc's `dlopen`, and each symbol becomes a
 * `Deno.UnsafeFnPointer` (a libffi call, ≈1 µs slower per call, no
 * compilation) the first time it is read: ≈0.04 ms a symbol used, nothing for
 * one never used. Only `dlopen`, `dlsym` and `dlerror` go through
 * `Deno.dlopen` (once per process, without a trampoline either).
 *
 * The tables stay ordinary `Deno.ForeignLibraryInterface`s with C signatures
 * in comments; the result has the same type as `Deno.dlopen(…).symbols`, and
 * `nonblocking` symbols still run on a pool thread and return promises.
 *
 * {@linkcode openLibrary} adds what every library of this project needs: a
 * path override from the environment, a timing span, and a
 * {@linkcode LibraryLoadError} naming the soname and that override.
 *
 * @module
 */

import { span } from "./_timing.ts";

/**
 * The loader's own three symbols return `void *` declared as a struct of one
 * pointer: x86-64 (SysV) and aarch64 (AAPCS64) return such a struct in the
 * same register as a pointer, and a struct result keeps Deno from building a
 * Cranelift fast-call trampoline, whose first use costs ≈0.4 ms and ≈1.5 MB
 * of RSS. They are called a handful of times per process.
 */
const VOID_P = { struct: ["pointer"] } as const;

const dl = {
  /** void *dlopen(const char *filename, int flags) */
  dlopen: { parameters: ["buffer", "i32"], result: VOID_P },
  /** void *dlsym(void *handle, const char *symbol) */
  dlsym: { parameters: ["pointer", "buffer"], result: VOID_P },
  /** char *dlerror(void) */
  dlerror: { parameters: [], result: VOID_P },
} as const satisfies Deno.ForeignLibraryInterface;

/** The pointer in a one-pointer struct result (host byte order); `null` for NULL. */
function pointerOf(struct: Uint8Array): Deno.PointerValue {
  return Deno.UnsafePointer.create(new BigUint64Array(struct.slice(0, 8).buffer)[0]!);
}

const RTLD_NOW = 2;

let dlfns: Deno.DynamicLibrary<typeof dl>["symbols"] | undefined;

/**
 * A NUL-terminated C string for `buffer` parameters. Its `ArrayBuffer` is
 * allocated explicitly, so V8 keeps the bytes off its heap however short the
 * string is.
 *
 * @param s The string (UTF-8 encoded).
 * @returns Its bytes and a NUL.
 * @example
 * ```ts
 * import { cstr } from "./_native.ts";
 * if (cstr("eth0").length !== 5) throw new Error("no NUL");
 * ```
 */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const raw = new TextEncoder().encode(s);
  const out = new Uint8Array(new ArrayBuffer(raw.length + 1));
  out.set(raw);
  return out;
}

function dlerrorText(fallback: string): string {
  const p = dlfns ? pointerOf(dlfns.dlerror()) : null;
  return p ? Deno.UnsafePointerView.getCString(p) : fallback;
}

/**
 * Open `path` now (`dlopen(3)`, RTLD_NOW) and return its symbols, each bound
 * on first access.
 *
 * @param path A soname (`libmnl.so.0`) or a path.
 * @param symbols The symbol table.
 * @returns An object shaped like `Deno.dlopen(path, symbols).symbols`.
 * @throws {Error} the `dlerror()` text when the library cannot be opened; on
 *   first access of a symbol the library lacks.
 */
export function openLazily<S extends Deno.ForeignLibraryInterface>(
  path: string,
  symbols: S,
): Deno.DynamicLibrary<S>["symbols"] {
  // dlopen, dlsym and dlerror live in libc.so.6 since glibc 2.34.
  dlfns ??= Deno.dlopen("libc.so.6", dl).symbols;
  const handle = pointerOf(dlfns.dlopen(cstr(path), RTLD_NOW));
  if (!handle) throw new Error(dlerrorText(`cannot open ${path}`));
  const out = {} as Record<string, unknown>;
  for (const [name, def] of Object.entries(symbols)) {
    Object.defineProperty(out, name, {
      configurable: true,
      enumerable: true,
      get() {
        // A table may bind one symbol twice under two keys (`name` says which).
        const symbol = (def as Deno.ForeignFunction).name ?? name;
        const ptr = pointerOf(dlfns!.dlsym(handle, cstr(symbol)));
        if (!ptr) throw new Error(dlerrorText(`${path}: undefined symbol: ${symbol}`));
        const fn = new Deno.UnsafeFnPointer(
          ptr as Deno.PointerObject<Deno.ForeignFunction>,
          def as Deno.ForeignFunction,
        );
        const call = (...args: unknown[]) => (fn.call as (...a: unknown[]) => unknown)(...args);
        Object.defineProperty(out, name, { value: call, enumerable: true });
        return call;
      },
    });
  }
  return out as Deno.DynamicLibrary<S>["symbols"];
}

/**
 * Raised when a native library cannot be loaded; `cause` is the dlopen error
 * and the message names the soname, the package and the env override.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LibraryLoadError } from "./_native.ts";
 *
 * const err = new LibraryLoadError("libmnl.so.0", "MACVTAP_LIBMNL", new Error("not found"));
 * assert.match(err.message, /apt-get install libmnl0/);
 * assert.match(err.message, /MACVTAP_LIBMNL/);
 *
 * // A path from the env var that does not load: the message says so, no package advice.
 * const bad = new LibraryLoadError("/opt/x.so", "MACVTAP_LIBMNL", new Error("bad ELF"), true);
 * assert.match(bad.message, /MACVTAP_LIBMNL=\/opt\/x\.so does not load/);
 * assert.doesNotMatch(bad.message, /apt-get/);
 * ```
 */
export class LibraryLoadError extends Error {
  /**
   * Build the error.
   *
   * @param soname The library tried.
   * @param envVar The env var that overrides its path.
   * @param cause The dlopen error.
   * @param fromEnv `soname` is the path `envVar` named (then the fix is the
   *   variable or that file, not a package).
   */
  constructor(soname: string, envVar: string, cause: unknown, fromEnv = false) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      fromEnv
        ? `Cannot load ${soname}: ${why}. ${envVar}=${soname} does not load: ` +
          `point ${envVar} at a loadable library of this architecture, or unset it`
        : `Cannot load ${soname}: ${why}. Install it (Debian: apt-get install ${
          soname.startsWith("libmnl") ? "libmnl0" : "libc6"
        }) or set ${envVar} to its path`,
      { cause },
    );
    this.name = "LibraryLoadError";
  }
}

/**
 * Open a library with {@linkcode openLazily}, at the path `envVar` names or
 * at `soname`.
 *
 * @param envVar The env var that overrides the path (read only with
 *   `--allow-env`: `--allow-ffi` alone must do).
 * @param soname The default soname, e.g. `libmnl.so.0`.
 * @param symbols The symbol table.
 * @returns The lazily bound symbols.
 * @throws {LibraryLoadError} when the library cannot be opened.
 */
export function openLibrary<S extends Deno.ForeignLibraryInterface>(
  envVar: string,
  soname: string,
  symbols: S,
): Deno.DynamicLibrary<S>["symbols"] {
  const override = envOverride(envVar);
  const path = override || soname;
  const t0 = performance.now();
  try {
    return openLazily(path, symbols);
  } catch (err) {
    throw new LibraryLoadError(path, envVar, err, Boolean(override));
  } finally {
    span(`dlopen ${path} (${Object.keys(symbols).length})`, t0);
  }
}

function envOverride(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
