import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { resolveRoutes } from "./configure.ts";

const ips = [
  { address: "10.1.0.5/24", gateway: "10.1.0.1" },
  { address: "fd00::5/64", gateway: "fd00::1" },
];

Deno.test("resolveRoutes() gives a route without gw its family's IPAM gateway, and says so", () => {
  assertEquals(resolveRoutes(ips, [{ dst: "0.0.0.0/0" }, { dst: "::/0" }]), [
    { dst: "0.0.0.0/0", gw: "10.1.0.1" },
    { dst: "::/0", gw: "fd00::1" },
  ]);
});

Deno.test("resolveRoutes() says on-link when a route has no gw and its family no gateway", () => {
  assertEquals(
    resolveRoutes([{ address: "10.1.0.5/24" }, { address: "fd00::5/64" }], [
      { dst: "10.2.0.0/16" },
      { dst: "fd02::/64" },
    ]),
    [{ dst: "10.2.0.0/16", gw: "0.0.0.0" }, { dst: "fd02::/64", gw: "::" }],
  );
});

Deno.test("resolveRoutes() keeps gw 0.0.0.0 and :: (on-link) as IPAM gave them", () => {
  assertEquals(
    resolveRoutes(ips, [{ dst: "192.168.10.22/32", gw: "0.0.0.0" }, {
      dst: "fd10::22/128",
      gw: "::",
    }]),
    [{ dst: "192.168.10.22/32", gw: "0.0.0.0" }, { dst: "fd10::22/128", gw: "::" }],
  );
});

Deno.test("resolveRoutes() sends on-link IPv6 routes via the hostrouteif link-local address", () => {
  assertEquals(
    resolveRoutes(ips, [{ dst: "fd10::22/128", gw: "::" }, {
      dst: "192.168.10.22/32",
      gw: "0.0.0.0",
    }], {
      onLinkGw6: "fe80::1",
    }),
    [{ dst: "fd10::22/128", gw: "fe80::1" }, { dst: "192.168.10.22/32", gw: "0.0.0.0" }],
  );
});

Deno.test("resolveRoutes() keeps explicit gateways and extra fields", () => {
  assertEquals(
    resolveRoutes(ips, [{ dst: "10.2.0.0/16", gw: "10.1.0.254", priority: 5, table: 100 }]),
    [
      { dst: "10.2.0.0/16", gw: "10.1.0.254", priority: 5, table: 100 },
    ],
  );
});
