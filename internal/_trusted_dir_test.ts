import assert from "node:assert/strict";
import {
  ensureTrustedDir,
  launcherCheck,
  mkdirChain,
  pathChain,
  untrustedReason,
} from "./_trusted_dir.ts";

Deno.test("pathChain() lists / and every directory down to the path", () => {
  assert.deepEqual(pathChain("/var/cache/macvtap/deno"), [
    "/",
    "/var",
    "/var/cache",
    "/var/cache/macvtap",
    "/var/cache/macvtap/deno",
  ]);
  assert.deepEqual(pathChain("/"), ["/"]);
});

Deno.test("launcherCheck() refuses a cache path the shell line could misread", () => {
  for (const bad of ["relative/deno", "/var/ca che", "/var/$(x)", "/var/../etc", "/a;b", "/"]) {
    assert.throws(() => launcherCheck(bad), TypeError, bad);
  }
  const line = launcherCheck("/var/cache/macvtap/deno");
  assert.match(
    line,
    /find \/ \/var \/var\/cache \/var\/cache\/macvtap \/var\/cache\/macvtap\/deno /,
  );
  assert.doesNotMatch(line, /\n/, "one line");
});

Deno.test({
  name: "untrustedReason() and ensureTrustedDir(): one rule for the chain and the entries [root]",
  ignore: Deno.uid() !== 0,
  fn() {
    const base = Deno.makeTempDirSync({ dir: "/run", prefix: "trusted-test-" });
    try {
      const dir = `${base}/own/deno`;
      assert.match(untrustedReason(dir)!, /cannot look at/);
      const old = Deno.umask(0);
      try {
        assert.deepEqual(mkdirChain(`${base}/x/y`), [`${base}/x`, `${base}/x/y`]);
        assert.equal(Deno.statSync(`${base}/x/y`).mode! & 0o777, 0o755, "0755 under umask 000");
        assert.equal(ensureTrustedDir(dir, `${base}/own`), undefined);
      } finally {
        Deno.umask(old);
      }
      assert.equal(untrustedReason(dir, { entries: true }), undefined);
      Deno.chmodSync(`${base}/own`, 0o777);
      assert.match(untrustedReason(dir)!, /own" is writable by group or others \(mode 0777\)/);
      Deno.writeTextFileSync(`${dir}/planted`, "x");
      Deno.chownSync(`${dir}/planted`, 4242, 4242);
      // Ours from `own` down: remade, the planted file gone.
      assert.equal(ensureTrustedDir(dir, `${base}/own`), undefined);
      assert.deepEqual([...Deno.readDirSync(dir)], []);
      assert.equal(Deno.statSync(`${base}/own`).mode! & 0o777, 0o755);
      // A parent that is not ours is reported, never changed.
      Deno.chmodSync(base, 0o777);
      assert.match(ensureTrustedDir(dir, `${base}/own`)!, /writable by group or others/);
      assert.equal(Deno.statSync(base).mode! & 0o777, 0o777);
      Deno.chmodSync(base, 0o700);
      Deno.symlinkSync(dir, `${base}/link`);
      assert.match(untrustedReason(`${base}/link`)!, /is a symlink/);
    } finally {
      Deno.removeSync(base, { recursive: true });
    }
  },
});
