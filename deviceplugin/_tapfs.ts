/**
 * The real {@linkcode TapNodeFs}: sysfs reads and `mknod(2)` through libc.
 *
 * @module
 */

import { LIBC_ENV } from "../netlink/mod.ts";
import type { TapNodeFs } from "./allocate.ts";
import { makedev } from "./allocate.ts";

const S_IFCHR = 0o020000;

let libc:
  | Deno.DynamicLibrary<{
    mknod: { parameters: ["buffer", "u32", "u64"]; result: "i32" };
    __errno_location: { parameters: []; result: "pointer" };
  }>
  | undefined;

/** libc, opened on the first mknod (the same `MACVTAP_LIBC` override as netlink's). */
function c() {
  libc ??= Deno.dlopen(Deno.env.get(LIBC_ENV) ?? "libc.so.6", {
    // int mknod(const char *path, mode_t mode, dev_t dev)
    mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
    // int *__errno_location(void)
    __errno_location: { parameters: [], result: "pointer" },
  });
  return libc.symbols;
}

/** sysfs + libc implementation; `sysfs` defaults to `/sys`. */
export function realTapFs(sysfs = "/sys"): TapNodeFs {
  return {
    readDevNumber(ifname, index): string {
      return Deno.readTextFileSync(`${sysfs}/class/net/${ifname}/macvtap/tap${index}/dev`).trim();
    },
    charDev(path): number | null | undefined {
      try {
        const st = Deno.lstatSync(path);
        return st.isCharDevice ? st.rdev : null;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return undefined;
        throw err;
      }
    },
    remove(path): void {
      Deno.removeSync(path);
    },
    mknod(path, major, minor): void {
      const sym = c();
      const name = new TextEncoder().encode(path + "\0");
      if (sym.mknod(name, S_IFCHR | 0o600, BigInt(makedev(major, minor))) !== 0) {
        const p = sym.__errno_location();
        const errno = p ? new Deno.UnsafePointerView(p).getInt32() : 0;
        throw new Error(`mknod ${path} c ${major} ${minor} failed (errno ${errno})`);
      }
    },
  };
}
