import {
  deepStrictEqual as assertEquals,
  ok as assert,
  throws as assertThrows,
} from "node:assert/strict";
import {
  AttachmentExistsError,
  decodeKey,
  hostRouteClaims,
  parseRecord,
  pruneRegistry,
  recordKey,
  StateStore,
  unclaimedRoutes,
} from "./state.ts";
import { fnv1a64 } from "../internal/_fnv.ts";

const rec = {
  containerId: "c1",
  ifname: "eth0",
  netns: "/run/netns/c1",
  ipamType: "host-local",
  ips: ["10.1.0.5/24"],
  hostrouteif: "macvtap1",
  hostRoutes: [{ family: 4 as const, dst: "10.1.0.5/32", metric: 50 }],
};

function withRoot(fn: (root: string) => void): void {
  const root = Deno.makeTempDirSync();
  try {
    fn(root);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test("StateStore creates, reads, lists and removes records with safe permissions", () => {
  withRoot((root) => {
    const store = new StateStore(`${root}/state`, root);
    store.create("net1", rec);
    assertEquals(store.read("net1", "c1", "eth0"), rec);
    assertEquals(store.list("net1"), [{ record: rec, key: "c1@eth0" }]);
    assertEquals(store.networks(), ["net1"]);
    assertEquals(Deno.statSync(`${root}/state/net1/c1@eth0`).mode! & 0o777, 0o600);
    assertEquals(Deno.statSync(`${root}/state/net1`).mode! & 0o777, 0o700);
    store.update("net1", { ...rec, ips: [] });
    assertEquals(store.read("net1", "c1", "eth0")?.ips, []);
    store.remove("net1", "c1", "eth0");
    store.remove("net1", "c1", "eth0");
    assertEquals(store.read("net1", "c1", "eth0"), undefined);
    // The last record gone, the network directory goes too.
    assertEquals(names(`${root}/state`), []);
  });
});

Deno.test("StateStore.create() is exclusive: a second ADD of the attachment is refused", () => {
  withRoot((root) => {
    const store = new StateStore(root, root);
    store.create("net1", rec);
    assertThrows(
      () => store.create("net1", { ...rec, netns: "/run/netns/other" }),
      AttachmentExistsError,
    );
    assertEquals(store.read("net1", "c1", "eth0")?.netns, "/run/netns/c1");
    assertEquals(names(`${root}/net1`), ["c1@eth0"]); // no temporary file left
  });
});

Deno.test("StateStore keys never collide (a-b + c vs a + b-c)", () => {
  withRoot((root) => {
    const store = new StateStore(root, root);
    store.create("net1", { ...rec, containerId: "a-b", ifname: "c" });
    store.create("net1", { ...rec, containerId: "a", ifname: "b-c" });
    store.remove("net1", "a", "b-c");
    assertEquals(store.read("net1", "a-b", "c")?.containerId, "a-b");
    assertEquals(recordKey("a", "x@y+"), "a@x%40y%2B");
    assertEquals(decodeKey("a@x%40y%2B"), ["a", "x@y+"]);
    assertEquals(decodeKey("a@b@c"), undefined);
    assertEquals(decodeKey("..@eth0"), undefined);
  });
});

Deno.test("StateStore refuses a symlink in place of a network directory", () => {
  withRoot((root) => {
    Deno.mkdirSync(`${root}/state`);
    Deno.mkdirSync(`${root}/elsewhere`);
    Deno.symlinkSync(`${root}/elsewhere`, `${root}/state/net1`);
    assertThrows(() => new StateStore(`${root}/state`, root).create("net1", rec), /symlink/);
    assert(names(`${root}/elsewhere`).length === 0);
  });
});

Deno.test("StateStore skips records that are corrupt, hostile or filed under another key", () => {
  withRoot((root) => {
    const store = new StateStore(root, root);
    Deno.mkdirSync(`${root}/net1`, { recursive: true, mode: 0o700 });
    Deno.writeTextFileSync(`${root}/net1/c1@eth0`, "{not json");
    Deno.writeTextFileSync(
      `${root}/net1/c2@eth0`,
      JSON.stringify({ ...rec, containerId: "../../x", ifname: "eth0" }),
    );
    Deno.writeTextFileSync(`${root}/net1/c3@eth0`, JSON.stringify({ ...rec, containerId: "c4" }));
    Deno.writeTextFileSync(`${root}/net1/c5@eth0`, JSON.stringify({ ...rec, containerId: "c5" }));
    assertEquals(store.read("net1", "c1", "eth0"), undefined);
    assertEquals(store.read("net1", "c3", "eth0"), undefined);
    assertEquals(store.list("net1").map((r) => r.key), ["c5@eth0"]);
  });
});

Deno.test("parseRecord() validates every field like input", () => {
  const ok = JSON.stringify(rec);
  assert(parseRecord(ok));
  const bad: Record<string, unknown>[] = [
    { containerId: "../x" },
    { ifname: "eth%d" },
    { netns: "relative" },
    { ipamType: "../../bin/sh" },
    { ips: ["nope"] },
    { hostrouteif: "a/b" },
    { hostrouteIndex: -1 },
    { hostRoutes: [{ family: 4, dst: "10.0.0.0/8", metric: 50 }] },
    { hostRoutes: [{ family: 6, dst: "10.1.0.5/32", metric: 50 }] },
    { hostRoutes: [{ family: 4, dst: "10.1.0.5/32", metric: -1 }] },
    { hostRoutesState: "maybe" },
  ];
  for (const b of bad) {
    assertEquals(parseRecord(JSON.stringify({ ...rec, ...b })), undefined, JSON.stringify(b));
  }
});

Deno.test("StateStore reads and removes a record of the old naming (upgrade in place)", () => {
  withRoot((root) => {
    const store = new StateStore(root, root);
    Deno.mkdirSync(`${root}/net1`, { mode: 0o700 });
    Deno.writeTextFileSync(`${root}/net1/c1-eth0`, JSON.stringify(rec));
    assertEquals(store.read("net1", "c1", "eth0"), rec);
    assertThrows(() => store.create("net1", rec), AttachmentExistsError);
    // The same old file name, but another attachment's content: not this one's.
    assertEquals(store.read("net1", "c1-eth0".slice(0, 1), "1-eth0"), undefined);
    store.remove("net1", "c1", "eth0");
    assertEquals(names(root), [".statedirs"]);
  });
});

Deno.test("StateStore removes temporary files a killed writer left", () => {
  withRoot((root) => {
    const store = new StateStore(root, root);
    store.create("net1", rec);
    // A writer killed between write and link (pid 999999999 is no process).
    Deno.writeTextFileSync(`${root}/net1/c2@eth0.tmp999999999`, "{}");
    Deno.writeTextFileSync(`${root}/net1/c1@eth0.tmp999999998`, "{}");
    Deno.writeTextFileSync(`${root}/net1/unrelated.tmp999999998`, "{}");
    assertEquals(store.list("net1").length, 1);
    store.sweepTemps("net1");
    assertEquals(names(`${root}/net1`), ["c1@eth0", "unrelated.tmp999999998"]);
    Deno.writeTextFileSync(`${root}/net1/c1@eth0.tmp999999997`, "{}");
    store.remove("net1", "c1", "eth0");
    assertEquals(names(`${root}/net1`), ["unrelated.tmp999999998"]);
  });
});

Deno.test("hostRouteClaims() sees the records of every state directory of the root", () => {
  withRoot((root) => {
    const x = new StateStore(`${root}/x`, root);
    const y = new StateStore(`${root}/tenant/y`, root);
    x.create("netx", rec);
    y.create("nety", { ...rec, containerId: "c2", hostRoutes: [] });
    const wanted = [rec.hostRoutes[0]!, { family: 4 as const, dst: "10.1.0.6/32", metric: 50 }];
    const claims = hostRouteClaims(root, new Set(wanted.map((r) => r.dst)));
    assertEquals([...claims.keys()], ["10.1.0.5/32"]);
    // Y may not delete X's route; X may delete its own.
    assertEquals(unclaimedRoutes(root, wanted, y.recordPath("nety", "c2", "eth0")), [wanted[1]]);
    assertEquals(unclaimedRoutes(root, wanted, x.recordPath("netx", "c1", "eth0")), wanted);
  });
});

Deno.test("StateStore in read-only mode (a stateDir outside the root) reads but never writes", () => {
  withRoot((root) => {
    const outside = Deno.makeTempDirSync();
    try {
      new StateStore(outside, outside).create("net1", rec);
      const ro = new StateStore(outside, root, { readOnly: true });
      assertEquals(ro.read("net1", "c1", "eth0"), rec);
      assertThrows(
        () => ro.create("net1", { ...rec, containerId: "c9" }),
        /outside the state root/,
      );
      ro.remove("net1", "c1", "eth0");
      assertEquals(ro.read("net1", "c1", "eth0"), rec);
    } finally {
      Deno.removeSync(outside, { recursive: true });
    }
  });
});

Deno.test("the state-dir registry: a short path is named by its own hex (no tenant can take its name); a long one by a hash whose collisions take the next slot; temporaries and garbled entries are not entries", () => {
  withRoot((root) => {
    const reg = `${root}/.statedirs`;
    const hexOf = (d: string) =>
      `d${
        Array.from(new TextEncoder().encode(d), (b) => b.toString(16).padStart(2, "0")).join("")
      }`;
    const hashOf = (d: string) => fnv1a64(d).toString(16).padStart(16, "0");

    // A short path: its entry is named by the path itself.
    const dir = `${root}/a`;
    const store = new StateStore(dir, root);
    store.create("net1", rec);
    assertEquals(Deno.readTextFileSync(`${reg}/${hexOf(dir)}`), dir);

    // A long path: a hash. Another directory already holds it (a collision,
    // or a tenant's doing): it keeps its entry, and ours takes the next slot.
    const long = `${root}/${"x".repeat(130)}`;
    const other = `${root}/other`;
    new StateStore(other, root).create("net1", { ...rec, containerId: "o1" });
    Deno.writeTextFileSync(`${reg}/${hashOf(long)}`, other, { mode: 0o600 });
    // A writer killed before its rename left a temporary naming a third,
    // unregistered directory (its record written without registering).
    const third = new StateStore(`${root}/third`, root);
    const thirdRec = { ...rec, containerId: "t1" };
    third.create("net1", { ...thirdRec, hostRoutes: [] });
    Deno.writeTextFileSync(`${root}/third/net1/t1@eth0`, JSON.stringify(thirdRec));
    Deno.writeTextFileSync(`${reg}/${hashOf(long)}.tmp4242`, `${root}/third`, { mode: 0o600 });

    const longStore = new StateStore(long, root);
    longStore.create("net1", { ...rec, containerId: "l1" });
    assertEquals(Deno.readTextFileSync(`${reg}/${hashOf(long)}`), other, "kept");
    assertEquals(Deno.readTextFileSync(`${reg}/${hashOf(long)}.1`), long, "ours in the next slot");
    const claims = hostRouteClaims(root, new Set(["10.1.0.5/32"]), undefined);
    assertEquals(
      [...(claims.get("10.1.0.5/32") ?? [])].sort(),
      [`${dir}/net1/c1@eth0`, `${long}/net1/l1@eth0`, `${other}/net1/o1@eth0`].sort(),
      "every registered directory's claims are seen; the temporary's directory is not registered",
    );

    // A garbled entry (cut short, or naming a path outside the root) is rewritten.
    for (const garbled of ["", "/etc"]) {
      Deno.writeTextFileSync(`${reg}/${hexOf(dir)}`, garbled);
      new StateStore(dir, root).update("net1", rec);
      assertEquals(Deno.readTextFileSync(`${reg}/${hexOf(dir)}`), dir, `"${garbled}" rewritten`);
    }

    // Something else at an entry's name (a directory) is not an entry and not
    // ours to remove: a long path takes the next slot, a short one fails.
    const long2 = `${root}/${"y".repeat(130)}`;
    Deno.mkdirSync(`${reg}/${hashOf(long2)}`);
    new StateStore(long2, root).create("net1", { ...rec, containerId: "l2" });
    assertEquals(Deno.readTextFileSync(`${reg}/${hashOf(long2)}.1`), long2);
    const short2 = `${root}/b`;
    Deno.mkdirSync(`${reg}/${hexOf(short2)}`);
    assertThrows(
      () => new StateStore(short2, root).create("net1", { ...rec, containerId: "s2" }),
      /Cannot register the state directory/,
    );
    assert(Deno.statSync(`${reg}/${hexOf(short2)}`).isDirectory, "left as it was");
  });
});

Deno.test("the state-dir registry is pruned of directories that are gone: on a new registration and when claims meet one; live, present, foreign and non-file entries stay", () => {
  withRoot((root) => {
    const reg = `${root}/.statedirs`;
    const entries = () => names(reg).filter((n) => n !== ".lock");
    const a = new StateStore(`${root}/a`, root);
    const b = new StateStore(`${root}/b`, root);
    const empty = new StateStore(`${root}/empty`, root);
    a.create("net1", rec);
    b.create("net1", { ...rec, containerId: "c2", hostRoutes: [] });
    b.update("net1", { ...rec, containerId: "c2", ips: [], hostRoutes: [] });
    empty.create("net1", { ...rec, containerId: "c3" });
    empty.remove("net1", "c3", "eth0"); // its directory stays, empty
    assertEquals(entries().length, 2, "a and empty are registered; b claims no route");
    // A directory removed by its owner (a test's, a tenant's).
    a.remove("net1", "c1", "eth0");
    Deno.removeSync(`${root}/a`);
    // Not ours to judge: an entry naming a path outside the root, something
    // that is not a file, a temporary of a live registrant (pid 1).
    const hexOf = (d: string) =>
      `d${
        Array.from(new TextEncoder().encode(d), (x) => x.toString(16).padStart(2, "0")).join("")
      }`;
    Deno.writeTextFileSync(`${reg}/${hexOf("/nonexistent-x")}`, "/nonexistent-x");
    Deno.mkdirSync(`${reg}/${hexOf(`${root}/gone-dir-entry`)}`);
    Deno.writeTextFileSync(`${reg}/${hexOf(`${root}/q`)}.tmp1`, `${root}/q`);
    Deno.writeTextFileSync(`${reg}/${hexOf(`${root}/q`)}.tmp999999999`, `${root}/q`);
    Deno.writeTextFileSync(`${reg}/unrelated`, `${root}/a`);
    const before = entries();

    // A new registration prunes.
    new StateStore(`${root}/n`, root).create("net1", { ...rec, containerId: "c4" });
    const after = entries();
    assertEquals(
      before.filter((n) => !after.includes(n)).sort(),
      [hexOf(`${root}/a`), `${hexOf(`${root}/q`)}.tmp999999999`].sort(),
      "only the gone directory's entry and a dead registrant's temporary went",
    );
    assert(after.includes(hexOf(`${root}/empty`)), "an existing (empty) directory keeps its entry");
    assert(after.includes(hexOf(`${root}/n`)));

    // Claims reading a registered directory that is gone prune it.
    Deno.removeSync(`${root}/empty`, { recursive: true });
    assertEquals(hostRouteClaims(root, new Set(["10.1.0.5/32"]), undefined).size, 1);
    assert(!entries().includes(hexOf(`${root}/empty`)), "pruned by hostRouteClaims()");
    assert(entries().includes(hexOf(`${root}/n`)));
    assertEquals(pruneRegistry(root), [], "nothing left to prune");
    assertEquals(Deno.statSync(`${reg}/.lock`).mode! & 0o777, 0o600);
  });
});

Deno.test("pruneRegistry() waits for a registrant holding the registry's lock, then keeps the entry whose record it wrote", async () => {
  const root = Deno.makeTempDirSync();
  try {
    const dir = `${root}/s`;
    // The registrant's first half, as create() does it under the lock: the
    // entry is written, the directory does not exist yet.
    new StateStore(dir, root).create("net1", rec);
    Deno.removeSync(dir, { recursive: true });
    const lock = Deno.openSync(`${root}/.statedirs/.lock`, { read: true, write: true });
    lock.lockSync(true);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { pruneRegistry } from ${
          JSON.stringify(new URL("./state.ts", import.meta.url).href)
        };
         console.log(JSON.stringify(pruneRegistry(${JSON.stringify(root)})));`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const done = child.output();
    let finished = false;
    done.then(() => finished = true, () => finished = true);
    await new Promise((r) => setTimeout(r, 1500));
    assert(!finished, "pruning ran while the registrant held the lock");
    // The registrant's second half (this process holds the lock, so by hand
    // what create() writes under it): its record, then the lock goes.
    Deno.mkdirSync(`${dir}/net1`, { recursive: true, mode: 0o700 });
    Deno.writeTextFileSync(`${dir}/net1/c1@eth0`, JSON.stringify(rec), { mode: 0o600 });
    lock.close();
    const out = await done;
    assertEquals(new TextDecoder().decode(out.stdout).trim(), "[]", "nothing pruned");
    assertEquals(hostRouteClaims(root, new Set(["10.1.0.5/32"]), undefined).size, 1);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test({
  name:
    "a registered state directory writes its claiming records while the registry is read-only (the lock needs no write access)",
  ignore: Deno.uid() !== 0,
  async fn() {
    const root = Deno.makeTempDirSync();
    try {
      const dir = `${root}/s`;
      new StateStore(dir, root).create("net1", rec);
      const script = `import { StateStore } from ${
        JSON.stringify(new URL("./state.ts", import.meta.url).href)
      };
        const rec = ${JSON.stringify({ ...rec, containerId: "c2" })};
        new StateStore(${JSON.stringify(dir)}, ${JSON.stringify(root)}).create("net1", rec);`;
      // A private mount namespace: the read-only bind mount of the registry is this child's.
      const out = await new Deno.Command("unshare", {
        args: [
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"',
          "sh",
          `${root}/.statedirs`,
          Deno.execPath(),
          "eval",
          script,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
      assertEquals(new StateStore(dir, root).read("net1", "c2", "eth0")?.containerId, "c2");
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
});
