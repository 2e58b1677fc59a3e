/**
 * Differential suite, shard "link": modes, MTU, MAC, the default master. The
 * cases, the observations and the table of intended differences are in
 * tests/_diff.ts.
 *
 * @module
 */

import { diffTest } from "./_diff.ts";

diffTest("link");
