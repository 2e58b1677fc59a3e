import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { parseCniArgs } from "./cni_args.ts";
import { ConfigError } from "./errors.ts";

function throwsArgs(text: string, message: string): void {
  assertThrows(
    () => parseCniArgs(text),
    (e: unknown) => e instanceof ConfigError && e.field === "CNI_ARGS" && e.message === message,
  );
}

Deno.test("parseCniArgs()", async (t) => {
  await t.step("accepts an empty string", () => {
    assertEquals(parseCniArgs(""), { ignoreUnknown: false, ips: [], unknown: [] });
  });
  await t.step("parses what Kubernetes sends", () => {
    const a = parseCniArgs(
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u1",
    );
    assertEquals(a, {
      ignoreUnknown: true,
      ips: [],
      unknown: [],
      K8S_POD_NAMESPACE: "default",
      K8S_POD_NAME: "p1",
      K8S_POD_INFRA_CONTAINER_ID: "abc",
      K8S_POD_UID: "u1",
    });
  });
  await t.step("parses IP, MAC and GATEWAY", () => {
    const a = parseCniArgs("IP=10.0.0.5,2001:db8::5/64;MAC=02-AA-BB-CC-DD-EE;GATEWAY=10.0.0.1");
    assertEquals([a.ips, a.mac, a.gateway], [
      ["10.0.0.5", "2001:db8::5/64"],
      "02:aa:bb:cc:dd:ee",
      "10.0.0.1",
    ]);
  });
  await t.step("rejects unknown keys unless IgnoreUnknown is true (any case)", () => {
    throwsArgs("FOO=bar;ip=1.2.3.4", 'ARGS: unknown args ["FOO=bar" "ip=1.2.3.4"]');
    throwsArgs("ignoreunknown=1", 'ARGS: unknown args ["ignoreunknown=1"]');
    throwsArgs("IgnoreUnknown=false;FOO=bar", 'ARGS: unknown args ["FOO=bar"]');
    for (const v of ["1", "true", "TRUE", "True"]) {
      assertEquals(parseCniArgs(`FOO=bar;IgnoreUnknown=${v}`).unknown, ["FOO=bar"]);
    }
  });
  await t.step("rejects pairs without exactly one '='", () => {
    throwsArgs("IP", 'ARGS: invalid pair "IP"');
    throwsArgs("IP=1.2.3.4;", 'ARGS: invalid pair ""');
    throwsArgs("K8S_POD_NAME=a=b", 'ARGS: invalid pair "K8S_POD_NAME=a=b"');
  });
  await t.step("rejects bad values", () => {
    throwsArgs(
      "MAC=01:00:5e:00:00:01",
      'ARGS: error parsing value of pair "MAC=01:00:5e:00:00:01": "01:00:5e:00:00:01" is a multicast MAC address',
    );
    throwsArgs(
      "IP=10.0.0.300",
      'ARGS: error parsing value of pair "IP=10.0.0.300": "10.0.0.300" is not an IP address or CIDR',
    );
    throwsArgs(
      "IgnoreUnknown=yes",
      'ARGS: error parsing value of pair "IgnoreUnknown=yes": boolean unmarshal error: invalid input yes',
    );
  });
  await t.step("never throws with strict: false (DEL)", () => {
    const a = parseCniArgs("junk;MAC=zz;FOO=bar;IP=1.2.3.4;K8S_POD_NAME=p", { strict: false });
    assertEquals([a.ips, a.mac, a.K8S_POD_NAME, a.unknown], [["1.2.3.4"], undefined, "p", [
      "FOO=bar",
    ]]);
  });
});
