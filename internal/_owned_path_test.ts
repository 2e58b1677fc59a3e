import assert from "node:assert/strict";
import {
  ensureOwnedDir,
  normalizePath,
  openOwnedFileForAppend,
  outsideRoot,
  UnsafePathError,
} from "./_owned_path.ts";
import { formatRecord } from "./_log.ts";
import { ifnameProblem, isDeviceIfname, isTempIfname } from "./_ifname.ts";
import { deviceIfname, tempIfname } from "./_ifname.ts";
import { unicastHostProblem } from "./_ip.ts";

Deno.test("outsideRoot() accepts only normalized paths at or below the root", () => {
  assert.equal(outsideRoot("/var/log/macvtap/a.log", "/var/log/macvtap"), undefined);
  assert.equal(outsideRoot("/var/log/macvtap", "/var/log/macvtap/"), undefined);
  assert.equal(outsideRoot("/var/log//macvtap/x/y", "/var/log/macvtap"), undefined);
  assert.match(outsideRoot("/var/log/macvtap/../x", "/var/log/macvtap")!, /'\.\.'/);
  assert.match(outsideRoot("/var/log/macvtapx/a", "/var/log/macvtap")!, /not inside/);
  assert.match(outsideRoot("/etc/passwd", "/var/log/macvtap")!, /not inside/);
  assert.match(outsideRoot("rel.log", "/var/log/macvtap")!, /absolute/);
  assert.match(outsideRoot("/var/log/macvtap/a\0b", "/var/log/macvtap")!, /NUL/);
  assert.equal(normalizePath("/a//b/"), "/a/b");
});

Deno.test("ensureOwnedDir() creates 0700 directories and refuses symlinks and shared ones", () => {
  const root = Deno.makeTempDirSync();
  try {
    ensureOwnedDir(root, `${root}/a/b`);
    assert.equal(Deno.statSync(`${root}/a/b`).mode! & 0o777, 0o700);
    Deno.mkdirSync(`${root}/elsewhere`);
    Deno.symlinkSync(`${root}/elsewhere`, `${root}/link`);
    assert.throws(() => ensureOwnedDir(root, `${root}/link/x`), UnsafePathError);
    assert.deepEqual([...Deno.readDirSync(`${root}/elsewhere`)], []);
    Deno.mkdirSync(`${root}/shared`, { mode: 0o777 });
    Deno.chmodSync(`${root}/shared`, 0o777);
    assert.throws(() => ensureOwnedDir(root, `${root}/shared`), /writable by group or others/);
    assert.throws(() => ensureOwnedDir(root, "/etc"), /not inside/);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("openOwnedFileForAppend() refuses symlinks and hard links, creates 0600", () => {
  const root = Deno.makeTempDirSync();
  try {
    const victim = `${root}/victim`;
    Deno.writeTextFileSync(victim, "root:x:0:0::/root:/bin/sh\n");
    Deno.symlinkSync(victim, `${root}/sym.log`);
    assert.throws(() => openOwnedFileForAppend(`${root}/sym.log`), /symlink/);
    Deno.linkSync(victim, `${root}/hard.log`);
    assert.throws(() => openOwnedFileForAppend(`${root}/hard.log`), /hard links/);
    using f = openOwnedFileForAppend(`${root}/new.log`);
    f.writeSync(new TextEncoder().encode("x\n"));
    assert.equal(Deno.statSync(`${root}/new.log`).mode! & 0o777, 0o600);
    assert.equal(Deno.readTextFileSync(victim), "root:x:0:0::/root:/bin/sh\n");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("formatRecord() writes one JSON line whatever the message holds", () => {
  for (const msg of ["a\nroot::0:0::/:/bin/sh", "a\r\u0000b\u001b[31m", "x\u2028y\u2029z"]) {
    const line = formatRecord("warn", "macvtap", msg);
    assert.equal(line.indexOf("\n"), line.length - 1);
    assert.ok(!/[\u0000-\u001f\u2028\u2029]/.test(line.slice(0, -1)), JSON.stringify(line));
    assert.equal(JSON.parse(line).msg, msg);
  }
});

Deno.test("ifnameProblem() refuses kernel name templates and what dev_valid_name refuses", () => {
  for (const bad of ["eth%d", "%", "", ".", "..", "a/b", "a:b", "a b", "a\tb", "x".repeat(16)]) {
    assert.ok(ifnameProblem(bad), JSON.stringify(bad));
  }
  for (const good of ["eth0", "net1", "x".repeat(15), "a-b_c.d@e"]) {
    assert.equal(ifnameProblem(good), undefined, good);
  }
  assert.ok(isDeviceIfname(deviceIfname("lan-7")));
  assert.ok(isTempIfname(tempIfname("c1", "eth0")));
  assert.ok(!isDeviceIfname("macvtap1") && !isTempIfname("mvt0123456789ab"));
});

Deno.test("unicastHostProblem() refuses every address that is not one host's unicast address", () => {
  const bad = [
    "0.0.0.0/0",
    "0.1.2.3/8",
    "127.0.0.1/8",
    "169.254.1.1/16",
    "224.0.0.1/32",
    "239.1.1.1/8",
    "255.255.255.255/32",
    "240.0.0.1/4",
    "10.0.0.0/24",
    "10.0.0.255/24",
    "::/0",
    "::1/128",
    "ff02::1/128",
    "fe80::1/64",
    "::ffff:10.0.0.1/128",
    "fd00::/64",
  ];
  for (const c of bad) assert.ok(unicastHostProblem(c), c);
  const good = ["10.0.0.5/24", "10.0.0.0/31", "10.0.0.1/32", "192.168.122.177/24", "fd22::5/64"];
  for (const c of good) assert.equal(unicastHostProblem(c), undefined, c);
});
