/**
 * The `macvtap` executable: the CNI plugin (driven by `CNI_COMMAND`) and, as
 * a subcommand, the Kubernetes device plugin.
 *
 * The CNI path imports nothing but the plugin; the device plugin (gRPC) is
 * loaded only for `macvtap deviceplugin`. The plugin is imported statically:
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
  macvtap deviceplugin [flags]  Kubernetes device plugin (config in DP_MACVTAP_CONF);
                                see 'macvtap deviceplugin --help'
  macvtap --version             print the version
  macvtap --help                print this help

CNI versions: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0.
Documentation: README.md (config reference, ip equivalents, deployment).
`;

const [first] = Deno.args;

if (first === "deviceplugin") {
  const rest = Deno.args.slice(1);
  if (!rest.some((a) => a === "--probe" || a === "--help" || a === "-h")) {
    // A daemon: under its own V8 flags, not the launcher's (cmd/_dp_exec.ts).
    const { execWithDevicePluginFlags } = await import("./_dp_exec.ts");
    execWithDevicePluginFlags();
  }
  const { loadDevicePlugin } = await import("./_embedded.ts");
  let main;
  try {
    main = await loadDevicePlugin();
  } catch (err) {
    Deno.stderr.writeSync(
      new TextEncoder().encode(`macvtap: ${errorText(err)}\n`),
    );
    Deno.exit(1);
  }
  Deno.exit(await main(Deno.args.slice(1)));
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
