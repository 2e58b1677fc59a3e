/**
 * The manifests in deploy/, parsed with the `yaml` package (test-only: the
 * CNI and the device plugin never load it), and typed views of the parts the
 * tests use: the ConfigMap, the DaemonSet's containers and volumes, the
 * NetworkAttachmentDefinition, the KubeVirt patch and the examples.
 *
 * @module
 */

import { parseAllDocuments } from "yaml";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The deploy/ directory. */
export const DEPLOY_DIR = `${root}/deploy`;

/** A Kubernetes object as parsed (only the fields the tests read are typed). */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: unknown;
}

/** An env entry of a container. */
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { configMapKeyRef?: { name: string; key: string; optional?: boolean } };
}

/** An exec probe. */
export interface Probe {
  exec: { command: string[] };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}

/** A container's securityContext (the fields the manifests use). */
export interface SecurityContext {
  privileged?: boolean;
  runAsUser?: number;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
}

/** A (init) container of the DaemonSet's pod template. */
export interface Container {
  name: string;
  image: string;
  command: string[];
  args?: string[];
  env?: EnvVar[];
  securityContext?: SecurityContext;
  resources?: { limits?: { memory?: string } };
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

/** A pod volume. */
export interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  emptyDir?: { medium?: string; sizeLimit?: string };
  configMap?: { name: string; items?: { key: string; path: string }[] };
}

/** The DaemonSet's pod spec. */
export interface PodSpec {
  hostNetwork?: boolean;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  nodeSelector?: Record<string, string>;
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
}

/** One YAML file of deploy/: its documents (comments and `---` separators allowed). */
export interface ManifestFile {
  file: string;
  docs: K8sObject[];
}

/**
 * Parse every `*.yaml` file in deploy/; throws on any YAML error or warning
 * (duplicate keys, bad anchors …).
 */
export async function loadManifests(dir = DEPLOY_DIR): Promise<ManifestFile[]> {
  const out: ManifestFile[] = [];
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /\.ya?ml$/.test(e.name)) names.push(e.name);
  }
  for (const name of names.sort()) {
    const text = await Deno.readTextFile(`${dir}/${name}`);
    const docs: K8sObject[] = [];
    for (const doc of parseAllDocuments(text, { uniqueKeys: true })) {
      const problems = [...doc.errors, ...doc.warnings];
      if (problems.length) {
        throw new SyntaxError(`deploy/${name}: ${problems.map((p) => p.message).join("; ")}`);
      }
      const value = doc.toJS({ maxAliasCount: 10 });
      if (value !== null && value !== undefined) docs.push(value as K8sObject);
    }
    out.push({ file: name, docs });
  }
  return out;
}

/** The one object of `kind` (and `name`, when given) across `files`; throws if not exactly one. */
export function findObject(files: ManifestFile[], kind: string, name?: string): K8sObject {
  const hits = files.flatMap((f) => f.docs).filter((d) =>
    d?.kind === kind && (name === undefined || d.metadata?.name === name)
  );
  if (hits.length !== 1) {
    throw new Error(`expected one ${kind}${name ? ` "${name}"` : ""}, found ${hits.length}`);
  }
  return hits[0]!;
}

/** The documents of one file. */
export function docsOf(files: ManifestFile[], file: string): unknown[] {
  const f = files.find((x) => x.file === file);
  if (!f) throw new Error(`deploy/${file} is missing`);
  return f.docs;
}

/** The DaemonSet's pod template spec. */
export function daemonSetPod(ds: K8sObject): PodSpec {
  return (ds as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

/** The ConfigMap's data. */
export function configMapData(cm: K8sObject): Record<string, string> {
  return (cm as unknown as { data: Record<string, string> }).data;
}

/**
 * A container's environment as the kubelet would set it: literal values and
 * ConfigMap keys (a missing optional key is left out, a missing required one
 * throws).
 */
export function containerEnv(
  c: Container,
  configMaps: Record<string, Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    const ref = e.valueFrom?.configMapKeyRef;
    if (!ref) continue;
    const v = configMaps[ref.name]?.[ref.key];
    if (v !== undefined) env[e.name] = v;
    else if (!ref.optional) {
      throw new Error(`${c.name}: env ${e.name} needs ConfigMap ${ref.name} key ${ref.key}`);
    }
  }
  return env;
}

/** Parse the Containerfile's `ENTRYPOINT` and `CMD` (JSON form). */
export async function containerfileEntry(): Promise<{ entrypoint: string[]; cmd: string[] }> {
  const text = await Deno.readTextFile(`${DEPLOY_DIR}/Containerfile`);
  const json = (kw: string): string[] => {
    const m = new RegExp(`^${kw}\\s+(\\[.*\\])\\s*$`, "m").exec(text);
    if (!m) throw new Error(`Containerfile has no ${kw} in JSON form`);
    return JSON.parse(m[1]!) as string[];
  };
  return { entrypoint: json("ENTRYPOINT"), cmd: json("CMD") };
}
