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
  IMAGE_LIBMNL,
  IMAGE_REF,
  imageCommands,
  MIN_GLIBC,
  NODE_DENO,
  NODE_DENO_DIR,
  NODE_LIBMNL,
  SHELL_BUILTINS,
} from "../tools/image_layout.ts";
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_MAX_AGE_S } from "../deviceplugin/heartbeat.ts";

/**
 * The command words of a shell script: the first word of each simple command
 * (after `;`, `&&`, `||`, `|`, `$(`, `if`/`then`/`else`), with leading
 * variable assignments dropped; and the names of the functions it defines.
 */
export function scriptCommands(script: string): { commands: string[]; functions: string[] } {
  const commands = new Set<string>(), functions = new Set<string>();
  // Arithmetic expansions hold no command: `$(( $(date +%s) - t ))` keeps only its `$(…)`.
  const noArith = script.replace(
    /\$\(\(((?:[^()]|\$\([^()]*\))*)\)\)/g,
    (_, e: string) =>
      e.replace(
        /[^$]*(\$\([^()]*\))?[^$]*/g,
        (m) => m.includes("$(") ? m.slice(m.indexOf("$(")) : "",
      ),
  );
  const segments = noArith.replaceAll("$(", "\n").split(/\n|;|&&|\|\||\|/);
  for (let seg of segments) {
    seg = seg.trim();
    if (!seg || seg.startsWith("#") || seg === "}" || seg === "{") continue;
    const fn = /^([A-Za-z_][A-Za-z0-9_]*)\(\)\s*\{?$/.exec(seg);
    if (fn) {
      functions.add(fn[1]!);
      continue;
    }
    seg = seg.replace(/^(?:(?:if|then|else|elif|while|do|!|\{)(?:\s+|$))+/, "");
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

Deno.test("deploy/: the device plugin container is the image's entry point and reads its config from the mounted ConfigMap", async () => {
  const { pod, cm } = await parts();
  const dp = pod.containers.find((c) => c.name === "deviceplugin");
  assert(dp, "a deviceplugin container");
  const { entrypoint, cmd } = await containerfileEntry();
  assertEquals([...dp.command, ...dp.args ?? []], [...entrypoint, ...cmd], "ENTRYPOINT + CMD");
  assert(dp.command.includes(IMAGE_EXECUTABLES.deviceplugin), "runs the device plugin's file");
  const socketDir = dp.command.find((a) => a.startsWith("--socket-dir="))!;
  assert(socketDir, "--socket-dir is explicit");
  const mount = dp.volumeMounts?.find((m) => `--socket-dir=${m.mountPath}` === socketDir);
  assert(mount, `${socketDir} is a volume mount`);
  // --config-file names a key of the ConfigMap, mounted read-only.
  const file = dp.command.find((a) => a.startsWith("--config-file="))?.slice(14);
  assert(file, "--config-file is given");
  const cfgMount = dp.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
  assert(cfgMount?.readOnly, `${file} is in a read-only mount`);
  const vol = pod.volumes?.find((v) => v.name === cfgMount.name);
  assertEquals(vol?.configMap?.name, cm.metadata.name, "the mount is the ConfigMap");
  const key = vol.configMap.items?.find((i) => `${cfgMount.mountPath}/${i.path}` === file)?.key;
  assert(key && configMapData(cm)[key] !== undefined, `${file} is ConfigMap key ${key}`);
  parseDevicePluginConfig(configMapData(cm)[key]);
  const env = containerEnv(dp, { "macvtap-deviceplugin-config": configMapData(cm) });
  assertEquals(
    env.DP_MACVTAP_CONF,
    undefined,
    "not also from the environment (it would be ignored)",
  );
  assert(env.DENO_DIR?.startsWith("/tmp/"), "DENO_DIR is on the writable /tmp volume");
});

Deno.test("deploy/: the probes read the plugin's heartbeat with busybox, no Deno start", async () => {
  const { pod } = await parts();
  const dp = pod.containers.find((c) => c.name === "deviceplugin")!;
  const heartbeat = dp.command.find((a) => a.startsWith("--heartbeat-file="))?.slice(17);
  assert(heartbeat, "--heartbeat-file is given");
  assert(
    dp.volumeMounts?.some((m) => heartbeat.startsWith(`${m.mountPath}/`) && !m.readOnly),
    `${heartbeat} is on a writable volume`,
  );
  const probes = { livenessProbe: "live", readinessProbe: "ready" } as const;
  for (const [which, mode] of Object.entries(probes)) {
    const probe = dp[which as keyof typeof probes];
    assert(probe, which);
    const [sh, c, script, arg] = probe.exec.command;
    assertEquals([sh, c, arg], ["/bin/sh", "-c", mode], `${which}: sh -c SCRIPT ${mode}`);
    assert(imageCommands().includes(sh!), "busybox sh in the image");
    const { commands } = scriptCommands(script!);
    for (const cmd of commands) {
      assert(
        BUSYBOX_APPLETS.includes(cmd) || SHELL_BUILTINS.includes(cmd),
        `probe command "${cmd}" is a busybox applet or a builtin`,
      );
    }
    assert(!script!.includes("deno"), "no Deno start");
    assert(script!.includes(`f=${heartbeat}\n`), `${which} reads ${heartbeat}`);
    assert(
      script!.includes(`-gt ${HEARTBEAT_MAX_AGE_S} ]`),
      `${which} allows ${HEARTBEAT_MAX_AGE_S} s (deviceplugin/heartbeat.ts)`,
    );
    assert(probe.timeoutSeconds && probe.timeoutSeconds >= 1, `${which} timeout`);
  }
  // Four missed beats before a probe fails; a beat every HEARTBEAT_INTERVAL_MS.
  assert(HEARTBEAT_MAX_AGE_S * 1000 >= 4 * HEARTBEAT_INTERVAL_MS, "the age limit spans 4 beats");
});

Deno.test("deploy/: pod settings: arch/OS selector, no service-account token, install-cni unprivileged", async () => {
  const { pod, files, ds } = await parts();
  assertEquals(pod.nodeSelector, { "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux" });
  assertEquals(pod.automountServiceAccountToken, false, "pod: no token");
  const sa = findObject(files, "ServiceAccount", pod.serviceAccountName!);
  assertEquals(
    (sa as unknown as { automountServiceAccountToken?: boolean }).automountServiceAccountToken,
    false,
  );
  assertEquals(sa.metadata.namespace, ds.metadata.namespace);
  const init = pod.initContainers!.find((c) => c.name === "install-cni")!;
  const sc = init.securityContext!;
  assert(!sc.privileged, "install-cni is not privileged");
  assertEquals(sc.capabilities, { drop: ["ALL"], add: ["SYS_CHROOT"] }, "one capability");
  assertEquals([sc.runAsUser, sc.allowPrivilegeEscalation, sc.readOnlyRootFilesystem], [
    0,
    false,
    true,
  ]);
  // The node's root is there only to be read (the glibc check).
  const rootMount = init.volumeMounts!.find((m) =>
    pod.volumes!.find((v) => v.name === m.name)?.hostPath?.path === "/"
  );
  assert(rootMount?.readOnly, "the node's / is mounted read-only");
  assertEquals(
    pod.containers.find((c) => c.name === "deviceplugin")!.securityContext?.privileged,
    true,
    "the device plugin stays privileged (netlink, mknod on the node's /dev)",
  );
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
  // A path in the container, as the node sees it.
  const onNode = (p: string): string | undefined => {
    for (const m of init.volumeMounts ?? []) {
      const host = pod.volumes?.find((v) => v.name === m.name)?.hostPath?.path;
      if (host && (p === m.mountPath || p.startsWith(`${m.mountPath}/`))) {
        return (host === "/" ? "" : host) + p.slice(m.mountPath.length);
      }
    }
    return undefined;
  };
  // `install_atomic <image file> <destination>`, in this order: Deno, libmnl, the launcher.
  const installs = [...script.matchAll(/^\s*install_atomic (\S+) (\S+)$/gm)].map((m) => [
    m[1]!,
    onNode(m[2]!),
  ]);
  assertEquals(installs, [
    [IMAGE_EXECUTABLES.deno, NODE_DENO],
    [IMAGE_LIBMNL, NODE_LIBMNL],
    [IMAGE_EXECUTABLES.macvtap, "/opt/cni/bin/macvtap"],
  ], "what goes where (tools/image_layout.ts), Deno and libmnl before the launcher");
  const mkdirs = [...script.matchAll(/mkdir -p -m 0755 (\S+)/g)].map((m) => onNode(m[1]!));
  assert(mkdirs.includes(NODE_DENO_DIR), `the launcher's cache dir ${NODE_DENO_DIR} is made 0755`);
  assert(
    mkdirs.includes(NODE_DENO.slice(0, NODE_DENO.lastIndexOf("/"))),
    "Deno's dir is made 0755",
  );
  assert(script.includes(`need=${MIN_GLIBC}\n`), `the glibc check wants ${MIN_GLIBC}`);
  assert(script.indexOf("need=") < script.indexOf("install_atomic /"), "checked before installing");
});

Deno.test("deploy/uninstall.yaml removes what install-cni puts on the node, with the image's commands", async () => {
  const files = await manifests();
  const un = findObject(files, "DaemonSet", "macvtap-uninstall");
  const pod = daemonSetPod(un);
  const init = pod.initContainers!.find((c) => c.name === "uninstall")!;
  const script = init.command[2]!;
  for (const c of [...pod.initContainers!, ...pod.containers]) {
    assertEquals(c.image, IMAGE_REF);
    assert(imageCommands().includes(c.command[0]!), `${c.name}: ${c.command[0]} is in the image`);
    assert(!c.securityContext?.privileged && c.securityContext?.capabilities?.drop?.[0] === "ALL");
  }
  const { commands, functions } = scriptCommands(script);
  for (const cmd of commands) {
    assert(
      BUSYBOX_APPLETS.includes(cmd) || SHELL_BUILTINS.includes(cmd) || functions.includes(cmd),
      `uninstall command "${cmd}" is a busybox applet of the image or a builtin`,
    );
  }
  const onNode = (p: string): string | undefined => {
    for (const m of init.volumeMounts ?? []) {
      const host = pod.volumes?.find((v) => v.name === m.name)?.hostPath?.path;
      if (host && p.startsWith(`${m.mountPath}/`)) return host + p.slice(m.mountPath.length);
    }
    return undefined;
  };
  const removed = [...script.matchAll(/rm -r?f ((?:\S+ ?)+)$/gm)].flatMap((m) =>
    m[1]!.split(" ").map(onNode)
  );
  for (
    const p of [
      "/opt/cni/bin/macvtap",
      NODE_DENO.slice(0, NODE_DENO.lastIndexOf("/")),
      NODE_DENO_DIR.slice(0, NODE_DENO_DIR.lastIndexOf("/")),
      "/var/lib/cni/macvtap",
    ]
  ) {
    assert(removed.includes(p), `uninstall removes ${p} (removes ${removed.join(", ")})`);
  }
  assert(
    NODE_LIBMNL.startsWith(NODE_DENO.slice(0, NODE_DENO.lastIndexOf("/") + 1)),
    "libmnl goes with .deno",
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
  for (const c of containers) {
    for (const m of c.volumeMounts ?? []) {
      if (m.mountPath === "/dev") continue;
      assert(IMAGE_DIRS.includes(m.mountPath), `${c.name}: ${m.mountPath} exists in the image`);
    }
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
      '  t="$(dirname "$b")/.$(basename "$b")"\n  cp a b && mv -f b c || rm c | wc\n}\nf x y\n' +
      'age=$(( $(date +%s) - t )) && [ "$age" -lt 2 ] || { echo old; exit 1; }\n',
  );
  assertEquals(r.functions, ["f"], "functions");
  assertEquals(
    r.commands.sort(),
    [
      "[",
      "basename",
      "cmp",
      "cp",
      "date",
      "dirname",
      "echo",
      "exit",
      "f",
      "mv",
      "return",
      "rm",
      "wc",
    ],
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
