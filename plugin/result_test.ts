import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { parseNetConf } from "../config/mod.ts";
import type { Link } from "../netlink/mod.ts";
import { buildResult, mergeDns } from "./result.ts";

const link: Link = {
  index: 2,
  name: "eth0",
  mac: "02:11:22:33:44:55",
  mtu: 1500,
  flags: 1,
  up: true,
  promisc: false,
  operState: "UP",
  type: 1,
  kind: "macvtap",
};
const ctx = { containerId: "c1", netns: "/run/netns/c1", ifname: "eth0", args: "", path: [] };

Deno.test("mergeDns() keeps the config first and drops duplicates", () => {
  assertEquals(
    mergeDns(
      { nameservers: ["10.0.0.53"], search: ["a.example"] },
      { nameservers: ["10.0.0.53", "10.0.0.54"], domain: "b.example", options: ["ndots:2"] },
    ),
    {
      nameservers: ["10.0.0.53", "10.0.0.54"],
      search: ["a.example"],
      domain: "b.example",
      options: ["ndots:2"],
    },
  );
  assertEquals(mergeDns(undefined, undefined), {});
});

Deno.test("buildResult() points IPAM addresses at our interface", () => {
  const conf = parseNetConf({ cniVersion: "1.0.0", name: "n", type: "macvtap" }, {
    command: "ADD",
    args: "",
  });
  const r = buildResult(conf, ctx, link, {
    cniVersion: "1.0.0",
    ips: [{ address: "10.1.0.5/24", gateway: "10.1.0.1" }],
  }, [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }]);
  assertEquals(r.interfaces, [{
    name: "eth0",
    mac: "02:11:22:33:44:55",
    mtu: 1500,
    sandbox: "/run/netns/c1",
  }]);
  assertEquals(r.ips, [{ address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 0 }]);
  assertEquals(r.routes, [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }]);
});

Deno.test("buildResult() appends to a chained prevResult", () => {
  const conf = parseNetConf({
    cniVersion: "1.0.0",
    name: "n",
    type: "macvtap",
    prevResult: {
      cniVersion: "1.0.0",
      interfaces: [{ name: "lo0" }],
      ips: [{ interface: 0, address: "192.0.2.1/32" }],
      dns: { nameservers: ["192.0.2.53"] },
    },
  }, { command: "ADD", args: "" });
  const r = buildResult(conf, ctx, link, {
    cniVersion: "1.0.0",
    ips: [{ address: "10.1.0.5/24" }],
  }, []);
  assertEquals(r.interfaces?.map((i) => i.name), ["lo0", "eth0"]);
  assertEquals(r.ips?.map((ip) => ip.interface), [0, 1]);
  assertEquals(r.dns, { nameservers: ["192.0.2.53"] });
});
