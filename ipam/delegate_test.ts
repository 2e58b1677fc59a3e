import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DelegateVersionCache } from "./_version_cache.ts";

/**
 * Scratch dirs below /run (root's, 0755): the version cache follows the
 * launcher's rule (internal/_trusted_dir.ts), and /tmp is world-writable.
 */
const TRUSTED_TMP = "/run";
import { IPAM_VERSIONS_FILE, ipamDelegate } from "./delegate.ts";

/**
 * A fake IPAM delegate that speaks 0.4.0 and 1.0.0 (like Debian 12's host-local, which stops at 1.0.0)
 * and logs each call as `COMMAND cniVersion` to `$dir/calls`.
 */
async function fakeDelegate(dir: string): Promise<string> {
  await Deno.mkdir(`${dir}/bin`, { recursive: true });
  const path = `${dir}/bin/fake-ipam`;
  await Deno.writeTextFile(
    path,
    `#!/bin/sh
in=$(cat)
v=$(printf '%s' "$in" | sed -n 's/.*"cniVersion":"\\([0-9.]*\\)".*/\\1/p')
echo "$CNI_COMMAND $v" >> "${dir}/calls"
if [ "$CNI_COMMAND" = VERSION ]; then
  printf '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'
  exit 0
fi
case "$v" in
0.4.0|1.0.0) ;;
*) printf '{"cniVersion":"%s","code":1,"msg":"incompatible CNI versions"}' "$v"; exit 1 ;;
esac
if [ "$CNI_COMMAND" = ADD ]; then
  printf '{"cniVersion":"%s","ips":[{"address":"10.9.0.2/24"}]}' "$v"
fi
exit 0
`,
    { mode: 0o755 },
  );
  return path;
}

async function calls(dir: string): Promise<string[]> {
  try {
    const text = await Deno.readTextFile(`${dir}/calls`);
    await Deno.remove(`${dir}/calls`);
    return text.trim().split("\n");
  } catch {
    return [];
  }
}

const savedDenoDir = Deno.env.get("DENO_DIR");
function restoreDenoDir(): void {
  if (savedDenoDir === undefined) Deno.env.delete("DENO_DIR");
  else Deno.env.set("DENO_DIR", savedDenoDir);
}

/** The delegate keeps its cache in $DENO_DIR (the launcher's cache dir): point it at `dir/state`. */
function setup(dir: string) {
  Deno.mkdirSync(`${dir}/state`, { mode: 0o700 });
  Deno.env.set("DENO_DIR", `${dir}/state`);
  const raw = {
    cniVersion: "1.1.0",
    name: "ipamtest",
    type: "macvtap",
    ipam: { type: "fake-ipam" },
  };
  const stdin = new TextEncoder().encode(JSON.stringify(raw));
  return () =>
    ipamDelegate({
      type: "fake-ipam",
      cniVersion: "1.1.0",
      timeoutMs: 30_000,
      cniPath: [`${dir}/bin`],
      env: { PATH: "/usr/bin:/bin", CNI_CONTAINERID: "c1", CNI_IFNAME: "eth0", CNI_NETNS: "" },
    }, stdin);
}

Deno.test("ipamDelegate() negotiates a delegate's version once per binary, then downgrades at once", async () => {
  const dir = await Deno.makeTempDir({ dir: TRUSTED_TMP, prefix: "ipam-test-" });
  try {
    const path = await fakeDelegate(dir);
    const ipam = setup(dir);

    const first = await ipam().add();
    assertEquals(first.cniVersion, "1.0.0");
    assertEquals(await calls(dir), ["ADD 1.1.0", "VERSION 1.1.0", "ADD 1.0.0"]);

    // A later process (DEL above all) does not ask again.
    await ipam().del();
    assertEquals(await calls(dir), ["DEL 1.0.0"]);
    await ipam().add();
    assertEquals(await calls(dir), ["ADD 1.0.0"]);
    // STATUS is skipped for a delegate older than 1.1.0, without asking.
    await ipam().status();
    assertEquals(await calls(dir), []);

    // A rewritten binary is a new identity: negotiated again.
    await Deno.writeTextFile(path, (await Deno.readTextFile(path)) + "# v2\n");
    await ipam().del();
    assertEquals(await calls(dir), ["DEL 1.1.0", "VERSION 1.1.0", "DEL 1.0.0"]);
    const cache = new DelegateVersionCache(`${dir}/state/${IPAM_VERSIONS_FILE}`);
    assertEquals(cache.get(path), ["0.4.0", "1.0.0"]);
  } finally {
    restoreDenoDir();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ipamDelegate() renegotiates when the remembered answer is refused", async () => {
  const dir = await Deno.makeTempDir({ dir: TRUSTED_TMP, prefix: "ipam-test-" });
  try {
    const path = await fakeDelegate(dir);
    const ipam = setup(dir);
    // A wrong memory (0.3.1 only, which this delegate refuses): one refused
    // call, then the real answer, remembered.
    const cache = new DelegateVersionCache(`${dir}/state/${IPAM_VERSIONS_FILE}`);
    cache.set(path, ["0.3.1"]);
    await ipam().del();
    assertEquals(await calls(dir), ["DEL 0.3.1", "VERSION 1.1.0", "DEL 1.0.0"]);
    assertEquals(cache.get(path), ["0.4.0", "1.0.0"]);
    // A memory naming no version we speak is no memory.
    cache.set(path, ["0.5.0"]);
    await ipam().del();
    assertEquals(await calls(dir), ["DEL 1.1.0", "VERSION 1.1.0", "DEL 1.0.0"]);
  } finally {
    restoreDenoDir();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DelegateVersionCache ignores files it must not trust", async () => {
  const dir = await Deno.makeTempDir({ dir: TRUSTED_TMP, prefix: "ipam-test-" });
  try {
    const bin = `${dir}/plugin`;
    await Deno.writeTextFile(bin, "#!/bin/sh\n", { mode: 0o755 });
    const file = `${dir}/state/cache.json`;
    const cache = new DelegateVersionCache(file);
    cache.set(bin, ["1.0.0"]);
    assertEquals(cache.get(bin), undefined, "no state dir: nothing written, none created");
    await Deno.mkdir(`${dir}/state`, { mode: 0o700 });
    assertEquals(cache.get(bin), undefined);
    cache.set(bin, ["0.4.0", "1.0.0"]);
    assertEquals(cache.get(bin), ["0.4.0", "1.0.0"]);
    assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);

    await Deno.chmod(file, 0o666);
    assertEquals(cache.get(bin), undefined, "writable by others");
    await Deno.chmod(file, 0o600);

    const good = await Deno.readTextFile(file);
    await Deno.remove(file);
    await Deno.writeTextFile(`${dir}/elsewhere.json`, good, { mode: 0o600 });
    await Deno.symlink(`${dir}/elsewhere.json`, file);
    assertEquals(cache.get(bin), undefined, "symlink");
    await Deno.remove(file);

    const id = JSON.parse(good)[bin].id;
    for (
      const bad of [
        "not json",
        "[]",
        JSON.stringify({ [bin]: { id, versions: ["1.0.0", "x"] } }),
        JSON.stringify({ [bin]: { id, versions: "1.0.0" } }),
        JSON.stringify({ [bin]: { id: 7, versions: ["1.0.0"] } }),
        JSON.stringify({ [bin]: { id, versions: Array(17).fill("1.0.0") } }),
        JSON.stringify({ [bin]: { id: "0:0:0:0", versions: ["1.0.0"] } }),
        JSON.stringify({ "relative/plugin": { id, versions: ["1.0.0"] } }),
        JSON.stringify({ [bin]: { id, versions: ["1.0.0"] } }) + " ".repeat(70_000),
      ]
    ) {
      await Deno.writeTextFile(file, bad, { mode: 0o600 });
      assertEquals(cache.get(bin), undefined, bad.slice(0, 80));
    }
    // A state dir that is a symlink, or writable by others, is not used.
    await Deno.remove(file);
    await Deno.mkdir(`${dir}/victim`, { mode: 0o700 });
    await Deno.symlink(`${dir}/victim`, `${dir}/link`);
    const viaLink = new DelegateVersionCache(`${dir}/link/cache.json`);
    viaLink.set(bin, ["1.0.0"]);
    assertEquals([...Deno.readDirSync(`${dir}/victim`)], [], "nothing written through a symlink");
    await Deno.chmod(`${dir}/state`, 0o777);
    cache.set(bin, ["1.0.0"]);
    assertEquals(cache.get(bin), undefined, "world-writable dir");
    await Deno.chmod(`${dir}/state`, 0o700);
    // Nor one whose parent is writable by others (the rule covers the whole chain).
    await Deno.chmod(dir, 0o777);
    cache.set(bin, ["0.4.0"]);
    assertEquals(cache.get(bin), undefined, "world-writable parent");
    await Deno.chmod(dir, 0o700);

    // A garbled file is replaced on the next write.
    cache.set(bin, ["1.0.0"]);
    assertEquals(cache.get(bin), ["1.0.0"]);
    assert(!(await Deno.readTextFile(file)).includes("relative"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ipamDelegate() run from source (no DENO_DIR) remembers nothing", async () => {
  const dir = await Deno.makeTempDir({ dir: TRUSTED_TMP, prefix: "ipam-test-" });
  try {
    await fakeDelegate(dir);
    const ipam = setup(dir);
    Deno.env.delete("DENO_DIR");
    await ipam().del();
    await ipam().del();
    assertEquals(await calls(dir), [
      "DEL 1.1.0",
      "VERSION 1.1.0",
      "DEL 1.0.0",
      "DEL 1.1.0",
      "VERSION 1.1.0",
      "DEL 1.0.0",
    ]);
    assertEquals([...Deno.readDirSync(`${dir}/state`)], [], "no cache file");
  } finally {
    restoreDenoDir();
    await Deno.remove(dir, { recursive: true });
  }
});
