/**
 * The device plugin manager: one {@linkcode ResourcePlugin} per resource,
 * kept served and registered across kubelet restarts, with health from link
 * events.
 *
 * @module
 */

import { Logger } from "../internal/_log.ts";
import type { Link } from "../netlink/mod.ts";
import { KUBELET_SOCKET } from "./_api.ts";
import type { TapNodeFs } from "./allocate.ts";
import {
  DEFAULT_CAPACITY,
  type DevicePluginConfig,
  isValidResourceName,
  MAX_RESOURCES,
  type ResourceConfig,
} from "./config.ts";
import { defaultEligible, type EligibleFn, type LinkBackend, lowerHealthy } from "./links.ts";
import { ResourcePlugin, type ResourcePluginDeps } from "./plugin.ts";
import { registerWithKubelet } from "./registration.ts";
import { errorText } from "../internal/_error_text.ts";

/** Options of {@linkcode DevicePluginManager.start}. */
export interface DevicePluginManagerOptions {
  /** Kubelet's device-plugin directory (holds `kubelet.sock`). */
  socketDir: string;
  config: DevicePluginConfig;
  backend: LinkBackend;
  tapFs: TapNodeFs;
  /** Which links `[]` exposes (default {@linkcode defaultEligible}). */
  eligible?: EligibleFn;
  /** Where `/dev/tapN` nodes are (default `/dev`). */
  devDir?: string;
  log?: Logger;
  /** Safety poll of the sockets besides the directory watch (default 1000 ms). */
  pollIntervalMs?: number;
  /** Register deadline (default 5000 ms). */
  registerTimeoutMs?: number;
  /** Called after each successful Register (the daemon pages out after it; tests measure latency). */
  onRegistered?: (plugin: ResourcePlugin) => void;
  /**
   * Ends {@linkcode DevicePluginManager.start} early (a SIGTERM during
   * start-up): it returns as soon as this is aborted, and the caller stops it.
   */
  signal?: AbortSignal;
  /** Passed to each resource: called with every device Allocate made (the MAC guard). */
  onAllocated?: ResourcePluginDeps["onAllocated"];
}

interface Entry {
  plugin: ResourcePlugin;
  /** The `kubelet.sock` incarnation we registered with (`null`: not registered). */
  registeredWith: string | null;
}

/** Backoff of failed Register calls: 25 ms doubling to 2 s. */
const RETRY_MIN_MS = 25;
const RETRY_MAX_MS = 2000;

/**
 * Runs the device plugin until {@linkcode DevicePluginManager.stop}.
 *
 * - Serves each resource on `<dir>/macvtap.network.kubevirt.io_<name>`, then
 *   registers it.
 * - Watches `<dir>` (inotify via `Deno.watchFs`, plus a 1 s poll as a safety
 *   net): a new `kubelet.sock` (kubelet restarted) or a removed/replaced
 *   plugin socket restarts that server and registers again.
 * - Subscribes to link events: health follows the lower devices; with `[]`
 *   resources appear and disappear with eligible interfaces.
 *
 * @example Usage
 * ```ts ignore
 * await using dp = await DevicePluginManager.start({
 *   socketDir: "/var/lib/kubelet/device-plugins",
 *   config: parseDevicePluginConfig('[{"name":"lan","lowerDevice":"eth1"}]'),
 *   backend: netlinkBackend(),
 *   tapFs: realTapFs(),
 * });
 * ```
 */
export class DevicePluginManager implements AsyncDisposable {
  #o: DevicePluginManagerOptions;
  #log: Logger;
  #eligible: EligibleFn;
  #entries = new Map<string, Entry>();
  #desired: ResourceConfig[] = [];
  #stopped = false;
  #dirty = false;
  #running: Promise<void> | undefined;
  /** Settled once the first reconcile pass is over, whatever its outcome. */
  #firstPass = Promise.withResolvers<void>();
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retryDelay = RETRY_MIN_MS;
  #pollTimer: ReturnType<typeof setInterval> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #watcher: Deno.FsWatcher | undefined;
  #linkSub: { close(): void } | undefined;
  #tasks: Promise<void>[] = [];
  #registrations = 0;
  /**
   * Bumped by every create (or rename into place) of `kubelet.sock` the
   * directory watch reports. A socket removed and re-created at once often gets the
   * old inode back (ext4 reuses a freed inode), so the inode alone cannot
   * tell a new kubelet from the old one; the re-creation event can.
   */
  #kubeletEvents = 0;
  /** Cancels the Register calls in flight when a new kubelet.sock appears. */
  #registerAbort = new AbortController();

  private constructor(options: DevicePluginManagerOptions) {
    this.#o = options;
    this.#log = options.log ?? new Logger({ prefix: "macvtap-dp" });
    this.#eligible = options.eligible ?? defaultEligible();
  }

  /**
   * Start serving and registering. Resolves once every resource's socket is
   * bound and a first registration was attempted: after the first reconcile
   * pass, not once the loop is idle (a kubelet that accepts and never
   * answers keeps it busy for good), or at once when `options.signal` aborts.
   */
  static async start(options: DevicePluginManagerOptions): Promise<DevicePluginManager> {
    const m = new DevicePluginManager(options);
    await Deno.mkdir(options.socketDir, { recursive: true });
    m.#watcher = Deno.watchFs(options.socketDir, { recursive: false });
    m.#tasks.push(m.#watchDir(m.#watcher));
    m.#refreshLinks();
    m.#tasks.push(m.#watchLinks());
    m.#pollTimer = setInterval(() => m.#kick(), options.pollIntervalMs ?? 1000);
    m.#kick();
    const { signal } = options;
    if (!signal) {
      await m.#firstPass.promise;
      return m;
    }
    let onAbort = () => {};
    const aborted = new Promise<void>((resolve) => (onAbort = resolve));
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.race([m.#firstPass.promise, aborted]);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    return m;
  }

  /** The running plugins by resource name suffix. */
  get plugins(): ReadonlyMap<string, ResourcePlugin> {
    return new Map([...this.#entries].map(([k, e]) => [k, e.plugin]));
  }

  /**
   * Resources not served, or not registered with the kubelet now there
   * (deviceplugin/heartbeat.ts reports them).
   */
  get unregistered(): string[] {
    return [...this.#entries].filter(([, e]) => !e.plugin.serving || e.registeredWith === null)
      .map(([name]) => name);
  }

  /**
   * Apply a new config (deviceplugin/config_watch.ts): resources added are
   * served and registered, removed ones stop serving, and one whose lower
   * device, mode or capacity changed is served again under the new values.
   * No device is deleted: macvtaps and `/dev/tapN` in use stay with their pods.
   */
  reconfigure(config: DevicePluginConfig): void {
    this.#o.config = config;
    this.#refreshLinks();
  }

  /** Successful Register calls so far. */
  get registrations(): number {
    return this.#registrations;
  }

  /** Stop everything and remove our sockets. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#firstPass.resolve();
    clearInterval(this.#pollTimer);
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#refreshTimer);
    this.#linkSub?.close();
    try {
      this.#watcher?.close();
    } catch {
      // already closed
    }
    // A Register in flight may take up to its deadline; do not wait for it.
    await Promise.race([this.#running, new Promise((r) => setTimeout(r, 500))]);
    for (const { plugin } of this.#entries.values()) {
      await plugin.stop(this.#o.socketDir).catch((err) =>
        this.#log.warn(`${plugin.resourceName}: stop: ${err}`)
      );
    }
    this.#entries.clear();
    await Promise.allSettled(this.#tasks);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #kick(): void {
    if (this.#stopped) return;
    this.#dirty = true;
    this.#running ??= this.#loop().finally(() => this.#running = undefined);
  }

  async #loop(): Promise<void> {
    while (this.#dirty && !this.#stopped) {
      this.#dirty = false;
      try {
        await this.#reconcile();
      } catch (err) {
        this.#log.error(`reconcile: ${errorText(err)}`);
        this.#scheduleRetry();
      } finally {
        this.#firstPass.resolve();
      }
    }
  }

  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined || this.#stopped) return;
    const delay = this.#retryDelay;
    this.#retryDelay = Math.min(delay * 2, RETRY_MAX_MS);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#kick();
    }, delay);
  }

  async #reconcile(): Promise<void> {
    const dir = this.#o.socketDir;
    // Resource set: add new, stop vanished.
    const desired = new Map(this.#desired.map((r) => [r.name, r]));
    for (const [name, e] of this.#entries) {
      const want = desired.get(name);
      const was = e.plugin.resource;
      if (
        !want || want.lowerDevice !== was.lowerDevice || want.mode !== was.mode ||
        want.capacity !== was.capacity
      ) {
        this.#log.info(`${e.plugin.resourceName}: removed`);
        this.#entries.delete(name);
        await e.plugin.stop(dir);
      }
    }
    for (const [name, r] of desired) {
      if (!this.#entries.has(name)) {
        const plugin = new ResourcePlugin(r, {
          backend: this.#o.backend,
          tapFs: this.#o.tapFs,
          log: this.#log,
          ...(this.#o.devDir ? { devDir: this.#o.devDir } : {}),
          ...(this.#o.onAllocated ? { onAllocated: this.#o.onAllocated } : {}),
        });
        this.#entries.set(name, { plugin, registeredWith: null });
        this.#log.info(
          `${plugin.resourceName}: on ${r.lowerDevice}, mode ${r.mode}, ${r.capacity} devices`,
        );
      }
    }
    this.#applyHealth();

    // Which kubelet is there, read before our sockets: kubelet wipes the
    // directory before it listens on a new kubelet.sock, so once we see the
    // new kubelet.sock, a wipe of our sockets has happened and the check
    // below sees it. (Read after, a wipe could land between our socket check
    // and Register; kubelet would then dial back a socket that is gone.)
    // Incarnations are told apart by the watch's re-creation events, and by
    // inode and mtime for the safety poll (a socket's mtime is its bind time;
    // Deno's ctime is whole seconds, and ext4 hands a re-created socket the
    // freed inode: inode and ctime alone miss a restart within the second).
    const events = this.#kubeletEvents;
    const st = await lstatOrNull(`${dir}/${KUBELET_SOCKET}`);
    if (this.#stopped) return;

    // Sockets: serve again when ours is gone or replaced.
    for (const e of this.#entries.values()) {
      const ino = await inode(`${dir}/${e.plugin.endpoint}`);
      // stop() may have run while we awaited: never serve again after it.
      if (this.#stopped) return;
      if (!e.plugin.serving || ino === null || ino !== e.plugin.socketIno) {
        if (e.plugin.serving) {
          this.#log.info(`${e.plugin.resourceName}: socket gone, serving again`);
        }
        await e.plugin.start(dir);
        e.registeredWith = null;
      }
    }

    // Registration: once per kubelet.sock incarnation.
    if (this.#stopped || st === null) return; // the directory watch wakes us when kubelet is back
    const kubelet = `${events}:${st.ino}:${st.mtime?.getTime()}:${st.ctime?.getTime()}`;
    const pending = [...this.#entries.values()].filter((e) => e.registeredWith !== kubelet);
    const signal = this.#registerAbort.signal;
    const results = await Promise.allSettled(pending.map(async (e) => {
      await registerWithKubelet(dir, e.plugin, {
        timeoutMs: this.#o.registerTimeoutMs ?? 5000,
        signal,
      });
      e.registeredWith = kubelet;
      this.#registrations++;
      this.#log.info(`${e.plugin.resourceName}: registered with kubelet`);
      this.#o.onRegistered?.(e.plugin);
    }));
    const failed = results.flatMap((r, i) =>
      r.status === "rejected" ? [[pending[i]!, r.reason]] : []
    );
    for (const [e, reason] of failed) {
      this.#log.warn(
        `${(e as Entry).plugin.resourceName}: Register failed (will retry): ${errorText(reason)}`,
      );
    }
    if (failed.length > 0) this.#scheduleRetry();
    else this.#retryDelay = RETRY_MIN_MS;
  }

  async #watchDir(watcher: Deno.FsWatcher): Promise<void> {
    try {
      for await (const ev of watcher) {
        if (ev.kind === "access" || ev.kind === "other") continue;
        const names = new Set([
          KUBELET_SOCKET,
          ...[...this.#entries.values()].map((e) => e.plugin.endpoint),
        ]);
        if (ev.paths.some((p) => names.has(p.slice(p.lastIndexOf("/") + 1)))) {
          const kubeletSock = ev.paths.some((p) => p.endsWith(`/${KUBELET_SOCKET}`));
          // A (re-)created kubelet.sock is a new kubelet, whatever its inode.
          if (kubeletSock && (ev.kind === "create" || ev.kind === "rename")) this.#kubeletEvents++;
          if (ev.kind === "create" && kubeletSock) {
            // kubelet is (back) up: a Register still waiting on the old one
            // is dropped, and we register right away, no backoff.
            this.#registerAbort.abort();
            this.#registerAbort = new AbortController();
            clearTimeout(this.#retryTimer);
            this.#retryTimer = undefined;
            this.#retryDelay = RETRY_MIN_MS;
          }
          this.#kick();
        }
      }
    } catch (err) {
      if (!this.#stopped) this.#log.error(`watch ${this.#o.socketDir}: ${err}`);
    }
  }

  #refreshLinks(): void {
    this.#refreshTimer = undefined;
    if (this.#stopped) return;
    let links: Link[];
    try {
      links = this.#o.backend.list();
    } catch (err) {
      this.#log.error(`list links: ${errorText(err)}`);
      return;
    }
    this.#links = new Map(links.map((l) => [l.name, l]));
    const config = this.#o.config;
    let desired = config.discover
      ? links.filter((l) => this.#eligible(l) && isValidResourceName(l.name)).map((l) => ({
        name: l.name,
        lowerDevice: l.name,
        mode: "bridge" as const,
        capacity: DEFAULT_CAPACITY,
      }))
      : config.resources;
    if (desired.length > MAX_RESOURCES) {
      // Those already served stay first, so a new interface never displaces one.
      const served = (r: ResourceConfig) => this.#entries.has(r.name) ? 0 : 1;
      const kept = [...desired].sort((a, b) => served(a) - served(b)).slice(0, MAX_RESOURCES);
      const skipped = desired.filter((r) => !kept.includes(r)).map((r) => r.name);
      const key = skipped.join(",");
      if (key !== this.#skippedKey) {
        this.#log.error(
          `'[]' found ${desired.length} interfaces; serving ${MAX_RESOURCES} (MAX_RESOURCES), ` +
            `not: ${skipped.join(", ")}`,
        );
      }
      this.#skippedKey = key;
      desired = desired.filter((r) => kept.includes(r));
    } else {
      this.#skippedKey = "";
    }
    const changed = JSON.stringify(desired) !== JSON.stringify(this.#desired);
    this.#desired = desired;
    this.#applyHealth();
    if (changed) this.#kick();
  }

  #links = new Map<string, Link>();
  /** The interfaces `[]` left out last time (logged once per change). */
  #skippedKey = "";

  #applyHealth(): void {
    for (const { plugin } of this.#entries.values()) {
      plugin.setHealthy(lowerHealthy(this.#links.get(plugin.resource.lowerDevice)));
    }
  }

  #scheduleRefresh(): void {
    this.#refreshTimer ??= setTimeout(() => this.#refreshLinks(), 0);
  }

  async #watchLinks(): Promise<void> {
    while (!this.#stopped) {
      try {
        const sub = this.#o.backend.subscribe();
        this.#linkSub = sub;
        if (this.#stopped) sub.close();
        // Events may have been missed while (re)subscribing.
        this.#scheduleRefresh();
        for await (const ev of sub) {
          const relevant = this.#o.config.discover
            ? this.#eligible(ev.link) || this.#links.has(ev.link.name)
            : this.#desired.some((r) => r.lowerDevice === ev.link.name);
          if (relevant) this.#scheduleRefresh();
        }
      } catch (err) {
        if (this.#stopped) return;
        this.#log.error(`link events: ${errorText(err)}; resubscribing`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}

async function inode(path: string): Promise<number | null> {
  return (await lstatOrNull(path))?.ino ?? null;
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}
