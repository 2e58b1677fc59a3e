/**
 * Privileged tests of `netlink/` in throwaway namespaces `nlt-<pid>-<n>`,
 * made and removed with the library's own createNetns/deleteNetns. iproute2
 * (`ip -n NS -j -d …`) is the independent oracle. The lab NIC is a veth end
 * inside a test namespace; the root namespace's links are never touched.
 *
 * Run as root: `deno test -A tests/netlink_test.ts`
 */

import assert from "node:assert/strict";
import { FLAGS, requestInBackground } from "../netlink/request.ts";
import { NetlinkSocket } from "../netlink/socket.ts";
import * as C from "../netlink/wire/constants.ts";
import { encodeLinkRef } from "../netlink/wire/message.ts";
import {
  ADDR_FLAGS,
  createNetns,
  currentNetnsId,
  deleteNetns,
  inNetns,
  isErrno,
  LinkNotFoundError,
  type MacvlanMode,
  NEIGH_STATES,
  NetlinkError,
  NetlinkHandle,
  type Netns,
  NetnsNotFoundError,
  openNetns,
  readSysctl,
  ROUTE_PROTOCOLS,
  ROUTE_TABLES,
  SCOPES,
  subscribe,
  subscribeLinks,
  writeSysctl,
} from "../netlink/mod.ts";
import type { NetlinkEvent } from "../netlink/mod.ts";

const privileged = Deno.uid() === 0;
const PREFIX = `nlt-${Deno.pid}-`;
let counter = 0;

// ---------------------------------------------------------------- helpers

interface IpResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `ip …` (outside any netns section). */
function ipRaw(...args: string[]): IpResult {
  const r = new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/** Run `ip -n NS …`, failing the test when it fails. */
function ip(ns: string, ...args: string[]): string {
  const r = ipRaw("-n", ns, ...args);
  if (r.code !== 0) throw new Error(`ip -n ${ns} ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** `ip -n NS -j -d …` parsed. */
function ipJson(ns: string, ...args: string[]): Json[] {
  const out = ip(ns, "-j", "-d", ...args).trim();
  return out ? JSON.parse(out) : [];
}

/** The oracle's view of one link (`ip -j -d link show dev NAME`). */
function ipLink(ns: string, name: string): Json {
  const [l] = ipJson(ns, "link", "show", "dev", name);
  assert.ok(l, `ip sees ${name} in ${ns}`);
  return l;
}

function netnsList(): string[] {
  const out = ipRaw("-j", "netns", "list").stdout.trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((n) => n.name) : [];
}

/**
 * Throwaway namespaces for one test: `ns()` creates `nlt-<pid>-<n>`;
 * disposing closes and deletes them all, also after a failure.
 */
class NsLab implements Disposable {
  readonly #made: { name: string; ns: Netns }[] = [];

  /** A new namespace with `lo` up. */
  ns(): { name: string; ns: Netns; path: string } {
    const name = `${PREFIX}${++counter}`;
    const ns = createNetns(name);
    this.#made.push({ name, ns });
    ip(name, "link", "set", "lo", "up");
    return { name, ns, path: `/run/netns/${name}` };
  }

  /** A namespace with the lab NIC: veth `eth1` (up) whose peer `eth1p` is up too. */
  nsWithNic(): { name: string; ns: Netns; path: string } {
    const n = this.ns();
    ip(n.name, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p");
    ip(n.name, "link", "set", "eth1", "up");
    ip(n.name, "link", "set", "eth1p", "up");
    return n;
  }

  [Symbol.dispose](): void {
    const errors: unknown[] = [];
    for (const { name, ns } of this.#made.reverse()) {
      try {
        ns.close();
        deleteNetns(name);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw new AggregateError(errors, "NsLab cleanup failed");
  }
}

function assertNetlinkError(err: unknown, code: string, op?: string): NetlinkError {
  assert.ok(err instanceof NetlinkError, `NetlinkError, got ${err}`);
  assert.equal(err.code, code, err.message);
  if (op) assert.equal(err.op, op);
  return err;
}

function throwsNetlink(fn: () => unknown, code: string, op?: string): NetlinkError {
  try {
    fn();
  } catch (err) {
    return assertNetlinkError(err, code, op);
  }
  assert.fail(`expected ${code}`);
}

const opts = { ignore: !privileged };

// libc and libmnl are loaded once per process, on first use, and never
// unloaded; load them here so the resource sanitizer does not count them
// against the first test. (Read-only: one RTM_GETLINK in the caller's netns.)
if (privileged) {
  using h = NetlinkHandle.open();
  h.links.get("lo");
}

// ---------------------------------------------------------------- netns

Deno.test("createNetns() and deleteNetns() behave like ip netns add/del", opts, () => {
  const name = `${PREFIX}${++counter}`;
  const ns = createNetns(name);
  try {
    assert.ok(netnsList().includes(name), "visible in `ip netns list`");
    assert.equal(ns.path, `/run/netns/${name}`);
    // ip can use it: only lo inside, down.
    const links = ipJson(name, "link", "show");
    assert.deepEqual(links.map((l: Json) => l.ifname), ["lo"]);
    throwsNetlink(() => createNetns(name), "EEXIST");
    assert.throws(() => createNetns("a/b"), TypeError);
    assert.throws(() => createNetns(".."), TypeError);
  } finally {
    ns.close();
    deleteNetns(name);
  }
  assert.ok(!netnsList().includes(name), "gone from `ip netns list`");
  assert.throws(() => Deno.statSync(`/run/netns/${name}`), Deno.errors.NotFound);
  deleteNetns(name); // missing is fine
});

Deno.test(
  "createNetns(): `using` and delete() remove it, close() keeps it; deleteNetns(Netns)",
  opts,
  () => {
    const names = [1, 2, 3, 4].map(() => `${PREFIX}${++counter}`);
    try {
      {
        using ns = createNetns(names[0]!);
        assert.ok(ns.created && netnsList().includes(names[0]!));
      }
      assert.ok(!netnsList().includes(names[0]!), "using deleted the created namespace");

      const kept = createNetns(names[1]!);
      kept.close();
      assert.ok(netnsList().includes(names[1]!), "close() keeps it");
      deleteNetns(names[1]!);
      assert.ok(!netnsList().includes(names[1]!));

      const made = createNetns(names[2]!);
      made.delete();
      made.delete(); // idempotent
      assert.ok(!netnsList().includes(names[2]!));
      assert.throws(() => made.fd, /closed/);

      const other = createNetns(names[3]!);
      other.close();
      {
        using opened = openNetns(`/run/netns/${names[3]}`);
        assert.ok(!opened.created);
        assert.throws(() => opened.delete(), /opened, not created/);
        assert.ok(netnsList().includes(names[3]!), "an opened namespace is not deleted by using");
        deleteNetns(opened); // on purpose: deletes by path; the fd stays ours
        assert.ok(opened.fd >= 0);
      }
      assert.ok(!netnsList().includes(names[3]!));
    } finally {
      for (const n of names) deleteNetns(n);
    }
  },
);

Deno.test("NetlinkHandle.close() is final, also for a handle on an open Netns", opts, () => {
  using lab = new NsLab();
  const a = lab.ns();
  const h = NetlinkHandle.open({ netns: a.ns });
  assert.equal(h.links.get("lo").name, "lo");
  h.close();
  assert.throws(() => h.links.get("lo"), /NetlinkHandle is closed/);
  assert.throws(() => h.addrs.list(), /NetlinkHandle is closed/);
  h.close(); // idempotent
  assert.ok(a.ns.fd >= 0, "the caller's Netns stays open");
});

Deno.test(
  "links.add() returns the link: echoed here, read back in another namespace given open or by path",
  opts,
  () => {
    using lab = new NsLab();
    const a = lab.nsWithNic();
    const b = lab.ns();
    using h = NetlinkHandle.open({ netns: a.ns });
    const br = h.links.add({ kind: "bridge", name: "br9", mtu: 1400 });
    const oracle = ipLink(a.name, "br9");
    assert.deepEqual([br.index, br.name, br.kind, br.mtu, br.mac], [
      oracle.ifindex,
      "br9",
      "bridge",
      1400,
      oracle.address,
    ]);
    for (const [name, netns] of [["mvt1", b.ns], ["mvt2", b.path]] as const) {
      const tap = h.links.add({ kind: "macvtap", name, parent: "eth1", netns, up: true });
      const there = ipLink(b.name, name);
      assert.deepEqual([tap.index, tap.name, tap.mac, tap.mode], [
        there.ifindex,
        name,
        there.address,
        "bridge",
      ]);
    }
    // With a handle open on the same Netns, the link is read back through its socket.
    using hb = NetlinkHandle.open({ netns: b.ns });
    assert.equal(hb.links.get("lo").index, 1);
    const tap3 = h.links.add({ kind: "macvtap", name: "mvt3", parent: "eth1", netns: b.ns });
    assert.deepEqual([tap3.index, tap3.mac], [
      ipLink(b.name, "mvt3").ifindex,
      ipLink(b.name, "mvt3").address,
    ]);
    // A veth whose peer goes to b by path; the link returned is this end.
    const va = h.links.add({ kind: "veth", name: "va", peer: { name: "vb", netns: b.path } });
    assert.equal(va.index, ipLink(a.name, "va").ifindex);
    assert.ok(ipLink(b.name, "vb"));
    assert.throws(
      () => h.links.add({ kind: "bridge", name: "brx", netns: `/run/netns/${PREFIX}none` }),
      NetnsNotFoundError,
    );
    assert.ok(!h.links.find("brx"));
  },
);

Deno.test("links.set() master and nomaster, like ip link set X master BR / nomaster", opts, () => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  using h = NetlinkHandle.open({ netns: a.ns });
  const br = h.links.add({ kind: "bridge", name: "br0" });
  h.links.set("eth1p", { master: "br0" });
  assert.equal(ipLink(a.name, "eth1p").master, "br0");
  assert.equal(h.links.get("eth1p").masterIndex, br.index);
  h.links.set("eth1p", { master: null });
  assert.equal(ipLink(a.name, "eth1p").master, undefined);
  h.links.set("eth1p", { master: br.index });
  assert.equal(ipLink(a.name, "eth1p").master, "br0");
  assert.throws(() => h.links.set("eth1p", { master: "nope0" }), LinkNotFoundError);
  assert.equal(ipLink(a.name, "eth1p").master, "br0", "a failed set changes nothing");
});

Deno.test("links.set() moves a link to a namespace given by path", opts, () => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  const b = lab.ns();
  using h = NetlinkHandle.open({ netns: a.ns });
  h.links.add({ kind: "veth", name: "vm0", peer: { name: "vm1" } });
  h.links.set("vm0", { netns: b.path });
  assert.ok(!h.links.find("vm0"));
  assert.ok(ipLink(b.name, "vm0"));
});

Deno.test("subscribe() yields link, address, route and neighbour events", opts, async () => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  using events = subscribe({ netns: a.path });
  using h = NetlinkHandle.open({ netns: a.ns });
  h.addrs.add("eth1", "10.7.0.1/24");
  h.routes.add({ family: 4, dst: "10.8.0.0/16", gw: "10.7.0.254", oif: "eth1" });
  h.neighs.add("eth1", { ip: "10.7.0.9", mac: "02:00:00:00:00:09" });
  h.links.add({ kind: "bridge", name: "brev" });
  h.links.del("brev");
  const seen: NetlinkEvent[] = [];
  const want = (e: NetlinkEvent) =>
    e.object === "link" && e.type === "del" && e.link.name === "brev";
  for await (const e of events) {
    seen.push(e);
    if (want(e)) break;
  }
  const has = (pred: (e: NetlinkEvent) => boolean, what: string) =>
    assert.ok(seen.some(pred), `${what} in ${JSON.stringify(seen.map((e) => [e.object, e.type]))}`);
  has((e) => e.object === "addr" && e.type === "new" && e.addr.cidr === "10.7.0.1/24", "addr");
  has(
    (e) => e.object === "route" && e.route.dst === "10.8.0.0/16" && e.route.protocol === "boot",
    "route",
  );
  has((e) => e.object === "neigh" && e.neigh.ip === "10.7.0.9", "neigh");
  has((e) => e.object === "link" && e.type === "new" && e.link.name === "brev", "link");
  assert.throws(() => subscribe({ objects: ["links" as "link"] }), /Unknown event object "links"/);

  // Only the objects asked for.
  using addrsOnly = subscribe({ netns: a.ns, objects: ["addr"] });
  h.links.add({ kind: "bridge", name: "brev2" });
  h.addrs.add("eth1", "10.7.1.1/24");
  const first = await addrsOnly.next();
  assert.equal(first.done, false);
  assert.equal((first.value as NetlinkEvent).object, "addr");
});

Deno.test("sysctls are written and read through libc, in the namespace given", opts, () => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  writeSysctl("net/ipv4/conf/eth1/arp_notify", "1", a.path);
  assert.equal(readSysctl("net.ipv4.conf.eth1.arp_notify", a.ns), "1");
  assert.equal(ip(a.name, "-j", "link").length > 0, true);
  const outside = new Deno.Command("ip", {
    args: ["netns", "exec", a.name, "cat", "/proc/sys/net/ipv4/conf/eth1/arp_notify"],
  }).outputSync();
  assert.equal(new TextDecoder().decode(outside.stdout).trim(), "1");
  assert.throws(() => readSysctl("net/ipv4/conf/nope0/arp_notify", a.ns), Deno.errors.NotFound);
  assert.throws(() => writeSysctl("net/ipv4/conf/eth1/arp_notify", "x", a.ns), NetlinkError);
  assert.throws(() => readSysctl("net/../etc/passwd"), TypeError);
});

Deno.test(
  "a failed return from a namespace throws NetnsRestoreError and poisons netlink; the process lives on",
  opts,
  async () => {
    // In a user namespace of its own (unshare -Urm), the process may create
    // a network namespace but not setns() back into the initial one, which
    // the initial user namespace owns: the restore fails for real.
    const name = `${PREFIX}${++counter}`;
    const lib = new URL("../netlink.ts", import.meta.url).pathname;
    const script = `
import { createNetns, NetlinkHandle, netnsRestoreFailure, NetnsRestoreError } from "${lib}";
try {
  createNetns("${name}");
  console.log("created");
} catch (err) {
  console.log("first " + (err instanceof NetnsRestoreError) + " " + (err as Error).message);
}
console.log("poisoned " + (netnsRestoreFailure() instanceof NetnsRestoreError));
try {
  using h = NetlinkHandle.open();
  h.links.list();
  console.log("listed");
} catch (err) {
  console.log("later " + (err === netnsRestoreFailure()));
}
console.log("alive");
`;
    const file = await Deno.makeTempFile({ suffix: ".ts" });
    try {
      await Deno.writeTextFile(file, script);
      const r = new Deno.Command("unshare", {
        args: [
          "-Urm",
          Deno.execPath(),
          "run",
          "--allow-ffi",
          "--allow-read",
          "--allow-write",
          file,
        ],
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      const out = new TextDecoder().decode(r.stdout);
      assert.equal(r.code, 0, `${out}${new TextDecoder().decode(r.stderr)}`);
      assert.match(out, /^first true Cannot return to the original network namespace/m);
      assert.match(out, /^poisoned true$/m);
      assert.match(out, /^later true$/m);
      assert.match(out, /^alive$/m);
      assert.throws(() => Deno.statSync(`/run/netns/${name}`), Deno.errors.NotFound);
    } finally {
      await Deno.remove(file);
      deleteNetns(name);
    }
  },
);

Deno.test(
  "openNetns() errors: NetnsNotFoundError for a missing path, EINVAL for a non-netns",
  opts,
  () => {
    assert.throws(() => openNetns(`/run/netns/${PREFIX}missing`), (e: unknown) => {
      assert.ok(e instanceof NetnsNotFoundError);
      assert.equal(e.path, `/run/netns/${PREFIX}missing`);
      assert.equal(e.code, "ENOENT");
      return true;
    });
    assert.throws(
      () => NetlinkHandle.open({ netns: `/run/netns/${PREFIX}missing` }),
      NetnsNotFoundError,
    );
    throwsNetlink(() => openNetns("/etc/hostname"), "EINVAL");
    throwsNetlink(() => openNetns("/proc/self/ns/uts"), "EINVAL");
    throwsNetlink(() => openNetns("/run"), "EINVAL");
    // A real one opens and closes idempotently.
    const ns = openNetns("/proc/thread-self/ns/net");
    assert.ok(ns.fd >= 0);
    ns.close();
    ns.close();
    assert.throws(() => ns.fd, /closed/);
  },
);

Deno.test("inNetns() runs a sync callback inside the namespace and comes back", opts, () => {
  using lab = new NsLab();
  const { ns, path } = lab.ns();
  const home = currentNetnsId();
  const want = `net:[${Deno.statSync(path).ino}]`;
  const inside = inNetns(ns, () => Deno.readLinkSync("/proc/thread-self/ns/net"));
  assert.equal(inside, want);
  assert.notEqual(inside, home);
  assert.equal(currentNetnsId(), home);
  // An exception inside still restores the namespace.
  assert.throws(() =>
    inNetns(ns, () => {
      throw new RangeError("boom");
    }), RangeError);
  assert.equal(currentNetnsId(), home);
  // No namespace: runs in place.
  assert.equal(inNetns(undefined, () => currentNetnsId()), home);
});

Deno.test("inNetns() rejects an async callback with TypeError, netns unchanged", opts, async () => {
  using lab = new NsLab();
  const { ns } = lab.ns();
  const home = currentNetnsId();
  let ran = false;
  const asyncFn = async () => {
    ran = true;
    await Promise.resolve();
  };
  // The rule by design: the type of an async callback is rejected at compile time.
  // @ts-expect-error inNetns() takes only synchronous callbacks
  assert.throws(() => inNetns(ns, asyncFn), TypeError);
  assert.ok(ran, "the synchronous part ran (it cannot be prevented), then was refused");
  assert.equal(currentNetnsId(), home);
  // @ts-expect-error a callback returning a promise is refused too
  assert.throws(() => inNetns(ns, () => Promise.resolve(1)), TypeError);
  assert.equal(currentNetnsId(), home);
  // A refused callback that later rejects is not an unhandled rejection.
  // @ts-expect-error async again
  assert.throws(() => inNetns(ns, async () => await Promise.reject(new Error("late"))), TypeError);
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(currentNetnsId(), home);
});

// ---------------------------------------------------------------- links

Deno.test("links.list() and links.get() agree with `ip -j -d link show`", opts, () => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  ip(a.name, "link", "add", "br0", "type", "bridge");
  ip(a.name, "link", "add", "link", "eth1", "name", "mvt0", "type", "macvtap", "mode", "vepa");
  using h = NetlinkHandle.open({ netns: a.ns });
  const ours = h.links.list();
  const theirs = ipJson(a.name, "link", "show");
  assert.deepEqual(
    ours.map((l) => [l.index, l.name]),
    theirs.map((l: Json) => [l.ifindex, l.ifname]),
  );
  for (const t of theirs) {
    const l = h.links.get(t.ifname);
    assert.deepEqual(h.links.get(t.ifindex), l, "by index = by name");
    assert.equal(l.index, t.ifindex);
    assert.equal(l.mtu, t.mtu);
    assert.equal(l.operState, t.operstate);
    assert.equal(l.up, t.flags.includes("UP"));
    assert.equal(l.kind, t.linkinfo?.info_kind);
    assert.equal(l.txQueueLen, t.txqlen);
    if (t.link_type === "ether") assert.equal(l.mac, t.address);
    if (t.link_index !== undefined) assert.equal(l.parentIndex, t.link_index);
  }
  assert.equal(h.links.get("mvt0").mode, "vepa");
  assert.equal(h.links.get("lo").type, 772);
  assert.equal(h.links.find("nope0"), undefined);
  assert.throws(() => h.links.get("nope0"), LinkNotFoundError);
  assert.throws(() => h.links.get(99999), (e: unknown) => {
    assert.ok(e instanceof LinkNotFoundError);
    assert.equal(e.link, 99999);
    return true;
  });
});

Deno.test("links.add() creates macvtap and macvlan in every mode", opts, async (t) => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  using h = NetlinkHandle.open({ netns: a.ns });
  const modes: MacvlanMode[] = ["private", "vepa", "bridge", "passthru", "source"];
  for (const kind of ["macvtap", "macvlan"] as const) {
    for (const mode of modes) {
      await t.step(`${kind} mode ${mode}`, () => {
        const name = `${kind === "macvtap" ? "mvt" : "mvl"}-${mode.slice(0, 4)}`;
        h.links.add({ kind, name, parent: "eth1", mode });
        try {
          const theirs = ipLink(a.name, name);
          assert.equal(theirs.linkinfo.info_kind, kind);
          assert.equal(theirs.linkinfo.info_data.mode, mode);
          assert.equal(theirs.link, "eth1");
          const ours = h.links.get(name);
          assert.equal(ours.kind, kind);
          assert.equal(ours.mode, mode);
          assert.equal(ours.parentIndex, h.links.get("eth1").index);
          assert.equal(ours.mac, theirs.address);
        } finally {
          h.links.del(name);
        }
      });
    }
  }
  await t.step("default mode is bridge; parent by index", () => {
    h.links.add({ kind: "macvtap", name: "mvt-dflt", parent: h.links.get("eth1").index });
    assert.equal(ipLink(a.name, "mvt-dflt").linkinfo.info_data.mode, "bridge");
  });
});

Deno.test(
  "links.delInBackground() deletes off the JS thread: timers run meanwhile; a missing link is LinkNotFoundError",
  opts,
  async () => {
    using lab = new NsLab();
    const a = lab.nsWithNic();
    using h = NetlinkHandle.open({ netns: a.ns });
    h.links.add({ kind: "macvtap", name: "mvt-bg", parent: "eth1", mode: "bridge" });
    const index = h.links.get("mvt-bg").index;
    let timerRan = false;
    const timer = setTimeout(() => (timerRan = true), 0);
    // The kernel's RCU wait (~10-20 ms for a macvtap) happens on a pool
    // thread: the event loop turns meanwhile. A blocking delete would settle
    // before the timer's turn.
    await h.links.delInBackground(index);
    clearTimeout(timer);
    assert.ok(timerRan, "the event loop ran while the kernel deleted the link");
    assert.equal(h.links.find("mvt-bg"), undefined, "deleted");
    assert.equal(
      ip(a.name, "-o", "link", "show").includes("mvt-bg"),
      false,
      "ip agrees: gone",
    );
    await assert.rejects(
      h.links.delInBackground(index),
      (e: unknown) => e instanceof LinkNotFoundError,
    );
    // The handle works on after a background request.
    assert.equal(h.links.get("eth1").name, "eth1");

    // While the pool thread holds the socket, other requests are refused:
    // they would read its reply.
    h.links.add({ kind: "macvtap", name: "mvt-bg2", parent: "eth1", mode: "bridge" });
    const pending = h.links.delInBackground("mvt-bg2");
    throwsNetlink(() => h.links.get("eth1"), "EBUSY");
    await pending;
  },
);

Deno.test(
  "NetlinkSocket.close() during a background request keeps the socket until its reply is read, then closes it",
  opts,
  async () => {
    using lab = new NsLab();
    const a = lab.nsWithNic();
    using h = NetlinkHandle.open({ netns: a.ns });
    h.links.add({ kind: "macvtap", name: "mvt-bg3", parent: "eth1", mode: "bridge" });
    const index = h.links.get("mvt-bg3").index;
    const sock = inNetns(a.ns, () => NetlinkSocket.open());
    const fdTarget = () => {
      try {
        return Deno.readLinkSync(`/proc/self/fd/${sock.fd}`);
      } catch {
        return undefined;
      }
    };
    const before = fdTarget();
    assert.ok(before?.startsWith("socket:"), `the fd is a socket: ${before}`);
    const pending = requestInBackground(
      sock,
      "RTM_DELLINK",
      () => encodeLinkRef(C.RTM_DELLINK, FLAGS.change, index),
    );
    sock.close();
    // The pool thread reads the socket's memory: freeing it now would be a use after free.
    assert.equal(sock.closed, false, "still open while the pool thread sends");
    assert.equal(fdTarget(), before, "the fd stays open during the send");
    // The reply is read before the deferred close: the caller learns the outcome.
    await pending;
    assert.equal(sock.closed, true, "closed once the reply was read");
    assert.notEqual(fdTarget(), before, "its fd closed");
    assert.equal(h.links.find("mvt-bg3"), undefined, "the kernel deleted the link all the same");

    // A refused request closes too, and reports the kernel's error.
    const sock2 = inNetns(a.ns, () => NetlinkSocket.open());
    const refused = requestInBackground(
      sock2,
      "RTM_DELLINK",
      () => encodeLinkRef(C.RTM_DELLINK, FLAGS.change, index),
    );
    sock2.close();
    await assert.rejects(refused, /ENODEV|No such device/, "the kernel's error, not 'closed'");
    assert.equal(sock2.closed, true, "closed after the error");
  },
);

Deno.test("links.add() creates veth and bridge, with MTU, MAC, up and txqlen", opts, () => {
  using lab = new NsLab();
  const a = lab.ns();
  const b = lab.ns();
  using h = NetlinkHandle.open({ netns: a.ns });
  h.links.add({
    kind: "veth",
    name: "va",
    mtu: 1400,
    mac: "02:00:00:00:aa:01",
    up: true,
    txQueueLen: 100,
    peer: { name: "vb", netns: b.ns, mac: "02:00:00:00:bb:01" },
  });
  const va = ipLink(a.name, "va");
  assert.equal(va.linkinfo.info_kind, "veth");
  assert.equal(va.mtu, 1400);
  assert.equal(va.address, "02:00:00:00:aa:01");
  assert.ok(va.flags.includes("UP"));
  assert.equal(va.txqlen, 100);
  const vb = ipLink(b.name, "vb");
  assert.equal(vb.address, "02:00:00:00:bb:01");
  assert.ok(vb.link_netnsid !== undefined, "peer lives in the other namespace");
  h.links.add({ kind: "bridge", name: "br0" });
  assert.equal(ipLink(a.name, "br0").linkinfo.info_kind, "bridge");
  assert.equal(h.links.get("br0").kind, "bridge");
});

Deno.test(
  "links.add() creates a macvtap directly in another namespace, named, up, chosen ifindex",
  opts,
  () => {
    using lab = new NsLab();
    const host = lab.nsWithNic();
    const ctr = lab.ns();
    using h = NetlinkHandle.open({ netns: host.ns });
    h.links.add({
      kind: "macvtap",
      name: "eth0",
      parent: "eth1",
      mode: "bridge",
      netns: ctr.ns,
      up: true,
      index: 4242,
      mtu: 1400,
    });
    assert.equal(h.links.find("eth0"), undefined, "not in the host namespace");
    const theirs = ipLink(ctr.name, "eth0");
    assert.equal(theirs.ifindex, 4242);
    assert.equal(theirs.linkinfo.info_kind, "macvtap");
    assert.ok(theirs.flags.includes("UP"));
    assert.equal(theirs.mtu, 1400);
    assert.ok(theirs.link_netnsid !== undefined, "parent is in another namespace");
    using c = NetlinkHandle.open({ netns: ctr.ns });
    const ours = c.links.get(4242);
    assert.equal(ours.name, "eth0");
    assert.equal(ours.up, true);
    assert.equal(ours.linkNetnsId, theirs.link_netnsid);
    assert.equal(ours.parentIndex, h.links.get("eth1").index);
    // The macvtap's character device is named after the index.
    assert.ok(theirs.ifindex > 0);
  },
);

Deno.test("links.set() changes up/down, MTU, MAC, name and promisc", opts, async (t) => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  using h = NetlinkHandle.open({ netns: a.ns });
  h.links.add({ kind: "macvtap", name: "mvt0", parent: "eth1" });
  const index = h.links.get("mvt0").index;
  await t.step("up and down", () => {
    h.links.set("mvt0", { up: true });
    assert.ok(ipLink(a.name, "mvt0").flags.includes("UP"));
    assert.equal(h.links.get(index).up, true);
    h.links.set(index, { up: false });
    assert.ok(!ipLink(a.name, "mvt0").flags.includes("UP"));
  });
  await t.step("MTU", () => {
    h.links.set(index, { mtu: 1280 });
    assert.equal(ipLink(a.name, "mvt0").mtu, 1280);
    assert.equal(h.links.get(index).mtu, 1280);
  });
  await t.step("MAC", () => {
    h.links.set(index, { mac: "02:AB:CD:00:00:01" });
    assert.equal(ipLink(a.name, "mvt0").address, "02:ab:cd:00:00:01");
    assert.equal(h.links.get(index).mac, "02:ab:cd:00:00:01");
    assert.throws(() => h.links.set(index, { mac: "02:ab" }), TypeError);
  });
  await t.step("promisc", () => {
    h.links.set(index, { promisc: true });
    assert.ok(ipLink(a.name, "mvt0").flags.includes("PROMISC"));
    assert.equal(h.links.get(index).promisc, true);
    h.links.set(index, { promisc: false });
    assert.ok(!ipLink(a.name, "mvt0").flags.includes("PROMISC"));
  });
  await t.step("name, and up in the same request", () => {
    h.links.set("mvt0", { name: "eth0", up: true });
    const l = ipLink(a.name, "eth0");
    assert.equal(l.ifindex, index);
    assert.ok(l.flags.includes("UP"));
    assert.equal(h.links.find("mvt0"), undefined);
  });
  await t.step("missing link: LinkNotFoundError", () => {
    assert.throws(() => h.links.set("mvt0", { up: true }), LinkNotFoundError);
    assert.throws(() => h.links.set(99999, { up: true }), LinkNotFoundError);
  });
});

Deno.test("links.set() moves a link to another namespace keeping its ifindex", opts, async (t) => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  const b = lab.ns();
  using h = NetlinkHandle.open({ netns: a.ns });
  using hb = NetlinkHandle.open({ netns: b.ns });
  await t.step("IFLA_NEW_IFINDEX to a chosen index", () => {
    h.links.add({ kind: "macvtap", name: "mvt0", parent: "eth1" });
    h.links.set("mvt0", { netns: b.ns, newIndex: 777 });
    assert.equal(h.links.find("mvt0"), undefined);
    assert.equal(ipLink(b.name, "mvt0").ifindex, 777);
    assert.equal(hb.links.get(777).name, "mvt0");
  });
  await t.step("keeping the index it had", () => {
    // (bridges cannot change namespace: NETIF_F_NETNS_LOCAL; veth can)
    h.links.add({ kind: "veth", name: "d0", index: 321, peer: { name: "d0p" } });
    h.links.set("d0", { netns: b.ns, newIndex: 321 });
    assert.equal(ipLink(b.name, "d0").ifindex, 321);
  });
  await t.step("EBUSY when the index is taken there", () => {
    h.links.add({ kind: "veth", name: "d1", peer: { name: "d1p" } });
    const err = throwsNetlink(() => h.links.set("d1", { netns: b.ns, newIndex: 777 }), "EBUSY");
    assert.equal(err.op, "RTM_NEWLINK");
    assert.ok(h.links.find("d1"), "still in the source namespace");
  });
  await t.step("a chosen index taken at creation: EEXIST, here or in a target namespace", () => {
    throwsNetlink(() => hb.links.add({ kind: "bridge", name: "d2", index: 777 }), "EEXIST");
    throwsNetlink(
      () => h.links.add({ kind: "bridge", name: "d2", index: 777, netns: b.ns }),
      "EEXIST",
      "RTM_NEWLINK",
    );
    assert.equal(h.links.find("d2"), undefined);
  });
});

Deno.test(
  "links.del() deletes by name and index; a missing link is LinkNotFoundError",
  opts,
  () => {
    using lab = new NsLab();
    const a = lab.ns();
    using h = NetlinkHandle.open({ netns: a.ns });
    h.links.add({ kind: "bridge", name: "d0" });
    h.links.add({ kind: "bridge", name: "d1" });
    h.links.del("d0");
    h.links.del(h.links.get("d1").index);
    assert.deepEqual(ipJson(a.name, "link", "show").map((l: Json) => l.ifname), ["lo"]);
    assert.throws(() => h.links.del("d0"), (e: unknown) => {
      assert.ok(e instanceof LinkNotFoundError);
      assert.equal(e.op, "RTM_DELLINK");
      return true;
    });
    assert.throws(() => h.links.del(99999), LinkNotFoundError);
  },
);

Deno.test(
  "links errors are typed NetlinkErrors with errno, code, op and extAck",
  opts,
  async (t) => {
    using lab = new NsLab();
    const a = lab.nsWithNic();
    using h = NetlinkHandle.open({ netns: a.ns });
    await t.step("EEXIST for a taken name", () => {
      const e = throwsNetlink(
        () => h.links.add({ kind: "bridge", name: "eth1" }),
        "EEXIST",
        "RTM_NEWLINK",
      );
      assert.equal(e.errno, 17);
      assert.match(e.message, /File exists \(EEXIST\)/);
    });
    await t.step("ENODEV for a missing parent: LinkNotFoundError", () => {
      assert.throws(
        () => h.links.add({ kind: "macvtap", name: "m0", parent: "nope0" }),
        LinkNotFoundError,
      );
      throwsNetlink(() => h.links.add({ kind: "macvtap", name: "m0", parent: 99999 }), "ENODEV");
    });
    await t.step("ERANGE with extAck for a 20-character name", () => {
      const e = throwsNetlink(
        () => h.links.add({ kind: "bridge", name: "a".repeat(20) }),
        "ERANGE",
        "RTM_NEWLINK",
      );
      assert.ok(e.extAck && e.extAck.length > 0, `extAck: ${e.extAck}`);
      assert.ok(e.message.endsWith(e.extAck), e.message);
      throwsNetlink(() => h.links.get("a".repeat(20)), "ERANGE", "RTM_GETLINK");
      // No link can have that name: find() says so instead of failing (a
      // device-plugin deviceID is often longer than an interface name).
      assert.equal(h.links.find("a".repeat(16)), undefined);
    });
    await t.step("EINVAL for a macvtap MTU above the lower device's", () => {
      throwsNetlink(
        () => h.links.add({ kind: "macvtap", name: "m1", parent: "eth1", mtu: 9000 }),
        "EINVAL",
        "RTM_NEWLINK",
      );
      h.links.add({ kind: "macvtap", name: "m1", parent: "eth1" });
      throwsNetlink(() => h.links.set("m1", { mtu: 9000 }), "EINVAL", "RTM_NEWLINK");
      assert.equal(ipLink(a.name, "m1").mtu, 1500);
    });
    await t.step("isErrno() matches them", () => {
      try {
        h.links.add({ kind: "bridge", name: "eth1" });
      } catch (err) {
        assert.ok(isErrno(err, "EEXIST"));
      }
    });
  },
);

// ---------------------------------------------------------------- addresses

Deno.test("addrs add/del/list IPv4 and IPv6 agree with `ip -j addr show`", opts, () => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  using h = NetlinkHandle.open({ netns: a.ns });
  const eth1 = h.links.get("eth1").index;
  h.addrs.add(eth1, "10.1.2.3/24");
  h.addrs.add(eth1, "10.1.2.4/32");
  h.addrs.add(eth1, "fd00:0:0:0::5/64", { flags: 0x02 /* IFA_F_NODAD */ });
  const theirs = ipJson(a.name, "addr", "show", "dev", "eth1")[0].addr_info
    .filter((x: Json) => x.scope === "global")
    .map((x: Json) => `${x.local}/${x.prefixlen}`)
    .sort();
  const ours = h.addrs.list({ link: eth1 }).filter((x) => x.scope === "universe").map((x) => x.cidr)
    .sort();
  assert.deepEqual(ours, theirs);
  assert.deepEqual(ours, ["10.1.2.3/24", "10.1.2.4/32", "fd00::5/64"]);
  assert.deepEqual(h.addrs.list({ family: 4, link: eth1 }).map((x) => x.cidr), [
    "10.1.2.3/24",
    "10.1.2.4/32",
  ]);
  const v6 = h.addrs.list({ family: 6, link: eth1 }).find((x) => x.cidr === "fd00::5/64")!;
  assert.ok(v6.flags & 0x80, "IFA_F_PERMANENT");
  assert.ok(v6.flags & 0x02, "IFA_F_NODAD");
  assert.equal(v6.family, 6);
  assert.ok(h.addrs.list().some((x) => x.cidr === "127.0.0.1/8"), "all links by default");
  throwsNetlink(() => h.addrs.add(eth1, "10.1.2.3/24"), "EEXIST", "RTM_NEWADDR");
  h.addrs.del(eth1, "10.1.2.3/24");
  h.addrs.del(eth1, "fd00::5/64");
  assert.deepEqual(
    ipJson(a.name, "addr", "show", "dev", "eth1")[0].addr_info
      .filter((x: Json) => x.scope === "global").map((x: Json) => x.local),
    ["10.1.2.4"],
  );
  throwsNetlink(() => h.addrs.del(eth1, "10.1.2.3/24"), "EADDRNOTAVAIL", "RTM_DELADDR");
  assert.throws(() => h.addrs.add(eth1, "10.1.2.3"), TypeError);
});

// ---------------------------------------------------------------- routes

Deno.test("routes add/replace/del/list agree with `ip -j route show`", opts, async (t) => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  using h = NetlinkHandle.open({ netns: a.ns });
  const eth1 = h.links.get("eth1").index;
  h.addrs.add(eth1, "10.1.2.3/24");
  h.addrs.add(eth1, "fd00::3/64", { flags: 0x02 });

  await t.step("gateway and metric in main", () => {
    h.routes.add({ family: 4, dst: "10.0.0.0/8", gw: "10.1.2.1", oif: eth1, metric: 100 });
    const [r] = ipJson(a.name, "route", "show", "10.0.0.0/8");
    assert.equal(r.gateway, "10.1.2.1");
    assert.equal(r.metric, 100);
    assert.equal(r.dev, "eth1");
    assert.equal(r.protocol, "boot");
    const ours = h.routes.list({ family: 4, dst: "10.0.0.0/8" });
    assert.equal(ours.length, 1);
    assert.deepEqual(ours[0], {
      family: 4,
      dst: "10.0.0.0/8",
      gw: "10.1.2.1",
      oif: eth1,
      metric: 100,
      table: 254,
      protocol: "boot",
      scope: "universe",
      type: 1,
    });
    throwsNetlink(
      () => h.routes.add({ family: 4, dst: "10.0.0.0/8", gw: "10.1.2.1", oif: eth1, metric: 100 }),
      "EEXIST",
      "RTM_NEWROUTE",
    );
  });
  await t.step("replace changes the gateway", () => {
    h.routes.replace({ family: 4, dst: "10.0.0.0/8", gw: "10.1.2.254", oif: eth1, metric: 100 });
    const rs = ipJson(a.name, "route", "show", "10.0.0.0/8");
    assert.equal(rs.length, 1);
    assert.equal(rs[0].gateway, "10.1.2.254");
    h.routes.replace({ family: 4, dst: "172.16.0.0/12", gw: "10.1.2.1" }); // creates too
    assert.equal(ipJson(a.name, "route", "show", "172.16.0.0/12")[0].gateway, "10.1.2.1");
  });
  await t.step("tables 100 and 1000, scope and protocol", () => {
    h.routes.add({ family: 4, dst: "10.100.0.0/16", oif: eth1, table: 100, protocol: 4 });
    h.routes.add({
      family: 4,
      dst: "10.200.0.0/16",
      gw: "10.1.2.1",
      table: 1000,
      protocol: 249,
      metric: 7,
    });
    const t100 = ipJson(a.name, "route", "show", "table", "100");
    assert.deepEqual(t100.map((r: Json) => [r.dst, r.scope, r.protocol]), [[
      "10.100.0.0/16",
      "link",
      "static",
    ]]);
    const t1000 = ipJson(a.name, "route", "show", "table", "1000");
    assert.deepEqual(t1000.map((r: Json) => [r.dst, r.gateway, r.metric, r.protocol]), [[
      "10.200.0.0/16",
      "10.1.2.1",
      7,
      "249",
    ]]);
    assert.deepEqual(
      h.routes.list({ table: 100 }).map((r) => [r.dst, r.table, r.scope, r.protocol]),
      [["10.100.0.0/16", 100, "link", "static"]],
    );
    assert.deepEqual(
      h.routes.list({ table: 1000 }).map((r) => [r.dst, r.table, r.gw, r.metric, r.protocol]),
      [["10.200.0.0/16", 1000, "10.1.2.1", 7, 249]],
    );
    assert.equal(h.routes.list().filter((r) => r.table !== 254).length, 0, "main by default");
    const all = h.routes.list({ table: 0 });
    assert.ok(all.some((r) => r.table === 255), "table 0 lists every table (local too)");
    assert.ok(all.some((r) => r.table === 1000));
    h.routes.add({ family: 4, dst: "192.0.2.0/24", oif: eth1, scope: "host" });
    h.routes.add({ family: 4, dst: "192.0.3.0/24", oif: eth1, scope: 254, protocol: "dhcp" });
    assert.deepEqual(
      h.routes.list({ dst: "192.0.3.0/24" }).map((r) => [r.scope, r.protocol]),
      [["host", "dhcp"]],
      "a number for a named value reads back as the name",
    );
    assert.throws(
      () => h.routes.add({ family: 4, dst: "192.0.4.0/24", oif: eth1, scope: "planet" as "host" }),
      /Unknown scope "planet"/,
    );
    assert.throws(
      () => h.routes.add({ family: 4, dst: "192.0.4.0/24", oif: eth1, protocol: 256 }),
      /Invalid route protocol 256/,
    );
    assert.equal(ipJson(a.name, "route", "show", "192.0.2.0/24")[0].scope, "host");
  });
  await t.step("IPv6 route", () => {
    h.routes.add({ family: 6, dst: "fd01::/64", gw: "fd00::1", oif: eth1, metric: 200 });
    const [r] = ipJson(a.name, "-6", "route", "show", "fd01::/64");
    assert.equal(r.gateway, "fd00::1");
    assert.equal(r.metric, 200);
    const [ours] = h.routes.list({ family: 6, dst: "fd01::/64" });
    assert.equal(ours?.gw, "fd00::1");
    assert.equal(ours?.metric, 200);
  });
  await t.step("delete by the fields given (like ip route del)", () => {
    // A link-scoped route deleted without naming its scope or protocol.
    h.routes.del({ family: 4, dst: "10.100.0.0/16", table: 100 });
    assert.deepEqual(ipJson(a.name, "route", "show", "table", "100"), []);
    h.routes.del({ family: 4, dst: "10.200.0.0/16", table: 1000 });
    assert.deepEqual(ipJson(a.name, "route", "show", "table", "1000"), []);
    h.routes.del({ family: 4, dst: "10.0.0.0/8", gw: "10.1.2.254", oif: eth1, metric: 100 });
    h.routes.del({ family: 4, dst: "192.0.2.0/24" });
    h.routes.del({ family: 6, dst: "fd01::/64", gw: "fd00::1" });
    assert.deepEqual(ipJson(a.name, "route", "show", "10.0.0.0/8"), []);
    assert.deepEqual(ipJson(a.name, "-6", "route", "show", "fd01::/64"), []);
    throwsNetlink(() => h.routes.del({ family: 4, dst: "10.0.0.0/8" }), "ESRCH", "RTM_DELROUTE");
  });
});

Deno.test(
  "addrs and routes take a link name like links do; their errors name the object",
  opts,
  async (t) => {
    using lab = new NsLab();
    const a = lab.nsWithNic();
    using h = NetlinkHandle.open({ netns: a.ns });
    const eth1 = h.links.get("eth1").index;
    await t.step("addresses by name", () => {
      h.addrs.add("eth1", "10.1.2.3/24");
      h.addrs.add("eth1", "fd00::3/64", { flags: ADDR_FLAGS.nodad });
      assert.deepEqual(h.addrs.list({ link: "eth1", family: 4 }).map((x) => x.cidr), [
        "10.1.2.3/24",
      ]);
      assert.deepEqual( // IPv4 only: the kernel adds IPv6 link-local addresses when it likes
        h.addrs.list({ link: "eth1", family: 4 }).map((x) => x.cidr),
        h.addrs.list({ link: eth1, family: 4 }).map((x) => x.cidr),
      );
      const e = throwsNetlink(() => h.addrs.add("eth1", "10.1.2.3/24"), "EEXIST", "RTM_NEWADDR");
      assert.equal(e.subject, "10.1.2.3/24 dev eth1");
      assert.match(e.message, /^RTM_NEWADDR 10\.1\.2\.3\/24 dev eth1: File exists \(EEXIST\)/);
      assert.throws(() => h.addrs.add("nope0", "10.1.2.9/24"), LinkNotFoundError);
      assert.throws(() => h.addrs.list({ link: "nope0" }), LinkNotFoundError);
    });
    await t.step("routes by name, with named scope, protocol and table", () => {
      h.routes.add({
        family: 4,
        dst: "10.100.0.0/16",
        oif: "eth1",
        table: 100,
        scope: SCOPES.link,
        protocol: ROUTE_PROTOCOLS.static,
      });
      const [oracle] = ipJson(a.name, "route", "show", "table", "100");
      assert.deepEqual([oracle.dst, oracle.dev, oracle.scope, oracle.protocol], [
        "10.100.0.0/16",
        "eth1",
        "link",
        "static",
      ]);
      assert.deepEqual(
        h.routes.list({ table: 100, oif: "eth1" }).map((r) => [r.dst, r.oif]),
        [["10.100.0.0/16", eth1]],
      );
      assert.ok(h.routes.list({ table: ROUTE_TABLES.all }).some((r) => r.table === 100));
      const e = throwsNetlink(
        () => h.routes.add({ family: 4, dst: "10.100.0.0/16", oif: "eth1", table: 100 }),
        "EEXIST",
        "RTM_NEWROUTE",
      );
      assert.match(e.message, /^RTM_NEWROUTE 10\.100\.0\.0\/16 dev eth1 table 100: File exists/);
      const u = throwsNetlink(
        () => h.routes.add({ family: 4, dst: "10.9.0.0/16", gw: "192.0.2.1" }),
        "ENETUNREACH",
        "RTM_NEWROUTE",
      );
      assert.match(u.message, /^RTM_NEWROUTE 10\.9\.0\.0\/16 via 192\.0\.2\.1: /);
      assert.throws(
        () => h.routes.add({ family: 4, dst: "10.9.0.0/16", oif: "nope0" }),
        LinkNotFoundError,
      );
      h.routes.del({ family: 4, dst: "10.100.0.0/16", oif: "eth1", table: 100 });
      assert.deepEqual(ipJson(a.name, "route", "show", "table", "100"), []);
      const d = throwsNetlink(
        () => h.routes.del({ family: 4, dst: "10.100.0.0/16", table: 100 }),
        "ESRCH",
        "RTM_DELROUTE",
      );
      assert.equal(d.subject, "10.100.0.0/16 table 100");
    });
    await t.step("links: the name in the message, the subclasses unchanged", () => {
      const e = throwsNetlink(
        () => h.links.add({ kind: "bridge", name: "eth1" }),
        "EEXIST",
        "RTM_NEWLINK",
      );
      assert.equal(e.message, "RTM_NEWLINK eth1: File exists (EEXIST)");
      assert.equal(e.cause, undefined);
      const m = throwsNetlink(() => h.links.set("eth1", { mtu: 1 }), "EINVAL", "RTM_NEWLINK");
      assert.match(m.message, /^RTM_NEWLINK eth1: Invalid argument \(EINVAL\)/);
      assert.throws(() => h.links.del("nope0"), (err: unknown) => {
        assert.ok(err instanceof LinkNotFoundError);
        assert.match(err.message, /^Link "nope0" not found/);
        return true;
      });
    });
  },
);

Deno.test("neighs add/replace/del/list agree with `ip -j neigh show`", opts, () => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  using h = NetlinkHandle.open({ netns: a.ns });
  const eth1 = h.links.get("eth1").index;
  h.neighs.add("eth1", { ip: "10.1.0.1", mac: "02:00:0a:01:00:01" });
  h.neighs.add(eth1, { ip: "fd00::1", mac: "02:00:0a:01:00:02", state: NEIGH_STATES.noarp });
  // The kernel adds entries of its own (IPv6 multicast, NOARP) whenever it likes: compare ours.
  const mine = (ip: string) => ip === "10.1.0.1" || ip === "fd00::1";
  const oracle = () => ipJson(a.name, "neigh", "show", "dev", "eth1", "nud", "all"); // incl. NOARP
  const theirs = oracle().filter((n: Json) => mine(n.dst))
    .map((n: Json) => [n.dst, n.lladdr, n.state.join(",")]).sort();
  assert.deepEqual(theirs, [
    ["10.1.0.1", "02:00:0a:01:00:01", "PERMANENT"],
    ["fd00::1", "02:00:0a:01:00:02", "NOARP"],
  ]);
  const ours = h.neighs.list({ link: "eth1" }).filter((n) => mine(n.ip))
    .map((n) => [n.family, n.ip, n.mac, n.state]).sort();
  assert.deepEqual(ours, [
    [4, "10.1.0.1", "02:00:0a:01:00:01", NEIGH_STATES.permanent],
    [6, "fd00::1", "02:00:0a:01:00:02", NEIGH_STATES.noarp],
  ]);
  assert.deepEqual(h.neighs.list({ link: "eth1", family: 6 }).filter((n) => mine(n.ip)).length, 1);
  assert.ok(h.neighs.list({ link: "eth1", family: 4 }).every((n) => n.family === 4));
  const e = throwsNetlink(
    () => h.neighs.add("eth1", { ip: "10.1.0.1", mac: "02:00:0a:01:00:09" }),
    "EEXIST",
    "RTM_NEWNEIGH",
  );
  assert.match(e.message, /^RTM_NEWNEIGH 10\.1\.0\.1 dev eth1: File exists/);
  h.neighs.replace("eth1", { ip: "10.1.0.1", mac: "02:00:0a:01:00:09" });
  assert.equal(
    ipJson(a.name, "neigh", "show", "10.1.0.1", "dev", "eth1")[0].lladdr,
    "02:00:0a:01:00:09",
  );
  h.neighs.del("eth1", "10.1.0.1");
  h.neighs.del(eth1, "fd00::1");
  assert.deepEqual(oracle().filter((n: Json) => mine(n.dst)), []);
  throwsNetlink(() => h.neighs.del("eth1", "10.1.0.1"), "ENOENT", "RTM_DELNEIGH");
  assert.throws(() => h.neighs.add("eth1", { ip: "10.1.0.1", mac: "nope" }), TypeError);
  assert.throws(() => h.neighs.list({ link: "nope0" }), LinkNotFoundError);
});

Deno.test(
  "inNetns(), sysctls and subscribeLinks() take a namespace path like NetlinkHandle.open()",
  opts,
  async () => {
    using lab = new NsLab();
    const a = lab.nsWithNic();
    // Fds on this test's namespace only: other tests run in this process too.
    const target = `net:[${Deno.statSync(a.path).ino}]`;
    const fds = () =>
      [...Deno.readDirSync("/proc/self/fd")].filter((e) => {
        try {
          return Deno.readLinkSync(`/proc/self/fd/${e.name}`) === target;
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    const home = currentNetnsId();
    const before = fds();
    assert.equal(inNetns(a.path, () => currentNetnsId()), `net:[${Deno.statSync(a.path).ino}]`);
    assert.equal(currentNetnsId(), home, "back home");
    writeSysctl("net/ipv4/conf/eth1/arp_notify", "1", a.path);
    assert.equal(readSysctl("net/ipv4/conf/eth1/arp_notify", a.path), "1");
    assert.equal(readSysctl("net/ipv4/conf/eth1/arp_notify", a.ns), "1");
    assert.equal(fds(), before, "the namespaces opened from paths are closed again");
    assert.throws(() => inNetns(`${a.path}-nope`, () => 1), NetnsNotFoundError);
    using events = subscribeLinks({ netns: a.path });
    assert.equal(fds(), before, "the socket stays open, the namespace does not");
    ip(a.name, "link", "add", "ev0", "type", "bridge");
    for await (const e of events) {
      if (e.link.name === "ev0") break;
    }
  },
);

Deno.test(
  "routes.prepend() adds beside a route through another device; IPv6 lists it as multipath",
  opts,
  () => {
    using lab = new NsLab();
    const a = lab.nsWithNic();
    ip(a.name, "link", "add", "dev", "eth2", "type", "veth", "peer", "name", "eth2p");
    ip(a.name, "link", "set", "eth2", "up");
    ip(a.name, "link", "set", "eth2p", "up");
    using h = NetlinkHandle.open({ netns: a.ns });
    const eth1 = h.links.get("eth1").index, eth2 = h.links.get("eth2").index;
    h.addrs.add(eth1, "10.1.2.3/24");
    h.addrs.add(eth2, "10.1.2.4/24");
    h.addrs.add(eth1, "fd00::3/64", { flags: 0x02 });
    h.addrs.add(eth2, "fd00::4/64", { flags: 0x02 });
    for (
      const [family, dst, gw] of [[4, "0.0.0.0/0", "10.1.2.1"], [6, "::/0", "fd00::1"]] as const
    ) {
      h.routes.add({ family, dst, gw, oif: eth1 });
      throwsNetlink(() => h.routes.add({ family, dst, gw, oif: eth2 }), "EEXIST", "RTM_NEWROUTE");
      h.routes.prepend({ family, dst, gw, oif: eth2 });
      throwsNetlink(
        () => h.routes.prepend({ family, dst, gw, oif: eth2 }),
        "EEXIST",
        "RTM_NEWROUTE",
      );
    }
    const v4 = h.routes.list({ family: 4, dst: "0.0.0.0/0" });
    assert.deepEqual(
      v4.map((r) => r.oif).sort(),
      [eth1, eth2].sort(),
      "IPv4: one route per device",
    );
    const v6 = h.routes.list({ family: 6, dst: "::/0" });
    assert.equal(v6.length, 1, "IPv6: one multipath route");
    assert.deepEqual(v6[0]!.nexthops, [{ oif: eth1, gw: "fd00::1" }, { oif: eth2, gw: "fd00::1" }]);
    const [oracle] = ipJson(a.name, "-6", "route", "show", "default");
    assert.deepEqual(oracle.nexthops.map((n: Json) => [n.dev, n.gateway]), [
      ["eth1", "fd00::1"],
      ["eth2", "fd00::1"],
    ]);
    // Deleting one device leaves the other's route, a plain one again.
    ip(a.name, "link", "del", "eth2");
    assert.deepEqual(h.routes.list({ family: 4, dst: "0.0.0.0/0" }).map((r) => r.oif), [eth1]);
    const left = h.routes.list({ family: 6, dst: "::/0" });
    assert.deepEqual(left.map((r) => [r.oif, r.gw, r.nexthops]), [[eth1, "fd00::1", undefined]]);
  },
);

Deno.test("routes.defaultRoute() finds the IPv4, then the IPv6 default", opts, () => {
  using lab = new NsLab();
  const a = lab.nsWithNic();
  using h = NetlinkHandle.open({ netns: a.ns });
  const eth1 = h.links.get("eth1").index;
  assert.equal(h.routes.defaultRoute(), undefined);
  h.addrs.add(eth1, "10.1.2.3/24");
  h.addrs.add(eth1, "fd00::3/64", { flags: 0x02 });
  h.routes.add({ family: 6, dst: "::/0", gw: "fd00::1", oif: eth1 });
  assert.equal(h.routes.defaultRoute()?.gw, "fd00::1");
  ip(a.name, "route", "add", "default", "via", "10.1.2.1", "dev", "eth1");
  const d = h.routes.defaultRoute();
  assert.equal(
    d?.gw,
    ip(a.name, "-j", "route", "show", "default").includes("10.1.2.1") ? "10.1.2.1" : "",
  );
  assert.equal(d?.oif, eth1);
  assert.equal(d?.dst, "0.0.0.0/0");
  assert.equal(h.routes.defaultRoute(6)?.gw, "fd00::1");
});

// ---------------------------------------------------------------- sysctl

Deno.test(
  "writeSysctl()/readSysctl() act in the namespace and do not leak to the root",
  opts,
  () => {
    using lab = new NsLab();
    const a = lab.nsWithNic();
    const key = "net/ipv4/conf/eth1/arp_notify";
    assert.equal(readSysctl(key, a.ns), "0");
    writeSysctl(key, "1", a.ns);
    assert.equal(readSysctl(key, a.ns), "1");
    assert.equal(readSysctl("net.ipv4.conf.eth1.arp_notify", a.ns), "1", "dotted form");
    const oracle = new Deno.Command("ip", {
      args: ["netns", "exec", a.name, "cat", `/proc/sys/${key}`],
      stdout: "piped",
    }).outputSync();
    assert.equal(new TextDecoder().decode(oracle.stdout).trim(), "1");
    assert.throws(() => Deno.statSync(`/proc/sys/${key}`), Deno.errors.NotFound, "no eth1 in root");
    // A key that exists in both: changing it inside leaves the root's value.
    const both = "net/ipv4/conf/default/arp_notify";
    const rootBefore = readSysctl(both);
    const flipped = rootBefore === "1" ? "0" : "1";
    try {
      writeSysctl(both, flipped, a.ns);
      assert.equal(readSysctl(both, a.ns), flipped);
      assert.equal(readSysctl(both), rootBefore);
      assert.equal(Deno.readTextFileSync(`/proc/sys/${both}`).trim(), rootBefore);
    } finally {
      if (readSysctl(both) !== rootBefore) writeSysctl(both, rootBefore); // repair, if it leaked
    }
    assert.throws(() => writeSysctl("net/../../etc/passwd", "x", a.ns), TypeError);
  },
);

// ---------------------------------------------------------------- events

// The poll(2) symbol is a third library handle, loaded on the first wait and
// kept: the resource sanitizer would count it, so these tests count fds instead.
const eventOpts = { ignore: !privileged, sanitizeResources: false };

/**
 * Bound NETLINK_ROUTE sockets of user space in `ns`, from its own
 * `/proc/net/netlink`. Process-wide fd counts would not do: under
 * `deno test --parallel` other files open and close fds meanwhile.
 */
function userNetlinkSockets(ns: Netns): number {
  const table = inNetns(ns, () => Deno.readTextFileSync("/proc/thread-self/net/netlink"));
  return table.trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/))
    .filter(([, eth, pid]) => eth === "0" && pid !== "0").length;
}

/**
 * {@linkcode userNetlinkSockets} once it stops dropping (up to 1 s): a child
 * that another test file (same process under --parallel) is spawning holds
 * a copy of our fd table until it execs, and with it our just-closed socket
 * (they are SOCK_CLOEXEC, so the exec releases them).
 */
async function socketsSettled(ns: Netns): Promise<number> {
  const deadline = Date.now() + 1000;
  let n = userNetlinkSockets(ns);
  while (n > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    n = userNetlinkSockets(ns);
  }
  return n;
}

/** This process's open fds on namespace `path`. */
function fdsOn(path: string): number {
  // An fd opened on the bind mount reads back as the path; one from
  // /proc/…/ns/net as `net:[inode]`.
  const want = [path, `net:[${Deno.statSync(path).ino}]`];
  let n = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (want.includes(Deno.readLinkSync(`/proc/self/fd/${e.name}`))) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

Deno.test(
  "subscribeLinks() sees links created, changed and deleted; close() ends it",
  eventOpts,
  async () => {
    using lab = new NsLab();
    const a = lab.nsWithNic();
    assert.equal(userNetlinkSockets(a.ns), 0);
    const events = subscribeLinks({ netns: a.ns });
    assert.equal(userNetlinkSockets(a.ns), 1);
    const seen: string[] = [];
    const done = (async () => {
      for await (const e of events) {
        seen.push(`${e.type} ${e.link.name} ${e.link.carrier ?? "-"}`);
      }
    })();
    const waitFor = async (pattern: RegExp) => {
      const deadline = Date.now() + 5000;
      while (!seen.some((s) => pattern.test(s))) {
        if (Date.now() > deadline) assert.fail(`no event ${pattern} in ${JSON.stringify(seen)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      ip(a.name, "link", "add", "d0", "type", "bridge");
      await waitFor(/^new d0 /);
      ip(a.name, "link", "set", "eth1p", "down"); // eth1 loses carrier
      await waitFor(/^new eth1 false$/);
      ip(a.name, "link", "set", "eth1p", "up");
      await waitFor(/^new eth1 true$/);
      ip(a.name, "link", "del", "d0");
      await waitFor(/^del d0 /);
    } finally {
      const t0 = performance.now();
      events.close();
      await done;
      const ms = performance.now() - t0;
      assert.ok(ms < 500, `iterator ended ${ms.toFixed(0)} ms after close()`);
    }
    events.close(); // idempotent
    assert.equal(await socketsSettled(a.ns), 0, "socket closed");
    assert.deepEqual(await events.next(), { value: undefined, done: true });
  },
);

Deno.test("subscribeLinks(): breaking out of for-await closes the socket", eventOpts, async () => {
  using lab = new NsLab();
  const a = lab.ns();
  const events = subscribeLinks({ netns: a.ns });
  assert.equal(userNetlinkSockets(a.ns), 1);
  ip(a.name, "link", "add", "d0", "type", "bridge");
  for await (const e of events) {
    if (e.link.name === "d0") break;
  }
  assert.equal(await socketsSettled(a.ns), 0);
});

// ---------------------------------------------------------------- handle

Deno.test(
  "NetlinkHandle.open() by path owns its namespace fd; close() is idempotent",
  opts,
  async () => {
    using lab = new NsLab();
    const a = lab.ns();
    const fdsBefore = fdsOn(a.path);
    const h = NetlinkHandle.open({ netns: a.path });
    assert.deepEqual(h.links.list().map((l) => l.name), ["lo"]);
    assert.equal(userNetlinkSockets(a.ns), 1, "the handle's socket lives in its namespace");
    assert.equal(fdsOn(a.path), fdsBefore + 1);
    h.close();
    h.close();
    assert.equal(await socketsSettled(a.ns), 0, "socket closed");
    assert.equal(fdsOn(a.path), fdsBefore, "namespace fd closed");
    // A handle on the caller's namespace, only reading.
    using root = NetlinkHandle.open();
    assert.ok(root.links.list().some((l) => l.name === "lo"));
  },
);

Deno.test("no nlt-<pid>- namespace is left behind", { ignore: !privileged }, () => {
  assert.deepEqual(netnsList().filter((n) => n.startsWith(PREFIX)), []);
});
