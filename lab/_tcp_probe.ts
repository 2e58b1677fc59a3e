/**
 * A TCP stream to an echo server, for the migration lab: run inside a client
 * namespace (`ip netns exec NS deno run --allow-net lab/_tcp_probe.ts HOST PORT`),
 * it sends a numbered line every 20 ms and reads the echoes. It prints one
 * JSON line per event on stdout: `{"ev":"connected","t":…}`, `{"ev":"gap",
 * "from":…,"to":…}` for every silence above 100 ms between two echoes (or
 * before the end), and on
 * SIGTERM (or an error) `{"ev":"end","sent":…,"echoed":…,"error":…}`. Times
 * are wall-clock milliseconds (`performance.timeOrigin + performance.now()`).
 *
 * @module
 */

const [host, portText] = Deno.args;
const port = Number(portText);
const out = new TextEncoder();
const now = () => performance.timeOrigin + performance.now();
function emit(o: Record<string, unknown>): void {
  Deno.stdout.writeSync(out.encode(JSON.stringify(o) + "\n"));
}

let sent = 0;
let echoed = 0;
let last = 0;
let error: string | undefined;
let done = false;

function end(): never {
  // A silence still going on at the end counts too.
  const t = now();
  if (last && t - last > 100) emit({ ev: "gap", from: last, to: t });
  emit({ ev: "end", sent, echoed, ...(error ? { error } : {}) });
  Deno.exit(0);
}
Deno.addSignalListener("SIGTERM", () => {
  done = true;
  end();
});

try {
  const conn = await Deno.connect({ hostname: host!, port });
  conn.setNoDelay(true);
  last = now();
  emit({ ev: "connected", t: last });
  const writer = (async () => {
    while (!done) {
      await conn.write(out.encode(`${sent++}\n`));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  writer.catch((e) => {
    error = `write: ${e instanceof Error ? e.message : String(e)}`;
    end();
  });
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) {
      error = "closed by the server";
      break;
    }
    const t = now();
    if (t - last > 100) emit({ ev: "gap", from: last, to: t });
    last = t;
    for (let i = 0; i < n; i++) if (buf[i] === 10) echoed++;
  }
} catch (e) {
  error = e instanceof Error ? e.message : String(e);
}
end();
