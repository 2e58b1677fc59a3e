/**
 * The protobuf wire format of the Device Plugin API v1beta1, by hand: the
 * few messages the plugin sends and reads, with kubelet's field numbers
 * (`_api_proto.ts` is the schema). A general protobuf runtime (protobufjs,
 * proto-loader) cost the long-running plugin ~35 MiB of heap and code for
 * eleven small messages.
 *
 * Encoding follows proto3: scalars at their default (`""`, `false`, `0`) are
 * left out, repeated and map fields are written element by element, a
 * message-typed field is written when present. Decoding skips fields it does
 * not know, and a known field with an unexpected wire type, as protobuf-go
 * does (any wire type but the deprecated groups), and throws
 * {@linkcode WireError} on malformed input: truncation, a length or tag past
 * 32 bits, invalid UTF-8, groups.
 *
 * @module
 */

import type {
  AllocateRequest,
  AllocateResponse,
  ContainerAllocateResponse,
  ContainerDevices,
  Device,
  DevicePluginOptions,
  ListAndWatchResponse,
  PodResources,
  PreferredAllocationRequest,
  PreferredAllocationResponse,
  RegisterRequest,
} from "./_api.ts";

/** Malformed protobuf input. */
export class WireError extends Error {
  override name = "WireError";
}

/**
 * Well-formed input over a bound the caller set: more container requests or
 * IDs than the resource has devices, or an ID longer than any of its IDs.
 * Thrown as soon as the bound is passed, before the rest is read.
 */
export class WireLimitError extends Error {
  override name = "WireLimitError";
}

/** Bounds of a request with device IDs ({@linkcode decodeAllocateRequest}, {@linkcode decodePreferredAllocationRequest}). */
export interface IdLimits {
  /** Container requests at most. */
  maxContainers: number;
  /** Device IDs at most, all container requests together. */
  maxIds: number;
  /** Bytes of one ID at most. */
  maxIdBytes: number;
}

const NO_LIMITS: IdLimits = {
  maxContainers: Infinity,
  maxIds: Infinity,
  maxIdBytes: Infinity,
};

/** Counts what a request holds against its {@linkcode IdLimits}. */
class IdCounter {
  #limits: IdLimits;
  #containers = 0;
  #ids = 0;
  constructor(limits: IdLimits) {
    this.#limits = limits;
  }
  container(): void {
    if (++this.#containers > this.#limits.maxContainers) {
      throw new WireLimitError(
        `more than ${this.#limits.maxContainers} container requests`,
      );
    }
  }
  id(r: Reader): string {
    if (++this.#ids > this.#limits.maxIds) {
      throw new WireLimitError(`more than ${this.#limits.maxIds} device IDs`);
    }
    const b = r.bytes();
    if (b.length > this.#limits.maxIdBytes) {
      throw new WireLimitError(
        `a device ID of ${b.length} bytes, longer than any device's (${this.#limits.maxIdBytes})`,
      );
    }
    return decodeUtf8(b);
  }
}

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

const utf8 = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the string, never stripped (an ID "\uFEFFlan-0" is not "lan-0").
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function decodeUtf8(b: Uint8Array): string {
  try {
    return strict.decode(b);
  } catch {
    throw new WireError("string field is not valid UTF-8");
  }
}

/** An append-only byte buffer with protobuf primitives. */
class Writer {
  #buf = new Uint8Array(64);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  varint(v: number): void {
    this.#room(10);
    while (v > 0x7f) {
      this.#buf[this.#len++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.#buf[this.#len++] = v;
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, LEN);
    this.varint(b.length);
    this.#room(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  /** A string field; proto3 leaves `""` out unless `always` (repeated and map elements). */
  string(field: number, s: string, always = false): void {
    if (s !== "" || always) this.bytes(field, utf8.encode(s));
  }

  bool(field: number, b: boolean): void {
    if (!b) return;
    this.tag(field, VARINT);
    this.varint(1);
  }

  message(field: number, encode: (w: Writer) => void): void {
    const inner = new Writer();
    encode(inner);
    this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

function encodeWith(encode: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  encode(w);
  return w.finish();
}

/** A cursor over one message's bytes. */
class Reader {
  #b: Uint8Array;
  #pos = 0;

  constructor(b: Uint8Array) {
    this.#b = b;
  }

  get done(): boolean {
    return this.#pos >= this.#b.length;
  }

  /** A varint: its low 32 bits, unsigned, and whether any higher bit is set (all bytes consumed). */
  #varint(): [number, boolean] {
    let lo = 0;
    let high = false;
    for (let i = 0; i < 10; i++) {
      if (this.#pos >= this.#b.length) throw new WireError("truncated varint");
      const byte = this.#b[this.#pos++]!;
      const bits = byte & 0x7f;
      if (i < 4) lo += bits * 2 ** (7 * i);
      else if (i === 4) {
        lo += (bits & 0x0f) * 2 ** 28;
        if (bits > 0x0f) high = true;
      } else if (bits !== 0) high = true;
      if (byte < 0x80) return [lo, high];
    }
    throw new WireError("varint longer than 10 bytes");
  }

  /** A varint that must fit 32 bits unsigned (a tag, a length). */
  uint32(): number {
    const [lo, high] = this.#varint();
    if (high) throw new WireError("varint does not fit 32 bits");
    return lo;
  }

  /** An int32 field: the low 32 bits, signed (negative values are 10-byte varints). */
  int32(): number {
    return this.#varint()[0] | 0;
  }

  /** A bool field: any non-zero varint is true. */
  bool(): boolean {
    const [lo, high] = this.#varint();
    return lo !== 0 || high;
  }

  /** Next field: `[number, wire type]`. */
  tag(): [number, number] {
    const t = this.uint32();
    const field = t >>> 3;
    if (field === 0) throw new WireError("field number 0");
    return [field, t & 7];
  }

  bytes(): Uint8Array {
    const n = this.uint32();
    if (n > this.#b.length - this.#pos) throw new WireError("length past the end of the message");
    const b = this.#b.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return b;
  }

  string(): string {
    return decodeUtf8(this.bytes());
  }

  skip(wire: number): void {
    switch (wire) {
      case VARINT:
        this.#varint();
        return;
      case I64:
        this.#advance(8);
        return;
      case LEN:
        this.bytes();
        return;
      case I32:
        this.#advance(4);
        return;
      default:
        throw new WireError(`wire type ${wire} is not supported`);
    }
  }

  #advance(n: number): void {
    if (n > this.#b.length - this.#pos) throw new WireError("fixed field past the end");
    this.#pos += n;
  }
}

/** Read every field of `b`; `on` returns false for the ones it does not take (they are skipped). */
function readFields(b: Uint8Array, on: (field: number, wire: number, r: Reader) => boolean): void {
  const r = new Reader(b);
  while (!r.done) {
    const [field, wire] = r.tag();
    if (!on(field, wire, r)) r.skip(wire);
  }
}

// --- messages the plugin writes ---------------------------------------------

/** `DevicePluginOptions`. */
export function encodeDevicePluginOptions(o: DevicePluginOptions): Uint8Array {
  return encodeWith((w) => writeOptions(w, o));
}

function writeOptions(w: Writer, o: DevicePluginOptions): void {
  w.bool(1, o.preStartRequired);
  w.bool(2, o.getPreferredAllocationAvailable);
}

/** `RegisterRequest`. */
export function encodeRegisterRequest(r: RegisterRequest): Uint8Array {
  return encodeWith((w) => {
    w.string(1, r.version);
    w.string(2, r.endpoint);
    w.string(3, r.resourceName);
    const options = r.options;
    if (options) w.message(4, (m) => writeOptions(m, options));
  });
}

/** `ListAndWatchResponse`; the devices may come from any iterable (the plugin never keeps the list). */
export function encodeListAndWatchResponse(
  r: ListAndWatchResponse | { devices: Iterable<Device> },
): Uint8Array {
  return encodeWith((w) => {
    for (const d of r.devices) w.message(1, (m) => writeDevice(m, d));
  });
}

function writeDevice(w: Writer, d: Device): void {
  w.string(1, d.ID);
  w.string(2, d.health);
}

/** `PreferredAllocationResponse`. */
export function encodePreferredAllocationResponse(r: PreferredAllocationResponse): Uint8Array {
  return encodeWith((w) => {
    for (const c of r.containerResponses) {
      w.message(1, (m) => {
        for (const id of c.deviceIDs) m.string(1, id, true);
      });
    }
  });
}

/** `AllocateResponse`. */
export function encodeAllocateResponse(r: AllocateResponse): Uint8Array {
  return encodeWith((w) => {
    for (const c of r.containerResponses) w.message(1, (m) => writeContainerResponse(m, c));
  });
}

function writeMap(w: Writer, field: number, map: Record<string, string> | undefined): void {
  for (const [k, v] of Object.entries(map ?? {})) {
    w.message(field, (e) => {
      e.string(1, k);
      e.string(2, v);
    });
  }
}

function writeContainerResponse(w: Writer, c: ContainerAllocateResponse): void {
  writeMap(w, 1, c.envs);
  for (const mount of c.mounts ?? []) {
    w.message(2, (m) => {
      m.string(1, mount.containerPath);
      m.string(2, mount.hostPath);
      m.bool(3, mount.readOnly);
    });
  }
  for (const d of c.devices) {
    w.message(3, (m) => {
      m.string(1, d.containerPath);
      m.string(2, d.hostPath);
      m.string(3, d.permissions);
    });
  }
  writeMap(w, 4, c.annotations);
  for (const cdi of c.cdiDevices ?? []) w.message(5, (m) => m.string(1, cdi.name));
}

// --- messages the plugin reads ----------------------------------------------

/**
 * `AllocateRequest`.
 *
 * @throws {WireError} on malformed bytes.
 * @throws {WireLimitError} as soon as it holds more than `limits` allow.
 */
export function decodeAllocateRequest(
  b: Uint8Array,
  limits: IdLimits = NO_LIMITS,
): AllocateRequest {
  const count = new IdCounter(limits);
  const containerRequests: AllocateRequest["containerRequests"] = [];
  readFields(b, (field, wire, r) => {
    if (field !== 1 || wire !== LEN) return false;
    count.container();
    const devicesIds: string[] = [];
    readFields(r.bytes(), (f, w, c) => {
      if (f !== 1 || w !== LEN) return false;
      devicesIds.push(count.id(c));
      return true;
    });
    containerRequests.push({ devicesIds });
    return true;
  });
  return { containerRequests };
}

/**
 * `PreferredAllocationRequest`.
 *
 * @throws {WireError} on malformed bytes.
 * @throws {WireLimitError} as soon as it holds more than `limits` allow
 *   (available and must-include IDs count together).
 */
export function decodePreferredAllocationRequest(
  b: Uint8Array,
  limits: IdLimits = NO_LIMITS,
): PreferredAllocationRequest {
  const count = new IdCounter(limits);
  const containerRequests: PreferredAllocationRequest["containerRequests"] = [];
  readFields(b, (field, wire, r) => {
    if (field !== 1 || wire !== LEN) return false;
    count.container();
    const req = { availableDeviceIDs: [] as string[], mustIncludeDeviceIDs: [] as string[] };
    let allocationSize = 0;
    readFields(r.bytes(), (f, w, c) => {
      if ((f === 1 || f === 2) && w === LEN) {
        (f === 1 ? req.availableDeviceIDs : req.mustIncludeDeviceIDs).push(count.id(c));
        return true;
      }
      if (f === 3 && w === VARINT) {
        allocationSize = c.int32();
        return true;
      }
      return false;
    });
    containerRequests.push({ ...req, allocationSize });
    return true;
  });
  return { containerRequests };
}

/** `DevicePluginOptions` (the probe reads kubelet's view of it back). */
export function decodeDevicePluginOptions(b: Uint8Array): DevicePluginOptions {
  const o = { preStartRequired: false, getPreferredAllocationAvailable: false };
  readFields(b, (field, wire, r) => {
    if ((field !== 1 && field !== 2) || wire !== VARINT) return false;
    const v = r.bool();
    if (field === 1) o.preStartRequired = v;
    else o.getPreferredAllocationAvailable = v;
    return true;
  });
  return o;
}

/** Any message whose content the plugin ignores (`Empty`, `PreStartContainerRequest`): checked to be well-formed. */
export function decodeIgnored(b: Uint8Array): void {
  readFields(b, () => false);
}

// --- kubelet's PodResources API v1 (the CNI plugin asks it before importing a device) ---

/** `GetPodResourcesRequest { string pod_name = 1; string pod_namespace = 2; }`. */
export function encodeGetPodResourcesRequest(pod: { name: string; namespace: string }): Uint8Array {
  return encodeWith((w) => {
    w.string(1, pod.name);
    w.string(2, pod.namespace);
  });
}

/** `ContainerDevices { string resource_name = 1; repeated string device_ids = 2; … }`. */
function decodeContainerDevices(b: Uint8Array): ContainerDevices {
  const d: ContainerDevices = { resourceName: "", deviceIds: [] };
  readFields(b, (f, w, r) => {
    if (w !== LEN || (f !== 1 && f !== 2)) return false;
    if (f === 1) d.resourceName = r.string();
    else d.deviceIds.push(r.string());
    return true;
  });
  return d;
}

/**
 * `PodResources { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; … }`
 * with `ContainerResources { string name = 1; repeated ContainerDevices devices = 2; … }`.
 * Fields the plugin does not read (CPU IDs, memory, dynamic resources, and
 * whatever newer kubelets add) are skipped.
 */
function decodePodResources(b: Uint8Array): PodResources {
  const pod: PodResources = { name: "", namespace: "", containers: [] };
  readFields(b, (f, w, r) => {
    if (w !== LEN || f < 1 || f > 3) return false;
    if (f === 1) pod.name = r.string();
    else if (f === 2) pod.namespace = r.string();
    else {
      const c = { name: "", devices: [] as ContainerDevices[] };
      readFields(r.bytes(), (cf, cw, cr) => {
        if (cw !== LEN || (cf !== 1 && cf !== 2)) return false;
        if (cf === 1) c.name = cr.string();
        else c.devices.push(decodeContainerDevices(cr.bytes()));
        return true;
      });
      pod.containers.push(c);
    }
    return true;
  });
  return pod;
}

/**
 * `ListPodResourcesResponse { repeated PodResources pod_resources = 1; }` and
 * `GetPodResourcesResponse { PodResources pod_resources = 1; }` alike: every
 * `PodResources` in the message.
 */
export function decodePodResourcesResponse(b: Uint8Array): PodResources[] {
  const pods: PodResources[] = [];
  readFields(b, (f, w, r) => {
    if (f !== 1 || w !== LEN) return false;
    pods.push(decodePodResources(r.bytes()));
    return true;
  });
  return pods;
}
