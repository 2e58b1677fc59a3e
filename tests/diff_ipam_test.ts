/**
 * Differential suite, shard "ipam": static IPAM, prevResult, two
 * attachments, netns or master gone, dhcp. The cases, the observations and
 * the table of intended differences are in tests/_diff.ts.
 *
 * @module
 */

import { diffTest } from "./_diff.ts";

diffTest("ipam");
