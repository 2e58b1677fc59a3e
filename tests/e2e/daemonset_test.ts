/**
 * The DaemonSet of deploy/macvtap.yaml, run for real: its containers run with
 * podman exactly as the manifest specifies them (command, args, env from the
 * ConfigMap, privileges, memory limit, hostPath volumes bound from a
 * temporary "node root", emptyDir as tmpfs, host network) inside the lab host
 * namespace, which plays the node. The image is built first
 * (`tools/image.ts`, offline) and loaded from its OCI archive.
 *
 * Node root mapping: hostPath `P` is `/tmp/mvdp-<id>/node/P`, except `/dev`: device
 * nodes are global to the kernel, and the lab's macvtaps appear in the real
 * devtmpfs, so the node's /dev is the machine's /dev (as on a real node).
 *
 * The node's CNI calls run the installed `<node>/opt/cni/bin/macvtap` in a
 * private mount namespace where `<node>/opt` is bound over `/opt` (so the
 * launcher's `/opt/cni/bin/.deno/deno` is the installed Deno, and the
 * machine's own Deno under /opt is hidden), with the lab host as network
 * namespace: first directly with CNI env, then as a pod sandbox through
 * containerd's CRI (containerd itself runs in such a mount namespace; the
 * pod's netns is reached through containerd's mount namespace). Its config is
 * the NAD's plus `deviceID` (what Multus delegates) plus host-local IPAM,
 * because containerd wants an IP on its primary network.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ExecResult, run, runOk } from "../../lab/mod.ts";
import {
  E2eLab,
  type E2eLab as LabT,
  note,
  REF_CNI_DIR,
  skipUnless,
  unmountUnder,
  waitFor,
  writePodmanConfig,
} from "../../lab/e2e.ts";
import {
  configMapData,
  type Container,
  containerEnv,
  daemonSetPod,
  findObject,
  loadManifests,
  type PodSpec,
} from "../_deploy.ts";
import { FakeKubelet } from "../../lab/kubelet.ts";
import { Containerd } from "./_containerd.ts";
import { CriClient, sandboxNetns } from "./_cri.ts";
import { endpointOf, parseDevicePluginConfig, resourceNameOf } from "../../deviceplugin/mod.ts";
import { IMAGE_EXECUTABLES, IMAGE_REF } from "../../tools/image_layout.ts";
import { CNI_BYTES_DIGITS, CNI_BYTES_MARKER, cniPart, DP_MARKER } from "../../cmd/_embedded.ts";

const repoRoot = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const ignore = skipUnless("/usr/bin/podman", "/usr/sbin/runc", "/usr/bin/unshare") !== undefined;

/** Where hostPath `path` lives on the test's node. */
function nodePath(nodeRoot: string, path: string): string {
  return path === "/dev" ? "/dev" : `${nodeRoot}${path}`;
}

/** "160Mi" → "160m" (podman's units are powers of 1024 too). */
function podmanMemory(q: string): string {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(q);
  if (!m) throw new Error(`unsupported memory quantity ${q}`);
  return `${m[1]}${{ Ki: "k", Mi: "m", Gi: "g" }[m[2] ?? ""] ?? "b"}`;
}

/**
 * `podman run` arguments for container `c` of `pod`, as the kubelet would
 * set it up: everything the manifest says, nothing else.
 */
async function podmanRunArgs(
  c: Container,
  pod: PodSpec,
  opts: { name: string; nodeRoot: string; env: Record<string, string> },
): Promise<string[]> {
  const args = ["--name", opts.name, "--pull=never"];
  if (pod.hostNetwork) args.push("--network", "host");
  if (c.securityContext?.privileged) args.push("--privileged");
  if (c.resources?.limits?.memory) args.push("--memory", podmanMemory(c.resources.limits.memory));
  for (const [k, v] of Object.entries(opts.env)) args.push("--env", `${k}=${v}`);
  for (const m of c.volumeMounts ?? []) {
    const v = pod.volumes?.find((x) => x.name === m.name);
    if (!v) throw new Error(`${c.name}: no volume ${m.name}`);
    if (v.hostPath) {
      const src = nodePath(opts.nodeRoot, v.hostPath.path);
      if (v.hostPath.type === "DirectoryOrCreate") await Deno.mkdir(src, { recursive: true });
      else if (!(await Deno.stat(src)).isDirectory) throw new Error(`${src} is not a directory`);
      args.push("--volume", `${src}:${m.mountPath}${m.readOnly ? ":ro" : ""}`);
    } else if (v.emptyDir) {
      const size = v.emptyDir.sizeLimit ? `,tmpfs-size=${podmanMemory(v.emptyDir.sizeLimit)}` : "";
      if (v.emptyDir.medium !== "Memory") throw new Error(`${v.name}: only memory emptyDirs`);
      args.push("--mount", `type=tmpfs,destination=${m.mountPath}${size}`);
    } else {
      throw new Error(`${v.name}: unsupported volume type`);
    }
  }
  // command replaces the image's ENTRYPOINT, args its CMD.
  args.push("--entrypoint", JSON.stringify(c.command), IMAGE_REF, ...c.args ?? []);
  return args;
}

/** The node: the lab host netns, a node root, podman set up with the image loaded. */
interface Node {
  lab: LabT;
  root: string;
  podman(...args: string[]): Promise<ExecResult>;
  /**
   * Run the node's installed CNI plugin (`/opt/cni/bin/<plugin>`, default macvtap; argv after
   * it) with CNI env and stdin.
   */
  cni(
    env: Record<string, string>,
    stdin: string,
    argv?: string[],
    plugin?: string,
  ): Promise<ExecResult>;
}

async function makeNode(lab: LabT, archive: string): Promise<Node> {
  // A short path: the device-plugin sockets under the node root and conmon's sockets under
  // podman's run root must fit sun_path (108 bytes); conmon falls back to a 20 s timeout.
  const short = `/tmp/mvdp-${lab.id}`;
  const root = `${short}/node`;
  await Deno.mkdir(root, { recursive: true });
  lab.defer(`rm -r ${short}`, async () => {
    await unmountUnder(short);
    await Deno.remove(short, { recursive: true });
  });
  // podman creates its blob-info cache there whatever its storage root is.
  const hadVarLibContainers = await Deno.stat("/var/lib/containers").then(() => true, () => false);
  if (!hadVarLibContainers) {
    lab.defer(
      "rm -r /var/lib/containers",
      () => Deno.remove("/var/lib/containers", { recursive: true }).catch(() => {}),
    );
  }
  const env = await writePodmanConfig(`${lab.dir}/podman`, {
    pluginDirs: [REF_CNI_DIR],
    runroot: `${short}/run`,
  });
  const podman = async (...args: string[]) => {
    const t0 = performance.now();
    const r = await lab.inHost(["podman", ...args], { env, timeoutMs: 120_000 });
    const ms = performance.now() - t0;
    if (ms > 3000) note(`podman ${args[0]} took ${ms.toFixed(0)} ms`);
    return r;
  };
  lab.defer("podman rm -a", async () => {
    const r = await podman("rm", "--force", "--all", "--time", "0");
    if (r.code !== 0) throw new Error(r.stderr);
  });
  const loaded = await podman("load", "--quiet", "--input", archive);
  assert.deepStrictEqual(loaded.code, 0, `podman load: ${loaded.stderr}`);
  assert(loaded.stdout.includes(IMAGE_REF), `podman load: ${loaded.stdout}`);
  const cni = (
    cniEnv: Record<string, string>,
    stdin: string,
    argv: string[] = [],
    plugin = "macvtap",
  ) =>
    run([
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount --bind "$0" /opt && exec "$@"',
      `${root}/opt`,
      "nsenter",
      `--net=/run/netns/${lab.hostNs}`,
      "env",
      "-i",
      "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
      ...Object.entries(cniEnv).map(([k, v]) => `${k}=${v}`),
      `/opt/cni/bin/${plugin}`,
      ...argv,
    ], { stdin, timeoutMs: 60_000 });
  return { lab, root, podman, cni };
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * `exe` (a built macvtap: CNI part + device-plugin payload) with its CNI part
 * edited by `edit`, line 2's length recomputed as tools/build.ts writes it.
 */
function editCniPart(exe: Uint8Array, edit: (cni: string) => string): Uint8Array {
  const cni = cniPart(exe);
  assert(cni, "the image's macvtap has a CNI part and a payload");
  const dec = new TextDecoder();
  const text = edit(dec.decode(cni));
  const lengthLine = (n: number) =>
    `${CNI_BYTES_MARKER}${String(n).padStart(CNI_BYTES_DIGITS, "0")}\n`;
  const [shebang, line2, ...rest] = text.split("\n");
  assert.deepStrictEqual(
    `${line2}\n`,
    lengthLine(cni.length),
    "line 2 holds the CNI part's length",
  );
  const body = `${shebang}\n${lengthLine(0)}${rest.join("\n")}`;
  const n = new TextEncoder().encode(body).length;
  const out = new TextEncoder().encode(
    `${shebang}\n${lengthLine(n)}${rest.join("\n")}${dec.decode(exe.subarray(cni.length))}`,
  );
  assert(cniPart(out)?.length === n, "the edited file's line 2 is its CNI part's length");
  return out;
}

/** ifindex and kind of `name` in the netns at path `ns`, or undefined when it is not there. */
async function linkIn(
  ns: string,
  name: string,
): Promise<{ ifindex: number; kind: string | undefined } | undefined> {
  const r = await run(["nsenter", `--net=${ns}`, "ip", "-j", "-d", "link", "show", "dev", name]);
  if (r.code !== 0) {
    if (/does not exist/.test(r.stderr)) return undefined;
    throw new Error(`ip link show ${name} in ${ns}: ${r.stderr}`);
  }
  const [l] = JSON.parse(r.stdout) as { ifindex: number; linkinfo?: { info_kind?: string } }[];
  return l && { ifindex: l.ifindex, kind: l.linkinfo?.info_kind };
}

Deno.test({
  name:
    "DaemonSet deploy/macvtap.yaml under podman: install, upgrade under load, device plugin, probes, pod CNI",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await E2eLab.create();
    const files = await loadManifests();
    const ds = findObject(files, "DaemonSet", "macvtap");
    const pod = daemonSetPod(ds);
    const configMaps = {
      "macvtap-deviceplugin-config": configMapData(
        findObject(files, "ConfigMap", "macvtap-deviceplugin-config"),
      ),
    };
    const dpConf = parseDevicePluginConfig(
      configMaps["macvtap-deviceplugin-config"].DP_MACVTAP_CONF,
    );
    assert(!dpConf.discover, "the ConfigMap lists resources");
    const resource = dpConf.resources[0]!;
    // The node's NIC the ConfigMap names (eth1): a veth end in the lab host netns.
    await runOk([
      "ip",
      "-n",
      lab.hostNs,
      "link",
      "add",
      resource.lowerDevice,
      "type",
      "veth",
      "peer",
      "name",
      `${resource.lowerDevice}p`,
      "netns",
      lab.peerNs,
    ]);
    await runOk(["ip", "-n", lab.hostNs, "link", "set", resource.lowerDevice, "up"]);
    await runOk(["ip", "-n", lab.peerNs, "link", "set", `${resource.lowerDevice}p`, "up"]);

    const t0 = performance.now();
    const archive = `${lab.dir}/image.oci.tar`;
    await runOk([Deno.execPath(), "run", "-A", `${repoRoot}/tools/image.ts`, "--out", archive], {
      timeoutMs: 300_000,
    });
    const staged = `${repoRoot}/build/image/rootfs`;
    note(`image built in ${(performance.now() - t0).toFixed(0)} ms`);
    const node = await makeNode(lab, archive);
    const binDir = `${node.root}/opt/cni/bin`;
    const install = pod.initContainers!.find((c) => c.name === "install-cni")!;
    const runInstall = async (name: string, image = IMAGE_REF): Promise<string> => {
      const args = await podmanRunArgs(install, pod, {
        name,
        nodeRoot: node.root,
        env: containerEnv(install, configMaps),
      });
      args[args.indexOf(IMAGE_REF)] = image;
      const r = await node.podman("run", "--rm", ...args);
      assert.deepStrictEqual(r.code, 0, `install-cni (${image}): ${r.stderr}${r.stdout}`);
      return r.stdout;
    };

    await t.step("install-cni puts Deno and macvtap into the node's CNI bin dir", async () => {
      const out = await runInstall(`install-${lab.id}-1`);
      assert(/installed \/host\/opt\/cni\/bin\/\.deno\/deno/.test(out), out);
      assert(/installed \/host\/opt\/cni\/bin\/macvtap/.test(out), out);
      // The node gets Deno whole and only the CNI part of macvtap (the part before the
      // device-plugin payload, cmd/_embedded.ts); the image keeps the whole file, which the
      // device plugin container runs.
      const imageMacvtap = await Deno.readFile(`${staged}${IMAGE_EXECUTABLES.macvtap}`);
      const cni = cniPart(imageMacvtap);
      assert(cni && cni.length < imageMacvtap.length, "the image's macvtap carries the payload");
      for (
        const [dest, expected] of [
          [`${binDir}/macvtap`, cni],
          [`${binDir}/.deno/deno`, await Deno.readFile(`${staged}${IMAGE_EXECUTABLES.deno}`)],
        ] as const
      ) {
        const st = await Deno.stat(dest);
        assert.deepStrictEqual(st.mode! & 0o777, 0o755, `${dest} mode`);
        assert.deepStrictEqual(
          await sha256(await Deno.readFile(dest)),
          await sha256(expected),
          `${dest} content`,
        );
      }
      const names = [...Deno.readDirSync(binDir)].map((e) => e.name).sort();
      assert.deepStrictEqual(names, [".deno", "macvtap"], "no temp files left in the bin dir");
      const v = await node.cni({}, "", ["--version"]);
      assert.deepStrictEqual(
        v.stdout.trim(),
        "macvtap 0.1.0",
        `installed launcher runs: ${v.stderr}`,
      );
    });

    await t.step("a second run is a no-op", async () => {
      const before = (await Deno.stat(`${binDir}/macvtap`)).ino;
      const out = await runInstall(`install-${lab.id}-2`);
      assert.deepStrictEqual(
        out.trim().split("\n"),
        ["/host/opt/cni/bin/.deno/deno is up to date", "/host/opt/cni/bin/macvtap is up to date"],
        "second install",
      );
      assert.deepStrictEqual(
        (await Deno.stat(`${binDir}/macvtap`)).ino,
        before,
        "file not replaced",
      );
    });

    await t.step(
      "an upgrade replaces the plugin while ADD/DEL run against the old one",
      async () => {
        // The "new release": the same image with a macvtap that reports another version.
        const ctx = `${lab.dir}/upgrade`;
        await Deno.mkdir(ctx);
        // Its CNI part is longer than the old one: line 2 is recomputed, as a build writes it.
        const next = editCniPart(
          await Deno.readFile(`${staged}${IMAGE_EXECUTABLES.macvtap}`),
          (c) => {
            const edited = c.replace('var VERSION = "0.1.0";', 'var VERSION = "0.1.0-next";');
            assert(edited !== c, "the bundle carries the version string");
            return edited;
          },
        );
        await Deno.writeFile(`${ctx}/macvtap`, next, { mode: 0o755 });
        await Deno.writeTextFile(
          `${ctx}/Containerfile`,
          `FROM ${IMAGE_REF}\nCOPY macvtap ${IMAGE_EXECUTABLES.macvtap}\n`,
        );
        const b = await node.podman(
          "build",
          "--pull=never",
          "-q",
          "-t",
          "localhost/macvtap:next",
          ctx,
        );
        assert.deepStrictEqual(b.code, 0, `podman build: ${b.stderr}`);

        const podNs = await lab.taskNetns("upg");
        const conf = JSON.stringify({
          cniVersion: "1.0.0",
          name: "upgrade",
          type: "macvtap",
          master: "lab0",
          stateDir: `${lab.dir}/cni-state`,
        });
        const env = (command: string) => ({
          CNI_COMMAND: command,
          CNI_CONTAINERID: `upg-${lab.id}`,
          CNI_NETNS: podNs,
          CNI_IFNAME: "net1",
          CNI_PATH: "/opt/cni/bin",
          // The runtime's state root: stateDir must lie inside it.
          MACVTAP_STATE_ROOT: lab.dir,
        });
        const versions: string[] = [];
        let calls = 0, upgraded = false, afterUpgrade = 0;
        const failures: string[] = [];
        const loop = (async () => {
          while (afterUpgrade < 2 && failures.length === 0) {
            for (const cmd of ["ADD", "DEL"]) {
              const r = await node.cni(env(cmd), conf);
              calls++;
              if (r.code !== 0) failures.push(`${cmd} exited ${r.code}: ${r.stdout}${r.stderr}`);
              else if (cmd === "ADD" && !JSON.parse(r.stdout).interfaces) {
                failures.push(`ADD result: ${r.stdout}`);
              }
            }
            const v = await node.cni({}, "", ["--version"]);
            if (v.code !== 0) failures.push(`--version exited ${v.code}: ${v.stderr}`);
            versions.push(v.stdout.trim());
            if (upgraded) afterUpgrade++;
          }
        })();
        // Let the loop run against the old binary first.
        await waitFor(
          "two loop rounds on the old binary",
          () => versions.length >= 2 || failures.length > 0,
          60_000,
        );
        assert.deepStrictEqual(failures, [], "CNI calls before the upgrade");
        const out = await runInstall(`install-${lab.id}-3`, "localhost/macvtap:next");
        upgraded = true;
        await loop;
        assert.deepStrictEqual(failures, [], "CNI calls during the upgrade");
        assert(/\.deno\/deno is up to date/.test(out) && /installed .*\/macvtap/.test(out), out);
        const firstNew = versions.indexOf("macvtap 0.1.0-next");
        assert(firstNew > 0, `old then new version: ${versions}`);
        assert(
          versions.slice(0, firstNew).every((v) => v === "macvtap 0.1.0") &&
            versions.slice(firstNew).every((v) => v === "macvtap 0.1.0-next"),
          `every call ran a whole old or new binary: ${versions}`,
        );
        note(`upgrade: ${calls} ADD/DEL calls, versions seen ${versions.join(" ")}`);
        assert.deepStrictEqual(await linkIn(podNs, "net1"), undefined, "the last DEL removed net1");

        // The control: a call that does see a half-written plugin fails, so the loop would
        // notice. The node's file is the CNI part only (no payload line): all program.
        const whole = await Deno.readFile(`${binDir}/macvtap`);
        assert(
          !new TextDecoder().decode(whole).includes(`\n${DP_MARKER}`),
          "the node's plugin is the CNI part, without the device plugin payload",
        );
        await Deno.writeFile(`${binDir}/.half`, whole.subarray(0, whole.length >> 1), {
          mode: 0o755,
        });
        try {
          const half = await node.cni(env("ADD"), conf, [], ".half");
          assert(half.code !== 0, `a half-written plugin fails: ${half.stdout}`);
        } finally {
          await Deno.remove(`${binDir}/.half`);
        }
        assert.deepStrictEqual(
          await linkIn(podNs, "net1"),
          undefined,
          "the failed call left nothing",
        );
      },
    );

    await t.step(
      "a macvtap whose line 2 does not give the payload's offset is installed whole",
      async () => {
        // E.g. a bundle edited after the build: `head -c N` would cut the program short.
        const ctx = `${lab.dir}/stale-length`;
        await Deno.mkdir(ctx);
        const good = await Deno.readFile(`${staged}${IMAGE_EXECUTABLES.macvtap}`);
        const stale = new TextEncoder().encode(
          new TextDecoder().decode(good).replace(
            'var VERSION = "0.1.0";',
            'var VERSION = "0.1.0-x";',
          ),
        );
        assert(cniPart(stale) === undefined, "line 2 no longer gives the payload's offset");
        await Deno.writeFile(`${ctx}/macvtap`, stale, { mode: 0o755 });
        await Deno.writeTextFile(
          `${ctx}/Containerfile`,
          `FROM ${IMAGE_REF}\nCOPY macvtap ${IMAGE_EXECUTABLES.macvtap}\n`,
        );
        const b = await node.podman(
          "build",
          "--pull=never",
          "-q",
          "-t",
          "localhost/macvtap:stale",
          ctx,
        );
        assert.deepStrictEqual(b.code, 0, `podman build: ${b.stderr}`);
        try {
          const out = await runInstall(`install-${lab.id}-4`, "localhost/macvtap:stale");
          assert(/installed .*\/macvtap/.test(out), out);
          assert.deepStrictEqual(
            await sha256(await Deno.readFile(`${binDir}/macvtap`)),
            await sha256(stale),
            "the whole file is installed",
          );
          const v = await node.cni({}, "", ["--version"]);
          assert.deepStrictEqual(
            v.stdout.trim(),
            "macvtap 0.1.0-x",
            `installed plugin runs: ${v.stderr}`,
          );
        } finally {
          // Back to the release the next steps run.
          await runInstall(`install-${lab.id}-5`);
          assert.deepStrictEqual(
            await sha256(await Deno.readFile(`${binDir}/macvtap`)),
            await sha256(cniPart(good)!),
            "the CNI part is installed again",
          );
        }
      },
    );

    const dp = pod.containers.find((c) => c.name === "deviceplugin")!;
    const dpName = `dp-${lab.id}`;
    const socketDir = `${node.root}/var/lib/kubelet/device-plugins`;
    await Deno.mkdir(socketDir, { recursive: true });
    await using kubelet = await FakeKubelet.start(socketDir);
    // kubelet's PodResources API, where the installed CNI plugin asks whether a device is the pod's.
    await Deno.mkdir(`${node.root}/var/lib/kubelet/pod-resources`, { recursive: true });
    await kubelet.servePodResources(`${node.root}/var/lib/kubelet/pod-resources/kubelet.sock`);
    const probe = async (which: "readinessProbe" | "livenessProbe"): Promise<ExecResult> => {
      // The probe's own call deadline (3 s) is below the manifest's timeoutSeconds.
      return await node.podman("exec", dpName, ...dp[which]!.exec.command);
    };
    const probesPass = async (why: string) => {
      for (const which of ["readinessProbe", "livenessProbe"] as const) {
        const r = await probe(which);
        assert.deepStrictEqual(r.code, 0, `${which} ${why}: ${r.stderr}`);
      }
    };
    const resourceName = resourceNameOf(resource.name);
    let tapIndex = 0;

    await t.step(
      "the device plugin registers through the node's device-plugin dir and serves Allocate",
      async () => {
        const args = await podmanRunArgs(dp, pod, {
          name: dpName,
          nodeRoot: node.root,
          env: containerEnv(dp, configMaps),
        });
        lab.defer(
          "stop the device plugin",
          () => node.podman("rm", "--force", "--time", "0", dpName),
        );
        const started = await node.podman("run", "--detach", ...args);
        assert.deepStrictEqual(started.code, 0, `podman run deviceplugin: ${started.stderr}`);
        let reg;
        try {
          reg = await kubelet.waitForRegistration(resourceName, { timeoutMs: 60_000 });
        } catch (err) {
          const logs = await node.podman("logs", dpName);
          note(`device plugin log:\n${logs.stdout}${logs.stderr}`);
          throw err;
        }
        const list = await reg.conn.waitFor(
          (m) =>
            m.devices.length === resource.capacity &&
            m.devices.every((d) => d.health === "Healthy"),
          30_000,
        );
        assert.deepStrictEqual(list.devices.length, resource.capacity, "devices");
        const res = await reg.conn.allocate([[`${resource.name}-0`]]);
        const spec = res.containerResponses[0]!.devices[0]!;
        const m = /^\/dev\/tap(\d+)$/.exec(spec.hostPath);
        assert(m, `DeviceSpec ${JSON.stringify(spec)}`);
        tapIndex = Number(m[1]);
        const st = await Deno.stat(spec.hostPath);
        assert(st.isCharDevice, `${spec.hostPath} is a character device on the node`);
        const links = JSON.parse(
          await runOk(["ip", "-n", lab.hostNs, "-j", "-d", "link", "show"]),
        ) as {
          ifindex: number;
          linkinfo?: { info_kind?: string };
        }[];
        assert.deepStrictEqual(
          links.find((l) => l.ifindex === tapIndex)?.linkinfo?.info_kind,
          "macvtap",
          `a macvtap with ifindex ${tapIndex} on the node`,
        );
      },
    );

    await t.step(
      "its probes, as written in the manifest, pass while healthy",
      () => probesPass("while healthy"),
    );

    await t.step(
      "the probes fail while the plugin is stopped and while its socket is gone",
      async () => {
        const socket = `${socketDir}/${endpointOf(resource.name)}`;
        const stop = await node.podman("kill", "--signal", "STOP", dpName);
        assert.deepStrictEqual(stop.code, 0, `podman kill STOP: ${stop.stderr}`);
        try {
          const r = await probe("livenessProbe");
          assert.deepStrictEqual(
            r.code,
            3,
            `liveness fails (exit 3) while the plugin is stopped: ${r.stderr}`,
          );
          await Deno.remove(socket);
          const r2 = await probe("readinessProbe");
          assert.deepStrictEqual(
            r2.code,
            3,
            `readiness fails (exit 3) while the socket is gone: ${r2.stderr}`,
          );
          assert(/not a socket|No such file|NotFound/i.test(r2.stderr + r2.stdout), r2.stderr);
        } finally {
          const since = performance.now();
          await node.podman("kill", "--signal", "CONT", dpName);
          // The plugin sees its socket gone, serves a new one and registers again.
          await kubelet.waitForRegistration(resourceName, { since, timeoutMs: 30_000 });
        }
        await probesPass("after the plugin re-created its socket");
      },
    );

    await t.step("it survives a kubelet restart", async () => {
      await kubelet.restart();
      const reg = await kubelet.waitForRegistration(resourceName, {
        since: kubelet.listeningSince,
        timeoutMs: 30_000,
      });
      const res = await reg.conn.allocate([[`${resource.name}-0`]]);
      assert.deepStrictEqual(
        res.containerResponses[0]!.devices[0]!.hostPath,
        `/dev/tap${tapIndex}`,
        "same device",
      );
      await probesPass("after a kubelet restart");
    });

    await t.step(
      "a pod's CNI ADD/DEL runs the installed plugin with the allocated device",
      async () => {
        const nad = findObject(files, "NetworkAttachmentDefinition");
        const raw = JSON.parse((nad as unknown as { spec: { config: string } }).spec.config);
        // As Multus calls it: the NAD's config plus the device kubelet allocated.
        const conf = JSON.stringify({ ...raw, deviceID: `${resource.name}-0` });
        const podNs = await lab.taskNetns("pod");
        // kubelet admitted the pod with that device; the runtime names the pod in CNI_ARGS.
        const vmPod = { namespace: "default", name: `vm-${lab.id}` };
        await kubelet.admit(vmPod, resourceName, [[`${resource.name}-0`]]);
        const trust = kubelet.cniEnvFor(vmPod);
        const env = (command: string) => ({
          CNI_COMMAND: command,
          CNI_CONTAINERID: `pod-${lab.id}`,
          CNI_NETNS: podNs,
          CNI_IFNAME: "net1",
          CNI_PATH: "/opt/cni/bin",
          CNI_ARGS: trust.args,
          ...trust.extra,
        });
        const add = await node.cni(env("ADD"), conf);
        assert.deepStrictEqual(add.code, 0, `ADD: ${add.stdout}${add.stderr}`);
        const link = await linkIn(podNs, "net1");
        assert.deepStrictEqual(
          link,
          { ifindex: tapIndex, kind: "macvtap" },
          "net1 is the allocated macvtap",
        );
        const del = await node.cni(env("DEL"), conf);
        assert.deepStrictEqual(del.code, 0, `DEL: ${del.stdout}${del.stderr}`);
        assert.deepStrictEqual(await linkIn(podNs, "net1"), undefined, "net1 gone after DEL");
      },
    );

    await t.step("a pod sandbox through containerd's CRI runs the installed plugin", async () => {
      // containerd sees the node's /opt; its CNI config is the NAD's plus the device, as Multus
      // would delegate it; kubelet calls Allocate for the pod first.
      const nad = findObject(files, "NetworkAttachmentDefinition");
      const raw = JSON.parse((nad as unknown as { spec: { config: string } }).spec.config);
      const confDir = `${lab.dir}/cri-net.d`;
      await Deno.mkdir(confDir, { recursive: true });
      await Deno.mkdir(`${lab.dir}/pods`, { recursive: true });
      // containerd insists on an IP on its (primary) network's eth0; in a cluster the primary
      // network gives it and Multus runs this config as a secondary one. Here: host-local.
      await Deno.writeTextFile(
        `${confDir}/10-${raw.name}.conf`,
        JSON.stringify({
          ...raw,
          deviceID: `${resource.name}-0`,
          ipam: { type: "host-local", subnet: "10.96.7.0/24", dataDir: `${lab.dir}/cri-ipam` },
        }),
      );
      // A node's runtime brings the reference plugins; CRI runs loopback from the same dir.
      for (const ref of ["loopback", "host-local"]) {
        await Deno.symlink(`${REF_CNI_DIR}/${ref}`, `${binDir}/${ref}`);
      }
      // containerd creates /run/netns/cni-* files on the shared /run and bind-mounts the
      // netns on them in its private mount namespace: a sandbox it fails to tear down leaves
      // an empty file behind on the machine. Remove such files (never a mounted one).
      const before = new Set([...Deno.readDirSync("/run/netns")].map((e) => e.name));
      lab.defer("remove stale /run/netns/cni-* files", async () => {
        const mounts = await Deno.readTextFile("/proc/self/mountinfo");
        for (const e of Deno.readDirSync("/run/netns")) {
          const path = `/run/netns/${e.name}`;
          if (before.has(e.name) || !e.name.startsWith("cni-") || mounts.includes(` ${path} `)) {
            continue;
          }
          if ((await Deno.stat(path)).size === 0) await Deno.remove(path);
        }
      });
      const ctrd = await Containerd.start(lab, {
        cri: { binDir: "/opt/cni/bin", confDir },
        bindOver: { source: `${node.root}/opt`, target: "/opt" },
        env: {
          MACVTAP_PODRESOURCES_SOCKET: `${node.root}/var/lib/kubelet/pod-resources/kubelet.sock`,
        },
      });
      await ctrd.importImage("k8s.io", "pause");
      // The image archive is one ctr accepts, too.
      await runOk([
        "ctr",
        "-a",
        ctrd.sock,
        "-n",
        "k8s.io",
        "images",
        "import",
        "--base-name",
        IMAGE_REF.slice(0, IMAGE_REF.lastIndexOf(":")),
        archive,
      ]);
      const images = await runOk(["ctr", "-a", ctrd.sock, "-n", "k8s.io", "images", "ls", "-q"]);
      assert(images.split("\n").includes(IMAGE_REF), `ctr images import: ${images}`);

      // kubelet admits the CRI pod (Allocate, on the latest registration: a plugin may register
      // twice after a kubelet restart) and lists its device in PodResources, which the CNI
      // plugin containerd runs asks (containerd puts the pod in CNI_ARGS).
      const res = await kubelet.admit(
        { namespace: "default", name: `pod-${lab.id}` },
        resourceName,
        [[`${resource.name}-0`]],
      );
      assert.deepStrictEqual(
        res.containerResponses[0]!.devices[0]!.hostPath,
        `/dev/tap${tapIndex}`,
        "Allocate",
      );
      const cri = new CriClient(ctrd.sock, lab.dir);
      lab.defer("close the CRI client", () => cri.close());
      await waitFor("CRI NetworkReady", async () => {
        const c = await cri.conditions();
        return c.some((x) => x.type === "NetworkReady" && x.status);
      }, 10_000);
      lab.defer("remove leftover sandboxes", async () => {
        for (const sb of await cri.listPodSandbox()) {
          await cri.stopPodSandbox(sb.id).catch(() => {});
          await cri.removePodSandbox(sb.id);
        }
      });
      const id = await cri.runPodSandbox({
        name: `pod-${lab.id}`,
        uid: `uid-${lab.id}`,
        namespace: "default",
        logDirectory: `${lab.dir}/pods`,
      });
      const st = await cri.podSandboxStatus(id);
      assert.deepStrictEqual(st.status.state, "SANDBOX_READY", "sandbox state");
      const netns = sandboxNetns(st);
      assert(netns, `sandbox netns: ${JSON.stringify(st.info)}`);
      // The pod's netns is mounted in containerd's mount namespace.
      const r = await runOk([
        "nsenter",
        `--mount=/proc/${ctrd.pid}/ns/mnt`,
        "--",
        "nsenter",
        `--net=${netns}`,
        "ip",
        "-j",
        "-d",
        "link",
        "show",
        "dev",
        "eth0",
      ]);
      const [eth0] = JSON.parse(r) as { ifindex: number; linkinfo?: { info_kind?: string } }[];
      assert.deepStrictEqual(
        st.status.network?.ip?.startsWith("10.96.7."),
        true,
        "pod IP from the network",
      );
      assert.deepStrictEqual(
        { ifindex: eth0?.ifindex, kind: eth0?.linkinfo?.info_kind },
        { ifindex: tapIndex, kind: "macvtap" },
        "the pod's eth0 is the allocated macvtap",
      );
      await cri.stopPodSandbox(id);
      assert.deepStrictEqual(
        (await cri.podSandboxStatus(id)).status.state,
        "SANDBOX_NOTREADY",
        "stopped",
      );
      await cri.removePodSandbox(id);
      assert.deepStrictEqual(await cri.listPodSandbox(), [], "sandboxes after RemovePodSandbox");
      const log = await ctrd.log();
      assert(
        !/failed to destroy network|plugin type="macvtap" failed/i.test(log),
        log.slice(-2000),
      );
    });

    await t.step(
      "SIGTERM stops it cleanly, its sockets removed; the probes then fail",
      async () => {
        const stopped = await node.podman("stop", "--time", "10", dpName);
        assert.deepStrictEqual(stopped.code, 0, `podman stop: ${stopped.stderr}`);
        const code = await node.podman("inspect", "-f", "{{.State.ExitCode}}", dpName);
        assert.deepStrictEqual(code.stdout.trim(), "0", "exit code after SIGTERM");
        const left = [...Deno.readDirSync(socketDir)].map((e) => e.name).filter((n) =>
          n.startsWith("macvtap.")
        );
        assert.deepStrictEqual(left, [], "plugin sockets removed");
        const r = await probe("livenessProbe");
        assert(r.code !== 0, "probe fails once the plugin is stopped");
      },
    );
  },
});
