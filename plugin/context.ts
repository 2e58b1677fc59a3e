/**
 * What every plugin command receives besides the config: the CNI
 * environment, already validated by the skel. Declared once, in `cni/`.
 *
 * @module
 */

export type { CniContext } from "../cni/mod.ts";
