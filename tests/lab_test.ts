/**
 * The lab itself: namespaces and temp dirs appear, and disappear on dispose,
 * also when the test body throws; the seed 002 and simple presets are wired
 * as documented; the DHCP lab serves a real lease to the reference plugins.
 */

import assert from "node:assert/strict";
import {
  CNI_BIN,
  exists,
  HOST_LOCAL,
  ipamDataDir,
  Lab,
  labIgnore,
  listNetns,
  markerPath,
  NETNS_DIR,
  run,
} from "../lab/mod.ts";
import { DHCP_PLUGIN, DhcpLab } from "./_dhcp.ts";

interface IpAddr {
  ifname: string;
  operstate?: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
  linkinfo?: { info_kind?: string };
}

Deno.test({
  name: "Lab creates namespaces, veths and temp dirs and removes them on dispose",
  ignore: labIgnore(),
  async fn() {
    let names: string[];
    let dir: string;
    let id: string;
    {
      await using lab = await Lab.create();
      id = lab.id;
      const a = await lab.netns("a");
      const b = await lab.netns("b");
      await lab.veth(a, "va", b, "vb");
      dir = await ipamDataDir(lab);
      names = [a, b];

      assert(await exists(markerPath(id)), "marker exists while the lab lives");
      const listed = await listNetns();
      assert(names.every((n) => listed.includes(n)), `ip netns list shows ${names}`);
      const links = await lab.ipJson<IpAddr[]>(a, "addr", "show", "va");
      assert.deepStrictEqual(links[0]?.ifname, "va");
      assert.deepStrictEqual(links[0]?.linkinfo?.info_kind, "veth");
      assert(await exists(dir), "temp dir exists");
      assert(dir.includes(id), "temp dir is named after the lab");
    }
    const listed = await listNetns();
    assert(names.every((n) => !listed.includes(n)), "namespaces are gone");
    assert(!(await exists(dir)), "temp dir is gone");
    assert(!(await exists(markerPath(id))), "marker is gone");
  },
});

Deno.test({
  name: "Lab cleans up when the test body throws",
  ignore: labIgnore(),
  async fn() {
    let names: string[] = [];
    let dir = "";
    const boom = new Error("boom");
    let caught: unknown;
    try {
      await using lab = await Lab.create();
      const s = await lab.simple();
      names = [s.host, s.peer, s.ctr];
      dir = await lab.tempDir();
      throw boom;
    } catch (err) {
      caught = err;
    }
    assert(caught === boom, "the original error reaches the caller");
    const listed = await listNetns();
    assert(names.length === 3 && names.every((n) => !listed.includes(n)), "namespaces are gone");
    assert(dir !== "" && !(await exists(dir)), "temp dir is gone");
  },
});

Deno.test({
  name: "Lab dispose kills processes left inside its namespaces and stops its children",
  ignore: labIgnore(),
  async fn() {
    let stray: Deno.ChildProcess;
    let tracked: Deno.ChildProcess;
    let ns: string;
    {
      await using lab = await Lab.create();
      ns = await lab.netns("a");
      // Not started through the lab: found by `ip netns pids` at dispose.
      stray = new Deno.Command("ip", { args: ["netns", "exec", ns, "sleep", "600"] }).spawn();
      tracked = lab.spawn(ns, ["sleep", "600"], { what: "sleeper" });
      await new Promise((r) => setTimeout(r, 100));
    }
    const s1 = await stray.status;
    const s2 = await tracked.status;
    assert(!s1.success && !s2.success, "both sleepers were killed");
    assert(!(await exists(`${NETNS_DIR}/${ns}`)), "namespace is gone");
  },
});

Deno.test({
  name: "Lab refuses namespaces it does not own (never the root namespace)",
  ignore: labIgnore(),
  async fn() {
    await using lab = await Lab.create();
    let err: unknown;
    try {
      await lab.ip("default", "link", "show", "eth0");
    } catch (e) {
      err = e;
    }
    assert(
      err instanceof Error && /does not belong/.test(err.message),
      "foreign namespace refused",
    );
    let err2: unknown;
    try {
      await lab.netns("Bad/Role");
    } catch (e) {
      err2 = e;
    }
    assert(err2 instanceof TypeError, "bad role refused");
  },
});

Deno.test({
  name: "Lab.seed002() wires uplink, master and LAN as in seed 002",
  ignore: labIgnore(["busybox"]),
  async fn() {
    await using lab = await Lab.create();
    const s = await lab.seed002();
    const eth0 = (await lab.ipJson<IpAddr[]>(s.host, "addr", "show", "eth0"))[0];
    const locals = eth0?.addr_info.map((a) => `${a.local}/${a.prefixlen}`) ?? [];
    assert(locals.includes("192.168.10.22/24"), `eth0 has 192.168.10.22/24: ${locals}`);
    assert(locals.includes("fd10::22/64"), `eth0 has fd10::22/64: ${locals}`);
    const eth1 = (await lab.ipJson<IpAddr[]>(s.host, "addr", "show", "eth1"))[0];
    assert.deepStrictEqual(
      eth1?.addr_info.filter((a) => a.family === "inet"),
      [],
      "master has no IPv4",
    );
    assert(eth1?.operstate === "UP", `master is up: ${eth1?.operstate}`);
    const ping = await lab.exec(s.host, ["busybox", "ping", "-c1", "-W2", "192.168.10.1"]);
    assert(ping.success, `host reaches the router: ${ping.stdout}${ping.stderr}`);
    const ping6 = await lab.exec(s.host, ["busybox", "ping", "-c1", "-W2", "fd10::1"]);
    assert(ping6.success, `host reaches the router over IPv6: ${ping6.stdout}${ping6.stderr}`);
    const lan = await lab.exec(s.lan, ["busybox", "ping", "-c1", "-W2", "192.168.10.22"]);
    assert(!lan.success, "the LAN has no route to the host's uplink address");
    await lab.sysctl(s.host, "net.ipv4.conf.eth1.arp_notify", "1");
    const v = await lab.exec(s.host, ["cat", "/proc/sys/net/ipv4/conf/eth1/arp_notify"]);
    assert.deepStrictEqual(v.stdout.trim(), "1", "sysctl written in the namespace");
  },
});

Deno.test({
  name: "Lab.simple() serves host-local with a lab dataDir to the reference macvlan [1.0.0]",
  ignore: labIgnore([`${CNI_BIN}/macvlan`]),
  async fn() {
    await using lab = await Lab.create();
    const s = await lab.simple();
    const dataDir = await ipamDataDir(lab);
    const conf = JSON.stringify({
      cniVersion: "1.0.0",
      name: "labnet",
      type: "macvlan",
      master: s.master,
      mode: "bridge",
      ipam: {
        type: "host-local",
        subnet: "10.99.0.0/24",
        rangeStart: "10.99.0.10",
        rangeEnd: "10.99.0.200",
        gateway: "10.99.0.1",
        dataDir,
      },
    });
    const env = (command: string) => ({
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_COMMAND: command,
      CNI_CONTAINERID: "ctr1",
      CNI_NETNS: s.ctrPath,
      CNI_IFNAME: "eth0",
      CNI_PATH: HOST_LOCAL.replace(/\/[^/]+$/, ""),
    });
    const add = await lab.exec(s.host, [`${CNI_BIN}/macvlan`], {
      stdin: conf,
      env: env("ADD"),
      clearEnv: true,
    });
    assert(add.success, `ADD: ${add.stdout}${add.stderr}`);
    const result = JSON.parse(add.stdout) as { ips: { address: string }[] };
    assert.deepStrictEqual(result.ips[0]?.address, "10.99.0.10/24");
    assert(
      await exists(`${dataDir}/labnet/10.99.0.10`),
      "host-local wrote its store under dataDir",
    );
    const del = await lab.exec(s.host, [`${CNI_BIN}/macvlan`], {
      stdin: conf,
      env: env("DEL"),
      clearEnv: true,
    });
    assert(del.success, `DEL: ${del.stdout}${del.stderr}`);
    assert(!(await exists(`${dataDir}/labnet/10.99.0.10`)), "DEL released the address");
  },
});

Deno.test({
  name: "DhcpLab: reference macvlan + dhcp IPAM get a dnsmasq lease, DEL releases it [1.0.0]",
  ignore: labIgnore(["dnsmasq", DHCP_PLUGIN, `${CNI_BIN}/macvlan`]),
  async fn() {
    await using lab = await Lab.create();
    const s = await lab.seed002();
    await using dhcp = await DhcpLab.start(lab, {
      serverNs: s.lan,
      serverIf: s.lanIf,
      range: ["192.168.122.100", "192.168.122.150"],
      pluginNs: s.host,
    });
    const conf = JSON.stringify({
      cniVersion: "1.0.0",
      name: "dhcpnet",
      type: "macvlan",
      master: s.master,
      mode: "bridge",
      ipam: dhcp.ipamConfig(),
    });
    const env = (command: string) => ({
      PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_COMMAND: command,
      CNI_CONTAINERID: "dhcpctr1",
      CNI_NETNS: s.ctrPath,
      CNI_IFNAME: "eth0",
      CNI_PATH: CNI_BIN,
    });
    const add = await lab.exec(s.host, [`${CNI_BIN}/macvlan`], {
      stdin: conf,
      env: env("ADD"),
      clearEnv: true,
      timeoutMs: 60_000,
    });
    assert(add.success, `ADD: ${add.stdout}${add.stderr}`);
    const result = JSON.parse(add.stdout) as {
      ips: { address: string; gateway?: string }[];
      interfaces: { mac: string }[];
    };
    const address = result.ips[0]?.address ?? "";
    const ip = address.split("/")[0] ?? "";
    const last = Number(ip.split(".")[3]);
    assert(
      ip.startsWith("192.168.122.") && last >= 100 && last <= 150,
      `address from the dnsmasq range: ${address}`,
    );
    assert.deepStrictEqual(address.split("/")[1], "24", "prefix from the server's netmask");

    // The oracle: the container really has it, and dnsmasq recorded the lease.
    const ctrAddrs = await lab.ipJson<IpAddr[]>(s.ctr, "addr", "show", "eth0");
    const v4 = ctrAddrs[0]?.addr_info.filter((a) => a.family === "inet").map((a) =>
      `${a.local}/${a.prefixlen}`
    );
    assert.deepStrictEqual(v4, [address], "container eth0 has the leased address");
    const leases = await dhcp.leases();
    assert(leases.some((l) => l.ip === ip), `dnsmasq lease for ${ip}: ${JSON.stringify(leases)}`);
    const ping = await lab.exec(s.ctr, ["busybox", "ping", "-c1", "-W2", "192.168.122.1"]);
    assert(ping.success, `container reaches the DHCP server: ${ping.stdout}${ping.stderr}`);

    const del = await lab.exec(s.host, [`${CNI_BIN}/macvlan`], {
      stdin: conf,
      env: env("DEL"),
      clearEnv: true,
    });
    assert(del.success, `DEL: ${del.stdout}${del.stderr}`);
    const after = await lab.ipJson<IpAddr[]>(s.ctr, "link", "show");
    assert(!after.some((l) => l.ifname === "eth0"), "DEL removed the container interface");
    // dnsmasq drops a released lease from its file (DHCPRELEASE); allow it a moment.
    let released = false;
    for (let i = 0; i < 20 && !released; i++) {
      released = !(await dhcp.leases()).some((l) => l.ip === ip);
      if (!released) await new Promise((r) => setTimeout(r, 100));
    }
    assert(released, "DEL released the lease at the server");
  },
});

Deno.test({
  name: "run() returns the exit code and output without throwing",
  async fn() {
    const r = await run(["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert.deepStrictEqual([r.code, r.success, r.stdout, r.stderr], [3, false, "out\n", "err\n"]);
  },
});
