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
import {
  endpointOf,
  KUBELET_SOCKET,
  parseDevicePluginConfig,
  resourceNameOf,
} from "../../deviceplugin/mod.ts";
import {
  IMAGE_EXECUTABLES,
  IMAGE_LIBMNL,
  IMAGE_REF,
  MIN_GLIBC,
  NODE_DENO_DIR,
} from "../../tools/image_layout.ts";

const repoRoot = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const ignore = skipUnless("/usr/bin/podman", "/usr/sbin/runc", "/usr/bin/unshare") !== undefined;

/**
 * Where hostPath `path` lives on the test's node. `/dev` and `/` are the
 * machine's: device nodes are global, and the node's CNI calls run with the
 * machine's libraries (install-cni checks that glibc through `/`).
 */
function nodePath(nodeRoot: string, path: string): string {
  return path === "/dev" || path === "/" ? path : `${nodeRoot}${path}`;
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
  opts: {
    name: string;
    nodeRoot: string;
    env: Record<string, string>;
    /** Directories holding each ConfigMap's keys as files (as kubelet projects them). */
    configMaps?: Record<string, string>;
    /** hostPath → directory, instead of {@linkcode nodePath}. */
    hostPaths?: Record<string, string>;
  },
): Promise<string[]> {
  const args = ["--name", opts.name, "--pull=never"];
  if (pod.hostNetwork) args.push("--network", "host");
  const sc = c.securityContext ?? {};
  if (sc.privileged) args.push("--privileged");
  if (sc.runAsUser !== undefined) args.push("--user", String(sc.runAsUser));
  if (sc.allowPrivilegeEscalation === false) args.push("--security-opt", "no-new-privileges");
  if (sc.readOnlyRootFilesystem) args.push("--read-only", "--read-only-tmpfs=false");
  for (const cap of sc.capabilities?.drop ?? []) args.push("--cap-drop", cap.toLowerCase());
  for (const cap of sc.capabilities?.add ?? []) args.push("--cap-add", cap.toLowerCase());
  if (c.resources?.limits?.memory) args.push("--memory", podmanMemory(c.resources.limits.memory));
  for (const [k, v] of Object.entries(opts.env)) args.push("--env", `${k}=${v}`);
  for (const m of c.volumeMounts ?? []) {
    const v = pod.volumes?.find((x) => x.name === m.name);
    if (!v) throw new Error(`${c.name}: no volume ${m.name}`);
    if (v.hostPath) {
      const src = opts.hostPaths?.[v.hostPath.path] ?? nodePath(opts.nodeRoot, v.hostPath.path);
      if (v.hostPath.type === "DirectoryOrCreate") await Deno.mkdir(src, { recursive: true });
      else if (!(await Deno.stat(src)).isDirectory) throw new Error(`${src} is not a directory`);
      args.push("--volume", `${src}:${m.mountPath}${m.readOnly ? ":ro" : ""}`);
    } else if (v.emptyDir) {
      const size = v.emptyDir.sizeLimit ? `,tmpfs-size=${podmanMemory(v.emptyDir.sizeLimit)}` : "";
      if (v.emptyDir.medium !== "Memory") throw new Error(`${v.name}: only memory emptyDirs`);
      args.push("--mount", `type=tmpfs,destination=${m.mountPath}${size}`);
    } else if (v.configMap) {
      const dir = opts.configMaps?.[v.configMap.name];
      if (!dir) throw new Error(`${v.name}: no directory for ConfigMap ${v.configMap.name}`);
      args.push("--volume", `${dir}:${m.mountPath}:ro`);
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
    options?: { hideLibmnl?: boolean },
  ): Promise<ExecResult>;
}

/** The machine's own libmnl.so.0 (what the loader would find), from its cache. */
async function machineLibmnl(): Promise<string[]> {
  const out = await runOk(["ldconfig", "-p"]);
  return [...out.matchAll(/^\s*libmnl\.so\.0 \(.*\) => (\S+)$/gm)].map((m) => m[1]!);
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
  const libmnls = await machineLibmnl();
  const cni = (
    cniEnv: Record<string, string>,
    stdin: string,
    argv: string[] = [],
    plugin = "macvtap",
    options: { hideLibmnl?: boolean } = {},
  ) =>
    run([
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      // A node without libmnl: /dev/null over the machine's copy (dlopen: "file too short").
      (options.hideLibmnl ? libmnls.map((l) => `mount --bind /dev/null ${l} && `).join("") : "") +
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

    await t.step(
      "install-cni refuses a node whose glibc is too old, before installing anything",
      async () => {
        // A node root whose loader reports glibc 2.17 (a static busybox as its shell).
        const old = `${lab.dir}/old-node`;
        await Deno.mkdir(`${old}/lib64`, { recursive: true });
        await Deno.mkdir(`${old}/bin`);
        await Deno.copyFile(`${staged}${IMAGE_EXECUTABLES.busybox}`, `${old}/bin/sh`);
        await Deno.chmod(`${old}/bin/sh`, 0o755);
        await Deno.writeTextFile(
          `${old}/lib64/ld-linux-x86-64.so.2`,
          '#!/bin/sh\necho "ld.so (GNU libc) stable release version 2.17."\n',
          { mode: 0o755 },
        );
        const args = await podmanRunArgs(install, pod, {
          name: `install-${lab.id}-old`,
          nodeRoot: node.root,
          env: containerEnv(install, configMaps),
          hostPaths: { "/": old },
        });
        const r = await node.podman("run", "--rm", ...args);
        assert.notDeepStrictEqual(r.code, 0, "refused");
        assert(
          r.stderr.includes(
            `this node's glibc is 2.17, but the CNI plugin runs Deno 2.9.6 on the node, which needs glibc >= ${MIN_GLIBC}`,
          ),
          r.stderr,
        );
        assert.deepStrictEqual([...Deno.readDirSync(binDir)], [], "nothing installed");
        // And a node without a glibc loader at all (musl).
        await Deno.remove(`${old}/lib64/ld-linux-x86-64.so.2`);
        const r2 = await node.podman("run", "--rm", ...args);
        assert.notDeepStrictEqual(r2.code, 0, "refused");
        assert(r2.stderr.includes("cannot find this node's glibc"), r2.stderr);
        assert.deepStrictEqual([...Deno.readDirSync(binDir)], [], "nothing installed");
      },
    );

    await t.step(
      "install-cni puts Deno, libmnl and macvtap into the node's CNI bin dir",
      async () => {
        // As an older Deno run under umask 000 would have left the cache dir: not used, remade.
        const cacheDir = `${node.root}${NODE_DENO_DIR}`;
        await Deno.mkdir(cacheDir, { recursive: true });
        await Deno.chmod(cacheDir, 0o777);
        await Deno.writeTextFile(`${cacheDir}/v8_code_cache_v2`, "planted");
        const out = await runInstall(`install-${lab.id}-1`);
        assert(/node glibc 2\.\d+ \(>= 2\.27\)/.test(out), out);
        assert(/installed \/host\/opt\/cni\/bin\/\.deno\/deno/.test(out), out);
        assert(/installed \/host\/opt\/cni\/bin\/\.deno\/libmnl\.so\.0/.test(out), out);
        assert(/installed \/host\/opt\/cni\/bin\/macvtap/.test(out), out);
        assert(/removed a cache dir that was not root's alone/.test(out), out);
        // The node gets the CNI file as the image holds it; the device plugin's file stays in the image.
        for (
          const [dest, src] of [
            [`${binDir}/macvtap`, IMAGE_EXECUTABLES.macvtap],
            [`${binDir}/.deno/deno`, IMAGE_EXECUTABLES.deno],
            [`${binDir}/.deno/libmnl.so.0`, IMAGE_LIBMNL],
          ] as const
        ) {
          const st = await Deno.stat(dest);
          assert.deepStrictEqual(st.mode! & 0o777, 0o755, `${dest} mode`);
          assert.deepStrictEqual(
            await sha256(await Deno.readFile(dest)),
            await sha256(await Deno.readFile(`${staged}${src}`)),
            `${dest} content`,
          );
        }
        const names = [...Deno.readDirSync(binDir)].map((e) => e.name).sort();
        assert.deepStrictEqual(names, [".deno", "macvtap"], "no temp files left in the bin dir");
        for (
          const d of [`${binDir}/.deno`, cacheDir, cacheDir.slice(0, cacheDir.lastIndexOf("/"))]
        ) {
          const st = await Deno.lstat(d);
          assert.deepStrictEqual([st.uid, st.mode! & 0o7777], [0, 0o755], `${d}: root's, 0755`);
        }
        assert.deepStrictEqual([...Deno.readDirSync(cacheDir)], [], "the planted file is gone");
        const v = await node.cni({}, "", ["--version"]);
        assert.deepStrictEqual(
          v.stdout.trim(),
          "macvtap 0.1.0",
          `installed launcher runs: ${v.stderr}`,
        );
        const size = (p: string) => Deno.statSync(p).size;
        note(
          `node footprint: .deno/deno ${
            (size(`${binDir}/.deno/deno`) / 2 ** 20).toFixed(1)
          } MiB, ` +
            `libmnl ${(size(`${binDir}/.deno/libmnl.so.0`) / 1024).toFixed(0)} KiB, ` +
            `macvtap ${(size(`${binDir}/macvtap`) / 1024).toFixed(0)} KiB`,
        );
      },
    );

    await t.step("the installed plugin's ADD works on a node without libmnl", async () => {
      const podNs = await lab.taskNetns("nomnl");
      const conf = JSON.stringify({
        cniVersion: "1.0.0",
        name: "nomnl",
        type: "macvtap",
        master: "lab0",
      });
      const env = (command: string, extra: Record<string, string> = {}) => ({
        CNI_COMMAND: command,
        CNI_CONTAINERID: `nomnl-${lab.id}`,
        CNI_NETNS: podNs,
        CNI_IFNAME: "net1",
        CNI_PATH: "/opt/cni/bin",
        MACVTAP_STATE_ROOT: lab.dir,
        ...extra,
      });
      // The control: the loader's own search (the node's libmnl, hidden) fails.
      const control = await node.cni(
        env("ADD", { MACVTAP_LIBMNL: "libmnl.so.0" }),
        conf,
        [],
        "macvtap",
        {
          hideLibmnl: true,
        },
      );
      assert.notDeepStrictEqual(control.code, 0, `without a libmnl: ${control.stdout}`);
      assert(/libmnl/.test(control.stdout), control.stdout);
      const add = await node.cni(env("ADD"), conf, [], "macvtap", { hideLibmnl: true });
      assert.deepStrictEqual(
        add.code,
        0,
        `ADD with the shipped libmnl: ${add.stdout}${add.stderr}`,
      );
      assert.deepStrictEqual((await linkIn(podNs, "net1"))?.kind, "macvtap", "net1 made");
      const del = await node.cni(env("DEL"), conf, [], "macvtap", { hideLibmnl: true });
      assert.deepStrictEqual(del.code, 0, `DEL: ${del.stdout}${del.stderr}`);
      assert.deepStrictEqual(await linkIn(podNs, "net1"), undefined, "net1 gone");
    });

    await t.step("a second run is a no-op", async () => {
      const before = (await Deno.stat(`${binDir}/macvtap`)).ino;
      const out = await runInstall(`install-${lab.id}-2`);
      assert.deepStrictEqual(
        out.trim().split("\n").slice(1),
        [
          "/host/opt/cni/bin/.deno/deno is up to date",
          "/host/opt/cni/bin/.deno/libmnl.so.0 is up to date",
          "/host/opt/cni/bin/macvtap is up to date",
        ],
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
        const current = await Deno.readTextFile(`${staged}${IMAGE_EXECUTABLES.macvtap}`);
        const next = current.replace('var VERSION = "0.1.0";', 'var VERSION = "0.1.0-next";');
        assert(next !== current, "the bundle carries the version string");
        await Deno.writeTextFile(`${ctx}/macvtap`, next, { mode: 0o755 });
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
        assert(
          /\.deno\/deno is up to date/.test(out) &&
            /\.deno\/libmnl\.so\.0 is up to date/.test(out) &&
            /installed .*\/macvtap/.test(out),
          out,
        );
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
        // notice.
        const whole = await Deno.readFile(`${binDir}/macvtap`);
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

    const dp = pod.containers.find((c) => c.name === "deviceplugin")!;
    const dpName = `dp-${lab.id}`;
    const socketDir = `${node.root}/var/lib/kubelet/device-plugins`;
    await Deno.mkdir(socketDir, { recursive: true });
    await using kubelet = await FakeKubelet.start(socketDir);
    // kubelet's PodResources API, where the installed CNI plugin asks whether a device is the pod's.
    await Deno.mkdir(`${node.root}/var/lib/kubelet/pod-resources`, { recursive: true });
    await kubelet.servePodResources(`${node.root}/var/lib/kubelet/pod-resources/kubelet.sock`);
    // The ConfigMap as kubelet projects it: one file per key, replaced atomically.
    const cmDir = `${lab.dir}/configmap`;
    await Deno.mkdir(cmDir);
    const writeConfig = async (text: string) => {
      await Deno.writeTextFile(`${cmDir}/.tmp`, text);
      await Deno.rename(`${cmDir}/.tmp`, `${cmDir}/DP_MACVTAP_CONF`);
    };
    await writeConfig(configMaps["macvtap-deviceplugin-config"].DP_MACVTAP_CONF!);
    const probe = async (which: "readinessProbe" | "livenessProbe"): Promise<ExecResult> => {
      // Exactly the manifest's command, inside the container (as kubelet's exec probe).
      return await node.podman("exec", dpName, ...dp[which]!.exec.command);
    };
    const probesPass = async (why: string) => {
      for (const which of ["readinessProbe", "livenessProbe"] as const) {
        const r = await probe(which);
        assert.deepStrictEqual(r.code, 0, `${which} ${why}: ${r.stdout}${r.stderr}`);
      }
    };
    /** Poll `which` until its exit code is (or is not) 0; the seconds it took. */
    const probeUntil = async (
      which: "readinessProbe" | "livenessProbe",
      ok: boolean,
      timeoutMs: number,
    ): Promise<{ seconds: number; last: ExecResult }> => {
      const t0 = performance.now();
      let last: ExecResult;
      await waitFor(`${which} ${ok ? "passes" : "fails"}`, async () => {
        last = await probe(which);
        return (last.code === 0) === ok;
      }, timeoutMs);
      return { seconds: (performance.now() - t0) / 1000, last: last! };
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
          configMaps: { "macvtap-deviceplugin-config": cmDir },
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
      "its probes, as written in the manifest, pass while healthy and cost a busybox run",
      async () => {
        await probeUntil("readinessProbe", true, 15_000);
        await probesPass("while healthy");
        // The same argv in the container's root (busybox chroot: static, it adds nothing a
        // glibc nsenter would), under GNU time: peak RSS of the probe's processes and their CPU.
        const pid = (await node.podman("inspect", "-f", "{{.State.Pid}}", dpName)).stdout.trim();
        const costs: string[] = [];
        for (const which of ["livenessProbe", "readinessProbe"] as const) {
          const r = await runOk([
            "/usr/bin/time",
            "-f",
            "%M %U %S",
            "-o",
            `${lab.dir}/time.out`,
            "/bin/busybox",
            "chroot",
            `/proc/${pid}/root`,
            ...dp[which]!.exec.command,
          ]);
          void r;
          const [kb, user, sys] = (await Deno.readTextFile(`${lab.dir}/time.out`)).trim().split(
            " ",
          ).map(Number);
          const cpuMs = (user! + sys!) * 1000;
          costs.push(`${which}: peak RSS ${kb} KiB, CPU ${cpuMs.toFixed(0)} ms`);
          // Peak RSS counts busybox's text (~1.4 MiB of page cache shared by every run, see
          // RssAnon below); a Deno start was 55-63 MB.
          assert(kb! <= 2048, `${which}: peak RSS ${kb} KiB`);
          assert(cpuMs <= 10, `${which}: CPU ${cpuMs} ms`);
        }
        // The anonymous memory a probe adds: the shell's own RssAnon at its end.
        const anonRun = await node.podman(
          "exec",
          dpName,
          "/bin/sh",
          "-c",
          `${dp.readinessProbe!.exec.command[2]}\n` +
            `while read -r k v u; do [ "$k" = RssAnon: ] && echo "$v"; done < /proc/self/status; exit 0`,
          "ready",
        );
        assert.deepStrictEqual(anonRun.code, 0, anonRun.stderr);
        const anon = anonRun.stdout;
        costs.push(`the probe shell's RssAnon ${anon.trim()} KiB`);
        assert(Number(anon.trim()) <= 1024, `RssAnon ${anon}`);
        note(`probe cost: ${costs.join("; ")}`);
      },
    );

    await t.step(
      "the probes fail while the plugin is stopped, and readiness while its registration is lost",
      async () => {
        const stop = await node.podman("kill", "--signal", "STOP", dpName);
        assert.deepStrictEqual(stop.code, 0, `podman kill STOP: ${stop.stderr}`);
        try {
          // The heartbeat stops: the probes fail once it is older than the manifest's 20 s.
          const live = await probeUntil("livenessProbe", false, 40_000);
          assert(/the plugin is stalled/.test(live.last.stdout), live.last.stdout);
          note(`liveness failed ${live.seconds.toFixed(0)} s after SIGSTOP`);
          assert(live.seconds <= 30, `liveness failed after ${live.seconds} s`);
          const ready = await probe("readinessProbe");
          assert.notDeepStrictEqual(ready.code, 0, "readiness fails while stopped");
        } finally {
          await node.podman("kill", "--signal", "CONT", dpName);
        }
        await probeUntil("livenessProbe", true, 10_000);
        await probesPass("after SIGCONT");

        // Registration lost: kubelet gone, our socket wiped (what a kubelet restart does).
        kubelet.stop();
        await Deno.remove(`${socketDir}/${KUBELET_SOCKET}`).catch(() => {});
        await Deno.remove(`${socketDir}/${endpointOf(resource.name)}`);
        try {
          const ready = await probeUntil("readinessProbe", false, 15_000);
          assert(/not ready: .*not registered/.test(ready.last.stdout), ready.last.stdout);
          const live = await probe("livenessProbe");
          assert.deepStrictEqual(live.code, 0, `liveness passes (not stalled): ${live.stdout}`);
        } finally {
          const since = performance.now();
          await kubelet.restart();
          await kubelet.waitForRegistration(resourceName, { since, timeoutMs: 30_000 });
        }
        await probeUntil("readinessProbe", true, 15_000);
        await probesPass("after registering again");
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

    await t.step("a ConfigMap change applies live, devices in use are kept", async () => {
      const second = "second";
      await runOk([
        "ip",
        "-n",
        lab.hostNs,
        "link",
        "add",
        "eth2",
        "type",
        "veth",
        "peer",
        "name",
        "eth2p",
      ]);
      await runOk(["ip", "-n", lab.hostNs, "link", "set", "eth2p", "up"]);
      await runOk(["ip", "-n", lab.hostNs, "link", "set", "eth2", "up"]);
      const latest = kubelet.registrations.filter((r) => r.request.resourceName === resourceName)
        .at(-1)!;
      // A device in use: allocated, its macvtap and /dev/tapN on the node.
      const res = await latest.conn.allocate([[`${resource.name}-1`]]);
      const tap = res.containerResponses[0]!.devices[0]!.hostPath;
      const index = Number(/^\/dev\/tap(\d+)$/.exec(tap)![1]);
      const isMacvtap = async () =>
        (JSON.parse(await runOk(["ip", "-n", lab.hostNs, "-j", "-d", "link", "show"])) as {
          ifindex: number;
          linkinfo?: { info_kind?: string };
        }[]).some((l) => l.ifindex === index && l.linkinfo?.info_kind === "macvtap");
      assert(await isMacvtap(), "allocated");

      const since = performance.now();
      const bigger = [
        { ...resource, capacity: resource.capacity + 10 },
        { name: second, lowerDevice: "eth2", mode: "bridge", capacity: 3 },
      ];
      await writeConfig(JSON.stringify(bigger));
      const reg2 = await kubelet.waitForRegistration(resourceNameOf(second), {
        since,
        timeoutMs: 30_000,
      });
      await reg2.conn.waitFor((m) => m.devices.length === 3, 10_000);
      const reg1 = await kubelet.waitForRegistration(resourceName, { since, timeoutMs: 30_000 });
      await reg1.conn.waitFor((m) => m.devices.length === resource.capacity + 10, 10_000);
      assert(await isMacvtap(), "the device in use is kept across the change");
      assert((await Deno.stat(tap)).isCharDevice, `${tap} kept`);
      await probeUntil("readinessProbe", true, 15_000);

      // Removed: its socket goes; a bad config is logged and changes nothing.
      await writeConfig(JSON.stringify([bigger[0]]));
      const secondSock = `${socketDir}/${endpointOf(second)}`;
      await waitFor(`${secondSock} removed`, async () => {
        try {
          await Deno.lstat(secondSock);
          return false;
        } catch {
          return true;
        }
      }, 15_000);
      await writeConfig('[{"name": "x", "lowerDevice": "eth1", "mode": "brdge"}]');
      await waitFor("the bad config is reported", async () => {
        const logs = await node.podman("logs", dpName);
        return /mode.*keeping the running config/.test(logs.stderr + logs.stdout);
      }, 15_000);
      await probesPass("after a bad config");
      assert(await isMacvtap(), "the device in use is still kept");
      const logs = await node.podman("logs", dpName);
      assert(/config file \/etc\/macvtap\/DP_MACVTAP_CONF changed/.test(logs.stderr + logs.stdout));
      // Back to the manifest's config.
      const back = performance.now();
      await writeConfig(configMaps["macvtap-deviceplugin-config"].DP_MACVTAP_CONF!);
      const reg = await kubelet.waitForRegistration(resourceName, {
        since: back,
        timeoutMs: 30_000,
      });
      await reg.conn.waitFor((m) => m.devices.length === resource.capacity, 10_000);
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

    await t.step("deploy/uninstall.yaml removes what install-cni put on the node", async () => {
      const un = daemonSetPod(findObject(files, "DaemonSet", "macvtap-uninstall"));
      const step = un.initContainers!.find((c) => c.name === "uninstall")!;
      const runUninstall = async (name: string) => {
        const args = await podmanRunArgs(step, un, { name, nodeRoot: node.root, env: {} });
        const r = await node.podman("run", "--rm", ...args);
        assert.deepStrictEqual(r.code, 0, `uninstall: ${r.stderr}${r.stdout}`);
        return r.stdout;
      };
      // An attachment record left: the state root is kept, with a message.
      const record = `${node.root}/var/lib/cni/macvtap/net/pod@net1`;
      await Deno.mkdir(record.slice(0, record.lastIndexOf("/")), { recursive: true });
      await Deno.writeTextFile(record, "{}");
      let out = await runUninstall(`uninstall-${lab.id}-1`);
      assert(/kept \/var\/lib\/cni\/macvtap: attachment records remain/.test(out), out);
      assert((await Deno.stat(record)).isFile, "the record is kept");
      await Deno.remove(record);
      out = await runUninstall(`uninstall-${lab.id}-2`);
      assert(/removed \/var\/lib\/cni\/macvtap/.test(out), out);
      const gone = async (p: string) => {
        try {
          await Deno.lstat(`${node.root}${p}`);
          return false;
        } catch (e) {
          return e instanceof Deno.errors.NotFound;
        }
      };
      for (
        const p of [
          "/opt/cni/bin/macvtap",
          "/opt/cni/bin/.deno",
          "/var/cache/macvtap",
          "/var/lib/cni/macvtap",
        ]
      ) {
        assert(await gone(p), `${p} removed`);
      }
      const left = [...Deno.readDirSync(binDir)].map((e) => e.name).sort();
      assert.deepStrictEqual(left, ["host-local", "loopback"], "the runtime's own plugins stay");
    });
  },
});
