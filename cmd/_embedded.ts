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

/** The device plugin's `main`. */
export type DevicePluginMain = (args: string[]) => Promise<number>;

/** Import the device plugin: the embedded payload when present, else the source file. */
export async function loadDevicePlugin(): Promise<DevicePluginMain> {
  const self = new URL(Deno.mainModule);
  if (self.protocol === "file:") {
    const text = Deno.readTextFileSync(self);
    const at = text.lastIndexOf(DP_MARKER);
    if (at >= 0) {
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
  }
  // A non-literal specifier keeps the bundler from inlining gRPC into the CNI bundle.
  const source = "./deviceplugin.ts";
  return ((await import(source)) as { main: DevicePluginMain }).main;
}
