import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { CniError, ErrorCode } from "../cni/mod.ts";
import { ConfigError } from "../config/mod.ts";
import { HostRouteError } from "../hostroute/mod.ts";
import { DumpInterruptedError, NetlinkError } from "../netlink/mod.ts";
import { PluginError, toCniError } from "./errors.ts";

Deno.test("toCniError() passes a CniError through with its own code", () => {
  const child = new CniError(42, "host-local: no addresses left");
  assert(toCniError(child) === child);
});

Deno.test("toCniError() maps ConfigError to 7, or 2 when unsupported", () => {
  assertEquals(toCniError(new ConfigError("mtu", "mtu: must be an integer")).code, 7);
  assertEquals(
    toCniError(new ConfigError("mode", 'mode: "source" is not supported', { unsupported: true }))
      .code,
    2,
  );
});

Deno.test("toCniError() maps EAGAIN, EBUSY and interrupted dumps to 11", () => {
  assertEquals(toCniError(new NetlinkError("RTM_NEWLINK", 11)).code, ErrorCode.TRY_AGAIN);
  assertEquals(toCniError(new NetlinkError("RTM_NEWLINK", 16)).code, ErrorCode.TRY_AGAIN);
  assertEquals(toCniError(new DumpInterruptedError("RTM_GETROUTE")).code, ErrorCode.TRY_AGAIN);
});

Deno.test("toCniError() maps other netlink errors to 100 with errno in the message", () => {
  const e = toCniError(new NetlinkError("RTM_NEWLINK", 17, undefined, "Cannot create"));
  assertEquals(e.code, ErrorCode.NETLINK);
  assert(e.msg.includes("EEXIST"), e.msg);
});

Deno.test("toCniError() keeps a PluginError's code and puts the cause chain in details", () => {
  const e = toCniError(
    new PluginError("Cannot open network namespace", {
      code: ErrorCode.NETNS,
      cause: new Error("no such file"),
    }),
  );
  assertEquals([e.code, e.details], [ErrorCode.NETNS, "no such file"]);
});

Deno.test("toCniError() maps a hostrouteif conflict to 7 and anything else to 999", () => {
  assertEquals(toCniError(new HostRouteError("hostrouteif exists")).code, 7);
  assertEquals(toCniError(new TypeError("boom")).code, 999);
  assertEquals(toCniError("a string").code, 999);
});

Deno.test("toCniError() keeps a netlink error's subject in msg and adds no details", () => {
  const err = new NetlinkError("RTM_NEWLINK", 17, undefined, { subject: "eth9" });
  const json = toCniError(err).toJSON("1.1.0");
  assertEquals(json, {
    cniVersion: "1.1.0",
    code: ErrorCode.NETLINK,
    msg: "RTM_NEWLINK eth9: File exists (EEXIST)",
  });
});
