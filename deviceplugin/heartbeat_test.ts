import assert from "node:assert/strict";
import { registrationProblem, startHeartbeat } from "./heartbeat.ts";
import { Logger } from "../internal/_log.ts";

Deno.test("startHeartbeat() rewrites its file from the event loop with the readiness line, and removes it at close", async () => {
  const dir = await Deno.makeTempDir({ prefix: "heartbeat-" });
  const file = `${dir}/heartbeat`;
  let problem: string | undefined = "not registered with kubelet: lan";
  const lines: string[] = [];
  const hb = startHeartbeat(file, {
    problem: () => problem,
    log: new Logger({ level: "debug", sink: { write: (l) => lines.push(l) } }),
    intervalMs: 30,
  });
  try {
    assert.equal(Deno.readTextFileSync(file), "not ready: not registered with kubelet: lan\n");
    const m1 = Deno.statSync(file).mtime!.getTime();
    problem = undefined;
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(Deno.readTextFileSync(file), "ok\n");
    assert(Deno.statSync(file).mtime!.getTime() >= m1, "rewritten");
    // A stalled event loop writes nothing: the file ages.
    const before = Deno.statSync(file).mtime!.getTime();
    const until = Date.now() + 120;
    while (Date.now() < until) { /* busy: no timers run */ }
    assert.equal(Deno.statSync(file).mtime!.getTime(), before, "no beat while the loop is stalled");
    assert(lines.some((l) => l.includes("heartbeat") && l.includes("ok")));
  } finally {
    hb.close();
    hb.close();
  }
  assert.throws(() => Deno.statSync(file), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("registrationProblem() names unregistered resources and sockets gone or replaced", async () => {
  const dir = await Deno.makeTempDir({ prefix: "heartbeat-" });
  try {
    Deno.writeTextFileSync(`${dir}/a.sock`, "");
    const ino = Deno.statSync(`${dir}/a.sock`).ino;
    const view = (unregistered: string[], socketIno: number | null) => ({
      unregistered,
      plugins: new Map([["a", { endpoint: "a.sock", socketIno }]]),
    });
    assert.equal(registrationProblem(view([], ino), dir), undefined);
    assert.equal(
      registrationProblem(view(["a"], ino), dir),
      "not registered with kubelet: a",
    );
    assert.equal(registrationProblem(view([], (ino ?? 0) + 1), dir), "a: socket a.sock gone");
    Deno.removeSync(`${dir}/a.sock`);
    assert.equal(registrationProblem(view([], ino), dir), "a: socket a.sock gone");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
