/**
 * The master (lower device) of new macvtaps.
 *
 * @module
 */

import { type Link, LinkNotFoundError, type NetlinkHandle } from "../netlink/mod.ts";
import { PluginError } from "./errors.ts";

/**
 * The master link: `name` when given, else the interface of the default
 * route in the handle's (the runtime's) namespace.
 *
 * @throws {PluginError} (code 7) when the master does not exist or no default route exists.
 */
export function resolveMaster(h: NetlinkHandle, name: string | undefined): Link {
  if (name) {
    try {
      return h.links.get(name);
    } catch (err) {
      if (err instanceof LinkNotFoundError) {
        throw new PluginError(`master: interface "${name}" not found`, { code: 7, cause: err });
      }
      throw err;
    }
  }
  const route = h.routes.defaultRoute();
  if (!route?.oif) {
    throw new PluginError(
      "master: not set, and no default route interface found to use instead",
      { code: 7 },
    );
  }
  return h.links.get(route.oif);
}
