/**
 * The hostrouteif manager (seed 002): a host-side macvtap on the tasks'
 * master, through which the host reaches task addresses with `/32` (`/128`)
 * host routes. macvlan/macvtap children cannot talk to their own lower
 * device's host stack; a sibling child on the host side can.
 *
 * Everything here is ensure-style: "exists" is success when it is what we
 * want, anything else is an error; lost races are re-checked.
 *
 * @module
 */

export {
  addHostRoute,
  checkHostRoutes,
  delHostRoutes,
  ensureHostRouteIf,
  hostRouteConflict,
  HostRouteError,
  hostRouteIfProblem,
  hostRoutesFor,
  linkLocalOf,
  listOwnHostRoutes,
  RTPROT_MACVTAP,
} from "./manager.ts";
export type { HostRoute } from "./manager.ts";
