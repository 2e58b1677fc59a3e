/**
 * Differential suite, shard "hostlocal": host-local IPAM at every
 * cniVersion. The cases, the observations and the table of intended
 * differences are in tests/_diff.ts.
 *
 * @module
 */

import { diffTest } from "./_diff.ts";

diffTest("hostlocal");
