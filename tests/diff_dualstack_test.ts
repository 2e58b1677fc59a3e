/**
 * Differential suite, shard "dualstack": two attachments with IPv4 and IPv6
 * from host-local (the slowest case, in a file of its own so that it runs
 * beside the others). The cases, the observations and the table of intended
 * differences are in tests/_diff.ts.
 *
 * @module
 */

import { diffTest } from "./_diff.ts";

diffTest("dualstack");
