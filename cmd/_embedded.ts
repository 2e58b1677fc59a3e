/**
 * Loading the device plugin from inside the single-file executable.
 *
 * `dist/macvtap` is the CNI bundle followed by one line comment holding the
 * device-plugin bundle, minified, gzipped and base64-encoded (~170 KiB). The
 * JavaScript parser skips a comment at memory speed, so the CNI path never
 * parses gRPC; only `macvtap deviceplugin` unpacks and imports the payload. Run from source (no payload),
 * the module is imported from its file.
 *
 * @module
 */

/** Marker in front of the embedded device-plugin bundle. */
export const DP_MARKER = "//# macvtap-deviceplugin=";

/**
 * Line 3 of the executable: `//# macvtap-cni-bytes=NNNNNNNNNN`, the length of
 * the part before the device-plugin payload. A CNI bin dir gets only that
 * part (`deno task install`, the DaemonSet's install step): every CNI call
 * then reads, hashes and loads ≈170 KiB less (≈1 ms), and the file shipped
 * stays one.
 */
export const CNI_BYTES_MARKER = "//# macvtap-cni-bytes=";

/** Digits of the length on the {@linkcode CNI_BYTES_MARKER} line (fixed, so it can be computed in place). */
export const CNI_BYTES_DIGITS = 10;

/**
 * The CNI-only prefix of a built executable, or `undefined` when `bytes` is
 * not one with a device-plugin payload (then install it whole).
 *
 * @param bytes The executable's content.
 * @returns The bytes before the payload line.
 */
export function cniPart(bytes: Uint8Array): Uint8Array | undefined {
  // After the launcher's two lines (tools/build.ts).
  const firstNl = bytes.indexOf(10, bytes.indexOf(10) + 1);
  if (firstNl < 0) return undefined;
  const head = new TextDecoder().decode(
    bytes.subarray(firstNl + 1, firstNl + 1 + CNI_BYTES_MARKER.length + CNI_BYTES_DIGITS + 1),
  );
  const m = new RegExp(`^${CNI_BYTES_MARKER}(\\d{${CNI_BYTES_DIGITS}})\n$`).exec(head);
  if (!m) return undefined;
  const n = Number(m[1]);
  if (n > bytes.length) return undefined;
  const rest = new TextDecoder().decode(bytes.subarray(n, n + DP_MARKER.length));
  return rest === DP_MARKER ? bytes.subarray(0, n) : undefined;
}

/** The device plugin's `main`. */
export type DevicePluginMain = (args: string[]) => Promise<number>;

/** Import the device plugin: the embedded payload when present, else the source file. */
export async function loadDevicePlugin(): Promise<DevicePluginMain> {
  const self = new URL(Deno.mainModule);
  if (self.protocol === "file:") {
    const text = Deno.readTextFileSync(self);
    // The payload is a line of its own (the bundle also holds the marker, in a string).
    const at = text.lastIndexOf(`\n${DP_MARKER}`) + 1;
    if (at > 0) {
      const end = text.indexOf("\n", at);
      const packed = text.slice(at + DP_MARKER.length, end < 0 ? undefined : end);
      const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      const source = new Uint8Array(await new Response(stream).arrayBuffer());
      let binary = "";
      for (let i = 0; i < source.length; i += 0x8000) {
        binary += String.fromCharCode(...source.subarray(i, i + 0x8000));
      }
      const url = `data:text/javascript;base64,${btoa(binary)}`;
      return ((await import(url)) as { main: DevicePluginMain }).main;
    }
    if (text.split("\n", 3)[2]?.startsWith(CNI_BYTES_MARKER)) {
      throw new Error(
        `${self.pathname} is the CNI-only copy of macvtap (installed without the device plugin); ` +
          "run the device plugin from the full executable (dist/macvtap; /usr/local/bin/macvtap in the image)",
      );
    }
  }
  // A non-literal specifier keeps the bundler from inlining gRPC into the CNI bundle.
  const source = "./deviceplugin.ts";
  return ((await import(source)) as { main: DevicePluginMain }).main;
}
