/**
 * Differential suite, shard "l2": L2 only and VERSION at every cniVersion.
 * The cases, the observations and the table of intended differences are in
 * tests/_diff.ts.
 *
 * @module
 */

import { diffTest } from "./_diff.ts";

diffTest("l2");
