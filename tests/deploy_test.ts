/**
 * deploy/ agrees with the code: every manifest parses as YAML, the ConfigMap
 * passes the device plugin's validator, the NetworkAttachmentDefinition's
 * config passes the CNI's parser and names a resource the device plugin
 * serves, every command and path the DaemonSet names exists in the image
 * (tools/image_layout.ts, which the image build stages exactly), volumes and
 * mounts match, and the KubeVirt binding, VM and pod examples reference the
 * same binding, network and resource. Root-free, no image build needed.
 *
 * @module
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  configMapData,
  type Container,
  containerEnv,
  containerfileEntry,
  daemonSetPod,
  docsOf,
  findObject,
  type K8sObject,
  loadManifests,
  type ManifestFile,
} from "./_deploy.ts";
import { parseDevicePluginConfig, resourceNameOf } from "../deviceplugin/mod.ts";
import { parseNetConf } from "../config/mod.ts";
import { DP_MALLOC_ARENA_MAX, DP_V8_FLAGS } from "../cmd/_dp_exec.ts";
import {
  BUSYBOX_APPLETS,
  IMAGE_DIRS,
  IMAGE_EXECUTABLES,
  IMAGE_REF,
  imageCommands,
  NODE_DENO,
  SHELL_BUILTINS,
} from "../tools/image_layout.ts";

/**
 * The command words of a shell script: the first word of each simple command
 * (after `;`, `&&`, `||`, `|`, `$(`, `if`/`then`/`else`), with leading
 * variable assignments dropped; and the names of the functions it defines.
 */
export function scriptCommands(script: string): { commands: string[]; functions: string[] } {
  const commands = new Set<string>(), functions = new Set<string>();
  const segments = script.replaceAll("$(", "\n").split(/\n|;|&&|\|\||\|/);
  for (let seg of segments) {
    seg = seg.trim();
    if (!seg || seg.startsWith("#") || seg === "}" || seg === "{") continue;
    const fn = /^([A-Za-z_][A-Za-z0-9_]*)\(\)\s*\{?$/.exec(seg);
    if (fn) {
      functions.add(fn[1]!);
      continue;
    }
    seg = seg.replace(/^(?:(?:if|then|else|elif|while|do|!)\s+)+/, "");
    seg = seg.replace(/^(?:[A-Za-z_][A-Za-z0-9_]*=(?:"[^"]*"?|\S*)\s*)+/, "");
    const word = seg.split(/\s+/)[0]?.replace(/^["']|["']$/g, "");
    if (word && !["fi", "done", "}"].includes(word)) commands.add(word);
  }
  return { commands: [...commands], functions: [...functions] };
}

let cached: ManifestFile[] | undefined;
async function manifests(): Promise<ManifestFile[]> {
  return cached ??= await loadManifests();
}

async function parts() {
  const files = await manifests();
  const ds = findObject(files, "DaemonSet", "macvtap");
  const cm = findObject(files, "ConfigMap", "macvtap-deviceplugin-config");
  const nad = findObject(files, "NetworkAttachmentDefinition");
  const pod = daemonSetPod(ds);
  const containers: Container[] = [...pod.initContainers ?? [], ...pod.containers];
  return { files, ds, cm, nad, pod, containers };
}

Deno.test("deploy/: every YAML file parses, each document is a Kubernetes object or a patch", async () => {
  const files = await manifests();
  const names = files.map((f) => f.file);
  for (
    const f of ["macvtap.yaml", "nad.yaml", "kubevirt-binding.yaml", "vm.yaml", "pod.yaml"]
  ) {
    assert(names.includes(f), `deploy/${f} is parsed (found ${names.join(", ")})`);
  }
  for (const f of files) {
    assert(f.docs.length > 0, `deploy/${f.file} has a document`);
    for (const d of f.docs) {
      if (f.file === "kubevirt-binding.yaml") continue; // a merge patch, no kind
      assert(typeof d.apiVersion === "string" && typeof d.kind === "string", `${f.file}: kind`);
      assert(typeof d.metadata?.name === "string", `${f.file}: ${d.kind} has a name`);
    }
  }
});

Deno.test("deploy/: the loader refuses duplicate keys and YAML errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/dup.yaml`, "kind: A\nkind: B\n");
    let err: unknown;
    await loadManifests(dir).catch((e) => err = e);
    assert(err instanceof SyntaxError, `duplicate key refused: ${err}`);
    await Deno.writeTextFile(`${dir}/dup.yaml`, "a: [1, 2\n");
    err = undefined;
    await loadManifests(dir).catch((e) => err = e);
    assert(err instanceof SyntaxError, `unclosed flow sequence refused: ${err}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy/: the ConfigMap's DP_MACVTAP_CONF passes the device plugin's validator", async () => {
  const { cm, ds } = await parts();
  assertEquals(cm.metadata.namespace, ds.metadata.namespace, "ConfigMap namespace");
  const conf = parseDevicePluginConfig(configMapData(cm).DP_MACVTAP_CONF);
  assert(!conf.discover && conf.resources.length > 0, "the example lists resources");
  // The validator really runs on this text: a broken copy is refused.
  let err: unknown;
  try {
    parseDevicePluginConfig(configMapData(cm).DP_MACVTAP_CONF!.replace('"bridge"', '"brdge"'));
  } catch (e) {
    err = e;
  }
  assert(err instanceof Error && /mode/.test(err.message), `a bad mode is refused: ${err}`);
});

Deno.test("deploy/: the NetworkAttachmentDefinition's config passes the CNI parser and names a served resource", async () => {
  const { cm, nad } = await parts();
  const raw = JSON.parse((nad as unknown as { spec: { config: string } }).spec.config);
  assertEquals(raw.type, "macvtap", "CNI type");
  assertEquals(raw.name, nad.metadata.name, "CNI network name = NAD name");
  for (const command of ["ADD", "CHECK", "DEL", "STATUS"] as const) {
    parseNetConf(raw, { command, args: "" });
  }
  const conf = parseDevicePluginConfig(configMapData(cm).DP_MACVTAP_CONF);
  const served = conf.resources.map((r) => resourceNameOf(r.name));
  const wanted = nad.metadata.annotations?.["k8s.v1.cni.cncf.io/resourceName"];
  assert(wanted && served.includes(wanted), `resourceName ${wanted} is served (${served})`);
  // As Multus calls it: the config plus the allocated device's ID.
  const name = wanted.slice(wanted.indexOf("/") + 1);
  const withDevice = parseNetConf({ ...raw, deviceID: `${name}-0` }, { command: "ADD", args: "" });
  assertEquals(withDevice.deviceID, `${name}-0`, "deviceID");
});

Deno.test("deploy/: every container runs the image's own commands", async () => {
  const { containers } = await parts();
  const inImage = new Set(imageCommands());
  for (const c of containers) {
    assertEquals(c.image, IMAGE_REF, `${c.name} image`);
    assert(inImage.has(c.command[0]!), `${c.name}: ${c.command[0]} is in the image`);
    const words = [...c.command, ...c.args ?? []];
    for (const probe of [c.readinessProbe, c.livenessProbe]) {
      if (!probe) continue;
      assert(inImage.has(probe.exec.command[0]!), `${c.name} probe: ${probe.exec.command[0]}`);
      words.push(...probe.exec.command);
    }
    for (const w of words) {
      for (const p of w.match(/\/usr\/local\/bin\/[\w.-]+/g) ?? []) {
        assert(inImage.has(p), `${c.name}: ${p} is in the image`);
      }
    }
  }
});

Deno.test("deploy/: the device plugin container runs with the plugin's own V8 flags and malloc arenas", async () => {
  const { pod, cm } = await parts();
  const dp = pod.containers.find((c) => c.name === "deviceplugin");
  assert(dp, "a deviceplugin container");
  // With other flags the plugin would re-exec itself (cmd/_dp_exec.ts): one process, one config.
  const flags = dp.command.filter((a) => a.startsWith("--v8-flags="));
  assertEquals(flags, [`--v8-flags=${DP_V8_FLAGS}`]);
  const env = containerEnv(dp, { "macvtap-deviceplugin-config": configMapData(cm) });
  assertEquals(env.MALLOC_ARENA_MAX, DP_MALLOC_ARENA_MAX);
});

Deno.test("deploy/: the device plugin container is the image's entry point, its probes the same program", async () => {
  const { pod } = await parts();
  const dp = pod.containers.find((c) => c.name === "deviceplugin");
  assert(dp, "a deviceplugin container");
  const { entrypoint, cmd } = await containerfileEntry();
  assertEquals([...dp.command, ...dp.args ?? []], [...entrypoint, ...cmd], "ENTRYPOINT + CMD");
  const socketDir = dp.command.find((a) => a.startsWith("--socket-dir="))!;
  assert(socketDir, "--socket-dir is explicit");
  const mount = dp.volumeMounts?.find((m) => `--socket-dir=${m.mountPath}` === socketDir);
  assert(mount, `${socketDir} is a volume mount`);
  for (const probe of [dp.readinessProbe, dp.livenessProbe]) {
    assert(probe, "readiness and liveness probes");
    const argv = probe.exec.command;
    assert(argv.includes("--probe"), "probe runs --probe");
    assert(argv.includes(socketDir), `probe uses ${socketDir}`);
    // The same program: deno run … /usr/local/bin/macvtap deviceplugin.
    const at = argv.indexOf(IMAGE_EXECUTABLES.macvtap);
    assert(at > 0 && argv[at + 1] === "deviceplugin", "probe runs macvtap deviceplugin");
    assertEquals(argv[0], IMAGE_EXECUTABLES.deno, "probe interpreter");
    assert((probe.timeoutSeconds ?? 1) >= 2, "probe timeout leaves room for Deno's start");
  }
  const env = containerEnv(dp, {
    "macvtap-deviceplugin-config": configMapData(
      findObject(await manifests(), "ConfigMap", "macvtap-deviceplugin-config"),
    ),
  });
  assert(env.DP_MACVTAP_CONF, "DP_MACVTAP_CONF comes from the ConfigMap");
  assert(env.DENO_DIR?.startsWith("/tmp/"), "DENO_DIR is on the writable /tmp volume");
});

Deno.test("deploy/: the install script uses only the image's busybox applets and installs where the launcher looks", async () => {
  const { pod } = await parts();
  const init = pod.initContainers?.find((c) => c.name === "install-cni");
  assert(init, "an install-cni init container");
  assertEquals(init.command.slice(0, 2), ["/bin/sh", "-ec"], "shell invocation");
  const script = init.command[2]!;
  const { commands, functions } = scriptCommands(script);
  for (const cmd of commands) {
    assert(
      BUSYBOX_APPLETS.includes(cmd) || SHELL_BUILTINS.includes(cmd) || functions.includes(cmd),
      `install script command "${cmd}" is a busybox applet of the image, a builtin or a function`,
    );
  }
  assert(commands.includes("mv") && commands.includes("sync"), "rename after fsync");
  // Sources are image files; destinations are inside a hostPath mount.
  for (const src of script.match(/\/usr\/local\/bin\/[\w.-]+/g) ?? []) {
    assert(imageCommands().includes(src), `${src} is in the image`);
  }
  const mount = init.volumeMounts?.[0];
  assert(mount, "install-cni mounts the CNI bin dir");
  const vol = pod.volumes?.find((v) => v.name === mount.name);
  const hostDir = vol?.hostPath?.path;
  assert(hostDir, `${mount.name} is a hostPath volume`);
  // `<install function> <image file> <destination>`
  const denoDest = new RegExp(`${IMAGE_EXECUTABLES.deno}\\s+(\\S+)`).exec(script)?.[1];
  assert(
    denoDest && denoDest.startsWith(`${mount.mountPath}/`),
    "Deno is installed into the mount",
  );
  assertEquals(
    denoDest.replace(mount.mountPath, hostDir),
    NODE_DENO,
    "Deno lands where the launcher's shebang (tools/image_layout.ts NODE_DENO) looks",
  );
  assert(
    // `<install function> <image file> /<destination>`, in this order.
    script.indexOf(`${IMAGE_EXECUTABLES.deno} /`) <
      script.indexOf(`${IMAGE_EXECUTABLES.macvtap} /`),
    "Deno is installed before the launcher",
  );
  assert(
    script.includes(`${mount.mountPath}/macvtap`),
    "the plugin is installed as <bin dir>/macvtap",
  );
});

Deno.test("deploy/: volumes and mounts match; mount points exist in the image", async () => {
  const { pod, containers, ds, files } = await parts();
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  assertEquals(volumes.size, pod.volumes?.length, "volume names are unique");
  const used = new Set<string>();
  for (const c of containers) {
    const paths = new Set<string>();
    for (const m of c.volumeMounts ?? []) {
      assert(volumes.has(m.name), `${c.name}: volume ${m.name} is declared`);
      assert(m.mountPath.startsWith("/"), `${c.name}: ${m.mountPath} is absolute`);
      assert(!paths.has(m.mountPath), `${c.name}: ${m.mountPath} mounted once`);
      paths.add(m.mountPath);
      used.add(m.name);
    }
  }
  for (const v of volumes.values()) {
    assert(used.has(v.name), `volume ${v.name} is mounted`);
    if (v.hostPath) assert(v.hostPath.path.startsWith("/"), `${v.name}: absolute hostPath`);
  }
  const sa = pod.serviceAccountName ?? "default";
  const account = findObject(files, "ServiceAccount", sa);
  assertEquals(account.metadata.namespace, ds.metadata.namespace, "ServiceAccount namespace");
  findObject(files, "Namespace", ds.metadata.namespace);
  assert(pod.hostNetwork === true, "hostNetwork: macvtaps are created in the node's netns");
  const spec = ds as unknown as {
    spec: { selector: { matchLabels: Record<string, string> }; template: K8sObject };
  };
  for (const [k, v] of Object.entries(spec.spec.selector.matchLabels)) {
    assertEquals(spec.spec.template.metadata.labels?.[k], v, `template label ${k}`);
  }
  // Directories the mounts need are in the image (a runtime can create them, but a
  // read-only or minimal root may not let it).
  for (const dir of ["/tmp", "/var/lib/kubelet/device-plugins"]) {
    assert(IMAGE_DIRS.includes(dir), `${dir} exists in the image`);
  }
});

Deno.test("deploy/: the KubeVirt binding, the VM and the pod use the same binding, network and resource", async () => {
  const { files, nad } = await parts();
  const [patch] = docsOf(files, "kubevirt-binding.yaml") as {
    spec: {
      configuration: { network: { binding: Record<string, { domainAttachmentType: string }> } };
    };
  }[];
  const bindings = patch!.spec.configuration.network.binding;
  const vm = findObject(files, "VirtualMachine") as unknown as {
    metadata: { namespace?: string };
    spec: {
      template: {
        spec: {
          domain: { devices: { interfaces: { name: string; binding?: { name: string } }[] } };
          networks: { name: string; multus?: { networkName: string }; pod?: unknown }[];
        };
      };
    };
  };
  const t = vm.spec.template.spec;
  const macvtapIfaces = t.domain.devices.interfaces.filter((i) => i.binding);
  assert(macvtapIfaces.length > 0, "the VM has an interface with a network binding");
  for (const iface of t.domain.devices.interfaces) {
    assert(t.networks.some((n) => n.name === iface.name), `interface ${iface.name} has a network`);
  }
  for (const iface of macvtapIfaces) {
    const b = bindings[iface.binding!.name];
    assert(b, `binding ${iface.binding!.name} is registered by kubevirt-binding.yaml`);
    assertEquals(b.domainAttachmentType, "tap", "domainAttachmentType");
    const net = t.networks.find((n) => n.name === iface.name)!;
    assertEquals(net.multus?.networkName, nad.metadata.name, `network of ${iface.name}`);
  }
  assertEquals(
    vm.metadata.namespace ?? "default",
    nad.metadata.namespace ?? "default",
    "namespace",
  );

  const pod = findObject(files, "Pod") as unknown as K8sObject & {
    spec: { containers: { resources?: { limits?: Record<string, unknown> } }[] };
  };
  assertEquals(
    pod.metadata.annotations?.["k8s.v1.cni.cncf.io/networks"],
    nad.metadata.name,
    "pod networks annotation",
  );
  const resource = nad.metadata.annotations?.["k8s.v1.cni.cncf.io/resourceName"]!;
  assert(
    pod.spec.containers.some((c) => c.resources?.limits?.[resource] !== undefined),
    `the pod requests ${resource}`,
  );
});

Deno.test("scriptCommands() finds commands after separators and in substitutions", () => {
  const r = scriptCommands(
    'f() {\n  a=$1 b=$2\n  if cmp -s "$a" "$b"; then echo same; return 0; fi\n' +
      '  t="$(dirname "$b")/.$(basename "$b")"\n  cp a b && mv -f b c || rm c | wc\n}\nf x y\n',
  );
  assertEquals(r.functions, ["f"], "functions");
  assertEquals(
    r.commands.sort(),
    ["basename", "cmp", "cp", "dirname", "echo", "f", "mv", "return", "rm", "wc"],
    "commands",
  );
});

Deno.test("the CNI start-up path (cmd/cni.ts) loads only this repository's modules: no yaml, no npm, no node:", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "cmd/cni.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  assert(info.modules.length > 10, "deno info lists the graph");
  const foreign = info.modules.map((m) => m.specifier).filter((s) => !s.startsWith("file://"));
  assertEquals(foreign, [], "modules outside the repository on the CNI path");
});
