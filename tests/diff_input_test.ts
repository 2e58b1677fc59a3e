/**
 * Differential suite, shard "input": malformed input and refused configs.
 * The cases, the observations and the table of intended differences are in
 * tests/_diff.ts.
 *
 * @module
 */

import { diffTest } from "./_diff.ts";

diffTest("input");
