import {
  deepStrictEqual as assertEquals,
  ok as assert,
  throws as assertThrows,
} from "node:assert/strict";
import { StateStore } from "./state.ts";

const rec = {
  containerId: "c1",
  ifname: "eth0",
  netns: "/run/netns/c1",
  ipamType: "host-local",
  ips: ["10.1.0.5/24"],
  hostrouteif: "macvtap1",
  hostRoutes: [{ family: 4 as const, dst: "10.1.0.5/32", metric: 50 }],
};

Deno.test("StateStore writes, reads, lists and removes records with safe permissions", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const store = new StateStore(`${dir}/state`);
    store.write("net1", rec);
    assertEquals(store.read("net1", "c1", "eth0"), rec);
    assertEquals(store.list("net1"), [rec]);
    assertEquals(store.networks(), ["net1"]);
    assertEquals(Deno.statSync(`${dir}/state/net1/c1-eth0`).mode! & 0o777, 0o600);
    assertEquals(Deno.statSync(`${dir}/state/net1`).mode! & 0o777, 0o700);
    store.remove("net1", "c1", "eth0");
    store.remove("net1", "c1", "eth0");
    assertEquals(store.read("net1", "c1", "eth0"), undefined);
    assertEquals(store.list("net1"), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("StateStore refuses a symlink in place of a network directory", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/state`);
    Deno.mkdirSync(`${dir}/elsewhere`);
    Deno.symlinkSync(`${dir}/elsewhere`, `${dir}/state/net1`);
    assertThrows(() => new StateStore(`${dir}/state`).write("net1", rec), /not a plain directory/);
    assert([...Deno.readDirSync(`${dir}/elsewhere`)].length === 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("StateStore reads a corrupt record as absent", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/net1`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/net1/c1-eth0`, "{not json");
    assertEquals(new StateStore(dir).read("net1", "c1", "eth0"), undefined);
    assertEquals(new StateStore(dir).list("net1"), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("StateStore removes temporary files a killed writer left", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const store = new StateStore(dir);
    store.write("net1", rec);
    // A writer killed between write and rename (pid 999999999 is no process).
    Deno.writeTextFileSync(`${dir}/net1/c2-eth0.tmp999999999`, "{}");
    Deno.writeTextFileSync(`${dir}/net1/c1-eth0.tmp999999998`, "{}");
    assertEquals(store.list("net1"), [rec]);
    store.sweepTemps("net1");
    assertEquals([...Deno.readDirSync(`${dir}/net1`)].map((e) => e.name).sort(), ["c1-eth0"]);
    Deno.writeTextFileSync(`${dir}/net1/c1-eth0.tmp${Deno.pid}`, "{}");
    store.remove("net1", "c1", "eth0");
    assertEquals([...Deno.readDirSync(`${dir}/net1`)], []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
