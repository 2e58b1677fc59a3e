import assert from "node:assert/strict";
import { MAX_CONFIG_FILE_BYTES, readConfigFile, watchConfigFile } from "./config_watch.ts";
import type { DevicePluginConfig } from "./config.ts";
import { Logger } from "../internal/_log.ts";

function memoryLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger({ level: "debug", sink: { write: (l) => lines.push(l) } }), lines };
}

async function until(pred: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("condition not met");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Replace `path` atomically, as kubelet swaps a ConfigMap volume's files. */
function swap(path: string, text: string): void {
  Deno.writeTextFileSync(`${path}.tmp`, text);
  Deno.renameSync(`${path}.tmp`, path);
}

Deno.test("watchConfigFile() hands each changed valid config over, and keeps the running one on a bad edit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "config-watch-" });
  const file = `${dir}/DP_MACVTAP_CONF`;
  const first = '[{"name": "lan", "lowerDevice": "eth1", "capacity": 2}]';
  Deno.writeTextFileSync(file, first);
  const { log, lines } = memoryLog();
  const seen: DevicePluginConfig[] = [];
  using _watch = watchConfigFile(file, {
    initialText: first,
    onChange: (c) => seen.push(c),
    log,
    intervalMs: 20,
  });
  try {
    assert.deepEqual(readConfigFile(file).resources[0]?.capacity, 2);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(seen.length, 0, "the same text is no change");

    swap(
      file,
      '[{"name": "lan", "lowerDevice": "eth1", "capacity": 3}, {"name": "b", "master": "eth2"}]',
    );
    await until(() => seen.length === 1);
    assert.deepEqual(seen[0]!.resources.map((r) => [r.name, r.capacity]), [["lan", 3], ["b", 100]]);
    assert(lines.some((l) => l.includes("changed: lan (eth1, bridge, 3), b (eth2, bridge, 100)")));

    swap(file, '[{"name": "lan", "lowerDevice": "eth1", "mode": "brdge"}]');
    await until(() => lines.some((l) => l.includes("keeping the running config")));
    const errors = () => lines.filter((l) => l.includes("keeping the running config")).length;
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(errors(), 1, "a bad config is reported once, not every poll");
    assert.equal(seen.length, 1, "a bad config is not applied");

    Deno.removeSync(file);
    await until(() => lines.some((l) => l.includes("cannot read the config file")));
    swap(file, "[]");
    await until(() => seen.length === 2);
    assert.equal(seen[1]!.discover, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readConfigFile() refuses an oversized or missing file with its name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "config-watch-" });
  try {
    assert.throws(() => readConfigFile(`${dir}/none`), /cannot read the config file .*none/);
    Deno.writeTextFileSync(`${dir}/big`, " ".repeat(MAX_CONFIG_FILE_BYTES + 1));
    assert.throws(() => readConfigFile(`${dir}/big`), /larger than 1048576 bytes/);
    assert.throws(() => readConfigFile(dir), /not a regular file|cannot read/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
