/**
 * Attachment records: what ADD did, so DEL and GC can undo it when the
 * namespace (and with it the container's view) is gone.
 *
 * One JSON file per attachment, `<stateDir>/<network>/<containerId>-<ifname>`,
 * written before the side effects it describes (an intent log) and removed
 * once they are undone. Directories are 0700 and files 0600, created by root
 * under a root-owned directory; a symlink in place of the network directory
 * or a record is refused, so a user cannot redirect the writes.
 *
 * @module
 */

import type { HostRoute } from "../hostroute/mod.ts";

/** Default state directory. */
export const DEFAULT_STATE_DIR = "/var/lib/cni/macvtap";

/** What one ADD set up. */
export interface AttachmentRecord {
  containerId: string;
  ifname: string;
  /** CNI_NETNS at ADD time. */
  netns: string;
  /** IPAM plugin type, when IPAM was used. */
  ipamType?: string;
  /** CNI_ARGS at ADD time (IPAM DEL from GC passes them back). */
  cniArgs?: string;
  /** Addresses IPAM returned (CIDR). */
  ips: string[];
  /** hostrouteif name and the host routes added through it. */
  hostrouteif?: string;
  hostRoutes: HostRoute[];
}

/** Reads and writes attachment records under one state directory. */
export class StateStore {
  readonly dir: string;

  constructor(dir: string = DEFAULT_STATE_DIR) {
    this.dir = dir;
  }

  #netDir(network: string): string {
    return `${this.dir}/${network}`;
  }

  #file(network: string, containerId: string, ifname: string): string {
    return `${this.#netDir(network)}/${containerId}-${ifname}`;
  }

  #ensureDir(path: string): void {
    try {
      const st = Deno.lstatSync(path);
      if (!st.isDirectory || st.isSymlink) {
        throw new Error(`State path "${path}" is not a plain directory; refusing to use it`);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      Deno.mkdirSync(path, { recursive: true, mode: 0o700 });
    }
  }

  /** Write (or replace) the record of an attachment, atomically (temp file + rename). */
  write(network: string, rec: AttachmentRecord): void {
    this.#ensureDir(this.dir);
    this.#ensureDir(this.#netDir(network));
    const file = this.#file(network, rec.containerId, rec.ifname);
    const tmp = `${file}.tmp${Deno.pid}`;
    Deno.writeTextFileSync(tmp, JSON.stringify(rec), { mode: 0o600, createNew: false });
    Deno.renameSync(tmp, file);
  }

  /** The record of an attachment, or `undefined`. A corrupt record reads as absent. */
  read(network: string, containerId: string, ifname: string): AttachmentRecord | undefined {
    try {
      const file = this.#file(network, containerId, ifname);
      if (Deno.lstatSync(file).isSymlink) return undefined;
      return parseRecord(Deno.readTextFileSync(file));
    } catch {
      return undefined;
    }
  }

  /**
   * Remove the record of an attachment, and a temporary file a killed writer
   * left for it; missing is fine.
   */
  remove(network: string, containerId: string, ifname: string): void {
    const file = this.#file(network, containerId, ifname);
    const base = file.slice(file.lastIndexOf("/") + 1);
    try {
      Deno.removeSync(file);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    this.#sweep(network, (name) => name.startsWith(`${base}.tmp`));
  }

  /** Remove temporary files whose writer is gone (a process killed mid-write). */
  sweepTemps(network: string): void {
    this.#sweep(network, (name) => {
      const pid = /\.tmp(\d+)$/.exec(name)?.[1];
      return pid !== undefined && Number(pid) !== Deno.pid && !processAlive(Number(pid));
    });
  }

  #sweep(network: string, match: (name: string) => boolean): void {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(this.#netDir(network))];
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isFile || !/\.tmp\d+$/.test(e.name) || !match(e.name)) continue;
      try {
        Deno.removeSync(`${this.#netDir(network)}/${e.name}`);
      } catch {
        // gone meanwhile
      }
    }
  }

  /** Names of the networks with records. */
  networks(): string[] {
    try {
      return [...Deno.readDirSync(this.dir)].filter((e) => e.isDirectory).map((e) => e.name);
    } catch {
      return [];
    }
  }

  /** Every record of a network. */
  list(network: string): AttachmentRecord[] {
    const out: AttachmentRecord[] = [];
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(this.#netDir(network))];
    } catch {
      return out;
    }
    for (const e of entries) {
      if (!e.isFile || e.name.includes(".tmp")) continue;
      try {
        const rec = parseRecord(Deno.readTextFileSync(`${this.#netDir(network)}/${e.name}`));
        if (rec) out.push(rec);
      } catch {
        // unreadable record: skip
      }
    }
    return out;
  }
}

function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

function parseRecord(text: string): AttachmentRecord | undefined {
  const v = JSON.parse(text) as Partial<AttachmentRecord>;
  if (typeof v.containerId !== "string" || typeof v.ifname !== "string") return undefined;
  return {
    containerId: v.containerId,
    ifname: v.ifname,
    netns: typeof v.netns === "string" ? v.netns : "",
    ...(typeof v.ipamType === "string" ? { ipamType: v.ipamType } : {}),
    ...(typeof v.cniArgs === "string" ? { cniArgs: v.cniArgs } : {}),
    ips: Array.isArray(v.ips) ? v.ips.filter((x) => typeof x === "string") : [],
    ...(typeof v.hostrouteif === "string" ? { hostrouteif: v.hostrouteif } : {}),
    hostRoutes: Array.isArray(v.hostRoutes) ? v.hostRoutes : [],
  };
}
