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
 * @module
 */

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

function cString(s: string): Uint8Array<ArrayBuffer> {
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
  const handle = pointerOf(dlfns.dlopen(cString(path), RTLD_NOW));
  if (!handle) throw new Error(dlerrorText(`cannot open ${path}`));
  const out = {} as Record<string, unknown>;
  for (const [name, def] of Object.entries(symbols)) {
    Object.defineProperty(out, name, {
      configurable: true,
      enumerable: true,
      get() {
        const ptr = pointerOf(dlfns!.dlsym(handle, cString(name)));
        if (!ptr) throw new Error(dlerrorText(`${path}: undefined symbol: ${name}`));
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
