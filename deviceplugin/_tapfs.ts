/**
 * The real {@linkcode TapNodeFs}: sysfs reads and `mknod(2)` through libc.
 *
 * @module
 */

import { errnoName, errnoText } from "../internal/_errno.ts";
import { cstr, errno, libc } from "../internal/_libc.ts";
import type { TapNodeFs } from "./allocate.ts";
import { makedev } from "./allocate.ts";
import { charDevAt, isLiveDev } from "../internal/_tap_node.ts";

const S_IFCHR = 0o020000;

/** sysfs + libc implementation; `sysfs` defaults to `/sys`. */
export function realTapFs(sysfs = "/sys"): TapNodeFs {
  return {
    readDevNumber(ifname, index): string {
      return Deno.readTextFileSync(`${sysfs}/class/net/${ifname}/macvtap/tap${index}/dev`).trim();
    },
    charDev(path): number | null | undefined {
      return charDevAt(path);
    },
    isLive(dev): boolean {
      return isLiveDev(dev, sysfs);
    },
    remove(path): void {
      Deno.removeSync(path);
    },
    mknod(path, major, minor): void {
      if (libc().mknod(cstr(path), S_IFCHR | 0o600, BigInt(makedev(major, minor))) !== 0) {
        const e = errno();
        throw new Error(
          `mknod ${path} c ${major} ${minor} failed: ${errnoText(e)} (${errnoName(e)})`,
        );
      }
    },
  };
}
