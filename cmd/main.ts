/**
 * The `macvtap` executable: the CNI plugin (driven by `CNI_COMMAND`). The
 * Kubernetes device plugin is its own executable (`cmd/deviceplugin.ts`,
 * built as `macvtap-deviceplugin`); run from source, `macvtap deviceplugin`
 * still imports it. The CNI plugin is imported statically:
 * a dynamic import makes the bundler wrap every module in a lazy initializer
 * with an exports object of getters, which cost ~0.5 ms per CNI call
 * (measured with the timing marks) and 18 KB of bundle.
 *
 * @module
 */

import { mark } from "../internal/_timing.ts";
import { VERSION } from "./version.ts";
import { errorText } from "../internal/_error_text.ts";
import { runCniMain } from "./cni.ts";

mark("start");

const HELP = `macvtap ${VERSION}: macvtap networking for containers, pods and VMs

Usage:
  macvtap                       CNI plugin: CNI_COMMAND=ADD|DEL|CHECK|VERSION|STATUS|GC,
                                network config on stdin, result or error JSON on stdout
  macvtap-deviceplugin [flags]  Kubernetes device plugin: a separate executable
                                (see 'macvtap-deviceplugin --help')
  macvtap --version             print the version
  macvtap --help                print this help

CNI versions: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0.
Documentation: README.md (config reference, ip equivalents, deployment).
`;

const [first] = Deno.args;

if (first === "deviceplugin") {
  // The device plugin is its own file (dist/macvtap-deviceplugin, built from
  // cmd/deviceplugin.ts, with its own V8 flags); from source it is imported here.
  if (!new URL(import.meta.url).pathname.endsWith("/cmd/main.ts")) {
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        "macvtap: the device plugin is its own executable: run macvtap-deviceplugin " +
          "(dist/macvtap-deviceplugin; /usr/local/bin/macvtap-deviceplugin in the image)\n",
      ),
    );
    Deno.exit(2);
  }
  // A non-literal specifier keeps the bundler from inlining gRPC into the CNI bundle.
  const source = "./deviceplugin.ts";
  const { main } = (await import(source)) as { main: (args: string[]) => Promise<number> };
  try {
    Deno.exit(await main(Deno.args.slice(1)));
  } catch (err) {
    Deno.stderr.writeSync(new TextEncoder().encode(`macvtap: ${errorText(err)}\n`));
    Deno.exit(1);
  }
} else if (first === "--version" || first === "-v") {
  Deno.stdout.writeSync(new TextEncoder().encode(`macvtap ${VERSION}\n`));
} else if (first === "--help" || first === "-h" || first === "help") {
  Deno.stdout.writeSync(new TextEncoder().encode(HELP));
} else if (first !== undefined) {
  Deno.stderr.writeSync(new TextEncoder().encode(`macvtap: unknown argument "${first}"\n${HELP}`));
  Deno.exit(2);
} else {
  await runCniMain();
}
