/**
 * A real DHCP lab for the `dhcp` IPAM: `dnsmasq` serving a v4 range inside a
 * lab namespace (the LAN side of the master veth), and the reference DHCP
 * daemon (`/usr/lib/cni/dhcp daemon`) in the plugin's namespace listening on
 * a private socket, so IPAM configs use `"daemonSocketPath"` and never the
 * system's `/run/cni/dhcp.sock`.
 *
 * @example Lease an address for the reference macvlan
 * ```ts ignore
 * import { Lab } from "../lab/mod.ts";
 * import { DhcpLab } from "./_dhcp.ts";
 * await using lab = await Lab.create();
 * const s = await lab.seed002();
 * await using dhcp = await DhcpLab.start(lab, {
 *   serverNs: s.lan, serverIf: s.lanIf, pluginNs: s.host,
 *   range: ["192.168.122.100", "192.168.122.150"],
 * });
 * const ipam = dhcp.ipamConfig(); // {type: "dhcp", daemonSocketPath: "/tmp/…/dhcp.sock"}
 * ```
 *
 * @module
 */

import { CNI_BIN, type Lab, labLog, waitFor } from "../lab/mod.ts";
import { errorText } from "../internal/_error_text.ts";

/** The reference DHCP IPAM plugin and daemon. */
export const DHCP_PLUGIN = `${CNI_BIN}/dhcp`;

/** Options for {@linkcode DhcpLab.start}. */
export interface DhcpLabOptions {
  /** Lab namespace that runs dnsmasq (the LAN side, e.g. seed 002's "lan"). */
  serverNs: string;
  /** Interface dnsmasq serves; it must already hold an address in the range's subnet. */
  serverIf: string;
  /** First and last address handed out. */
  range: readonly [string, string];
  /** Default `255.255.255.0`. */
  netmask?: string;
  /** dnsmasq lease time, default `1h` (the CNI daemon renews at half of it). */
  leaseTime?: string;
  /** Lab namespace that runs the CNI dhcp daemon: the plugin's ("host") namespace. */
  pluginNs: string;
  /** Extra dnsmasq arguments, e.g. `["--dhcp-option=option:router,192.168.122.1"]`. */
  dnsmasqArgs?: readonly string[];
  /** How long to wait for each daemon to come up; default 10 s. */
  startTimeoutMs?: number;
}

/** One line of dnsmasq's lease file. */
export interface Lease {
  /** Expiry, seconds since the epoch (0 = infinite). */
  expiry: number;
  mac: string;
  ip: string;
  hostname: string;
  clientId: string;
}

/** The running DHCP server and CNI DHCP daemon; `await using` stops both. */
export class DhcpLab implements AsyncDisposable {
  /** The temp dir holding sockets, pid, lease and log files. */
  readonly dir: string;
  /** The CNI daemon's socket (`ipam.daemonSocketPath`). */
  readonly socketPath: string;
  /** dnsmasq's lease file. */
  readonly leaseFile: string;
  readonly dnsmasqLog: string;
  readonly daemonLog: string;
  #lab: Lab;
  #dnsmasq: Deno.ChildProcess | undefined;
  #daemon: Deno.ChildProcess | undefined;
  #disposed = false;

  private constructor(lab: Lab, dir: string) {
    this.#lab = lab;
    this.dir = dir;
    this.socketPath = `${dir}/dhcp.sock`;
    this.leaseFile = `${dir}/dnsmasq.leases`;
    this.dnsmasqLog = `${dir}/dnsmasq.log`;
    this.daemonLog = `${dir}/cni-dhcp.log`;
  }

  /**
   * Start dnsmasq in `serverNs` and the CNI dhcp daemon in `pluginNs`, and
   * wait until dnsmasq listens on UDP 67 and the daemon's socket exists.
   * On failure both are stopped and the error carries their logs.
   */
  static async start(lab: Lab, options: DhcpLabOptions): Promise<DhcpLab> {
    const dir = await lab.tempDir("dhcp");
    const d = new DhcpLab(lab, dir);
    try {
      await d.#startDnsmasq(options);
      await d.#startDaemon(options);
    } catch (err) {
      const logs = await d.logs();
      await d[Symbol.asyncDispose]();
      throw new Error(
        `DhcpLab did not start: ${errorText(err)}\n${logs}`,
        {
          cause: err,
        },
      );
    }
    lab.defer("stop the DHCP lab", () => d[Symbol.asyncDispose]());
    return d;
  }

  /** The `ipam` section for a plugin config: `{type: "dhcp", daemonSocketPath, ...extra}`. */
  ipamConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { type: "dhcp", daemonSocketPath: this.socketPath, ...extra };
  }

  /** dnsmasq's current leases. */
  async leases(): Promise<Lease[]> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.leaseFile);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    return text.split("\n").filter((l) => l.trim() !== "").map((line) => {
      const [expiry = "0", mac = "", ip = "", hostname = "", clientId = ""] = line.split(" ");
      return { expiry: Number(expiry), mac, ip, hostname, clientId };
    });
  }

  /** Both daemons' logs (for failure messages). */
  async logs(): Promise<string> {
    const read = async (p: string) => {
      try {
        return await Deno.readTextFile(p);
      } catch {
        return "(none)";
      }
    };
    return `--- dnsmasq ---\n${await read(this.dnsmasqLog)}--- cni dhcp daemon ---\n${await read(
      this.daemonLog,
    )}`;
  }

  async #startDnsmasq(o: DhcpLabOptions): Promise<void> {
    const range = `${o.range[0]},${o.range[1]},${o.netmask ?? "255.255.255.0"},${
      o.leaseTime ?? "1h"
    }`;
    const args = [
      "dnsmasq",
      "--keep-in-foreground",
      "--conf-file=/dev/null",
      "--port=0", // no DNS
      "--no-resolv",
      "--no-hosts",
      `--interface=${o.serverIf}`,
      "--bind-interfaces",
      `--dhcp-range=${range}`,
      `--dhcp-leasefile=${this.leaseFile}`,
      `--pid-file=${this.dir}/dnsmasq.pid`,
      "--dhcp-authoritative",
      "--no-ping", // no 3 s ICMP probe before each offer
      "--log-dhcp",
      "--log-facility=-",
      "--user=root",
      "--group=root",
      ...(o.dnsmasqArgs ?? []),
    ];
    this.#dnsmasq = this.#lab.spawn(o.serverNs, withLog(this.dnsmasqLog, args), {
      what: "dnsmasq",
    });
    const timeout = o.startTimeoutMs ?? 10_000;
    const what = `dnsmasq listening on UDP 67 in ${o.serverNs}`;
    await waitFor(
      what,
      whileRunning(what, this.#dnsmasq, async () => {
        const r = await this.#lab.exec(o.serverNs, ["ss", "-Hnlu", "sport", "=", ":67"]);
        return r.success && r.stdout.includes(":67");
      }),
      timeout,
    );
  }

  async #startDaemon(o: DhcpLabOptions): Promise<void> {
    const args = [
      DHCP_PLUGIN,
      "daemon",
      "-socketpath",
      this.socketPath,
      "-pidfile",
      `${this.dir}/cni-dhcp.pid`,
    ];
    this.#daemon = this.#lab.spawn(o.pluginNs, withLog(this.daemonLog, args), {
      what: "cni dhcp daemon",
    });
    const what = `the CNI dhcp daemon socket ${this.socketPath}`;
    await waitFor(
      what,
      whileRunning(what, this.#daemon, async () => {
        try {
          return (await Deno.lstat(this.socketPath)).isSocket === true;
        } catch {
          return false;
        }
      }),
      o.startTimeoutMs ?? 10_000,
    );
  }

  /** Stop both daemons and remove the directory; idempotent, never throws. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const child of [this.#daemon, this.#dnsmasq]) {
      if (!child) continue;
      try {
        await this.#lab.stop(child);
      } catch (err) {
        labLog(
          `DhcpLab: cannot stop pid ${child.pid}: ${errorText(err)}`,
        );
      }
    }
    try {
      await Deno.remove(this.dir, { recursive: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        labLog(`DhcpLab: cannot remove ${this.dir}: ${errorText(err)}`);
      }
    }
  }
}

/** `cmd` with stdout and stderr appended to `log` (the shell execs, so the pid stays the daemon's). */
function withLog(log: string, cmd: readonly string[]): string[] {
  return ["sh", "-c", 'log="$1"; shift; exec "$@" >>"$log" 2>&1', "sh", log, ...cmd];
}

/** `ready`, failing at once (naming `what`) when `child` has exited. */
function whileRunning(
  what: string,
  child: Deno.ChildProcess,
  ready: () => Promise<boolean>,
): () => Promise<boolean> {
  let exited: Deno.CommandStatus | undefined;
  child.status.then((s) => (exited = s), () => {});
  return async () => {
    if (await ready()) return true;
    if (exited) throw new Error(`waiting for ${what}: the process exited with code ${exited.code}`);
    return false;
  };
}
