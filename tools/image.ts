// deno-lint-ignore-file no-console -- a command-line tool: stdout is its output
/**
 * `deno task image`: build the container image offline and write it as an
 * OCI archive (`dist/macvtap-image.oci.tar`) that `podman load` and
 * `ctr images import` accept.
 *
 * 1. Stage the root file system in `build/image/rootfs` (layout:
 *    `tools/image_layout.ts`): the pinned Deno binary, `macvtap` (the CNI
 *    plugin) built for the node (its launcher names `/opt/cni/bin/.deno/deno`
 *    and the libmnl installed beside it), `macvtap-deviceplugin`, the shared
 *    libraries `ldd` reports for Deno plus libmnl (also at a fixed path for
 *    the install step), a static busybox with only the applets the install
 *    step, the uninstall step and the probes run.
 * 2. `podman build -f deploy/Containerfile build/image` (`FROM scratch`, no
 *    registry) in a throwaway podman store, `--timestamp 0`.
 * 3. `podman save --format oci-archive`, then the store is deleted.
 *
 * Options: `--deno-bin PATH` (the Deno to ship; default the running one,
 * which must be 2.9.6), `--busybox PATH` (default /bin/busybox, Debian's
 * busybox-static), `--out FILE`.
 *
 * @module
 */

import {
  BUSYBOX_APPLETS,
  DENO_VERSION,
  IMAGE_DIRS,
  IMAGE_EXECUTABLES,
  IMAGE_LIBMNL,
  IMAGE_REF,
  MIN_GLIBC,
  NODE_DENO,
  NODE_DENO_DIR,
  NODE_LIBMNL,
} from "./image_layout.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const args = Deno.args;
function option(name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
}

const denoBin = Deno.realPathSync(option("--deno-bin", Deno.execPath()));
const busybox = option("--busybox", "/bin/busybox");
const out = option("--out", `${root}/dist/macvtap-image.oci.tar`);
const stage = `${root}/build/image`;
const rootfs = `${stage}/rootfs`;

async function run(cmd: string, cmdArgs: string[]): Promise<string> {
  const r = await new Deno.Command(cmd, { args: cmdArgs, cwd: root, stderr: "piped" }).output();
  const stdout = new TextDecoder().decode(r.stdout);
  if (!r.success) {
    throw new Error(
      `${cmd} ${cmdArgs.join(" ")} exited ${r.code}\n${new TextDecoder().decode(r.stderr)}`,
    );
  }
  return stdout;
}

/** Absolute paths of the shared objects `ldd` resolves for `file` (the loader included). */
async function sharedDeps(file: string): Promise<string[]> {
  const text = await run("ldd", [file]);
  const paths: string[] = [];
  for (const line of text.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) paths.push(m[1]!);
    else if (/=>\s*not found/.test(line)) throw new Error(`ldd ${file}: ${line.trim()}`);
  }
  return paths;
}

/** Path of libmnl.so.0 from the loader cache. */
async function findLibmnl(): Promise<string> {
  const cache = await run("ldconfig", ["-p"]);
  for (const line of cache.split("\n")) {
    const m = /^\s*libmnl\.so\.0 \(.*x86-64.*\) => (\S+)/.exec(line) ??
      /^\s*libmnl\.so\.0 \(.*\) => (\S+)/.exec(line);
    if (m) return m[1]!;
  }
  throw new Error("libmnl.so.0 not found (apt-get install libmnl0)");
}

/** Copy `src` (symlinks followed) to `rootfs` + `dest`, keeping the mode. */
async function put(src: string, dest: string): Promise<void> {
  const target = `${rootfs}${dest}`;
  await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
  await Deno.copyFile(Deno.realPathSync(src), target);
  const mode = (await Deno.stat(src)).mode! & 0o7777;
  await Deno.chmod(target, mode);
}

async function stageRootfs(): Promise<void> {
  const version = (await run(denoBin, ["--version"])).split("\n")[0] ?? "";
  if (!version.startsWith(`deno ${DENO_VERSION} `)) {
    throw new Error(`${denoBin} is "${version}", not Deno ${DENO_VERSION}; pass --deno-bin`);
  }
  const bbLdd = await new Deno.Command("ldd", { args: [busybox], stdout: "piped", stderr: "piped" })
    .output();
  if (bbLdd.success) {
    throw new Error(`${busybox} is dynamically linked; install Debian's busybox-static`);
  }
  await Deno.remove(stage, { recursive: true }).catch(() => {});
  await Deno.mkdir(rootfs, { recursive: true });
  await Deno.copyFile(`${root}/deploy/Containerfile`, `${stage}/Containerfile`);

  await put(denoBin, IMAGE_EXECUTABLES.deno);
  await run(Deno.execPath(), [
    "run",
    "-A",
    "tools/build.ts",
    "--deno",
    NODE_DENO,
    "--deno-dir",
    NODE_DENO_DIR,
    "--libmnl",
    NODE_LIBMNL,
    "--out",
    `${rootfs}${IMAGE_EXECUTABLES.macvtap}`,
    "--dp-deno",
    IMAGE_EXECUTABLES.deno,
    "--dp-out",
    `${rootfs}${IMAGE_EXECUTABLES.deviceplugin}`,
  ]);
  const launcher = await Deno.readTextFile(`${rootfs}${IMAGE_EXECUTABLES.macvtap}`);
  if (
    !launcher.startsWith("#!/bin/sh\n") ||
    !launcher.split("\n")[1]!.includes(` exec ${NODE_DENO} `)
  ) {
    throw new Error(`the staged macvtap does not run ${NODE_DENO}: ${launcher.split("\n")[1]}`);
  }
  const libmnl = await findLibmnl();
  const libs = new Set([...await sharedDeps(denoBin), ...await sharedDeps(libmnl), libmnl]);
  for (const lib of libs) await put(lib, lib);
  await put(libmnl, IMAGE_LIBMNL);
  // The install step refuses nodes older than MIN_GLIBC: it must be what Deno needs.
  const needed = (await run("objdump", ["-T", denoBin])).match(/GLIBC_\d+\.\d+(\.\d+)?/g) ?? [];
  const newest = needed.map((v) => v.slice(6).split(".").map(Number))
    .sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]! || (a[2] ?? 0) - (b[2] ?? 0)).at(-1);
  if (newest?.slice(0, 2).join(".") !== MIN_GLIBC) {
    throw new Error(
      `${denoBin} needs glibc ${
        newest?.join(".")
      }; tools/image_layout.ts MIN_GLIBC says ${MIN_GLIBC}`,
    );
  }

  await put(busybox, IMAGE_EXECUTABLES.busybox);
  for (const applet of BUSYBOX_APPLETS) {
    await Deno.symlink("busybox", `${rootfs}/bin/${applet}`);
  }
  for (const dir of IMAGE_DIRS) await Deno.mkdir(`${rootfs}${dir}`, { recursive: true });
  await Deno.chmod(`${rootfs}/tmp`, 0o1777);
}

/** Every entry of the staged root: `path<TAB>type<TAB>size` sorted by path. */
async function listing(dir: string, prefix = ""): Promise<{ path: string; size: number }[]> {
  const out: { path: string; size: number }[] = [];
  for await (const e of Deno.readDir(`${dir}${prefix}`)) {
    const p = `${prefix}/${e.name}`;
    if (e.isDirectory) out.push(...await listing(dir, p));
    else if (e.isSymlink) {
      out.push({ path: `${p} -> ${await Deno.readLink(`${dir}${p}`)}`, size: 0 });
    } else out.push({ path: p, size: (await Deno.stat(`${dir}${p}`)).size });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

async function buildImage(): Promise<void> {
  const store = await Deno.makeTempDir({ prefix: "macvtap-image-" });
  const hadCache = await Deno.stat("/var/lib/containers").then(() => true, () => false);
  const podman = [
    "--root",
    `${store}/root`,
    "--runroot",
    `${store}/run`,
    "--tmpdir",
    `${store}/tmp`,
    "--storage-driver",
    "vfs",
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "none",
  ];
  try {
    await run("podman", [
      ...podman,
      "build",
      "--quiet",
      "--pull=never",
      "--timestamp",
      "0",
      "-f",
      `${stage}/Containerfile`,
      "-t",
      IMAGE_REF,
      stage,
    ]);
    const tmp = `${out}.tmp${Deno.pid}`;
    await Deno.mkdir(out.slice(0, out.lastIndexOf("/")) || "/", { recursive: true });
    await Deno.remove(tmp).catch(() => {});
    await run("podman", [...podman, "save", "--format", "oci-archive", "-o", tmp, IMAGE_REF]);
    await Deno.rename(tmp, out);
  } finally {
    // Not `podman system reset`: it would also delete network configs outside this store.
    // The vfs driver mounts nothing, so removing the directory is enough.
    await Deno.remove(store, { recursive: true }).catch(() => {});
    // podman creates its blob-info cache there although --root points elsewhere.
    if (!hadCache) await Deno.remove("/var/lib/containers", { recursive: true }).catch(() => {});
  }
}

await stageRootfs();
const files = await listing(rootfs);
await buildImage();
const total = files.reduce((n, f) => n + f.size, 0);
const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
console.log(`${IMAGE_REF}: ${out.replace(`${root}/`, "")}`);
console.log(`  archive ${mib((await Deno.stat(out)).size)}, root file system ${mib(total)}:`);
for (const f of files) {
  console.log(`  ${f.path}${f.size ? `  ${(f.size / 1024).toFixed(0)} KiB` : ""}`);
}
