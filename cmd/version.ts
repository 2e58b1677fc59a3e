/** The release version, printed by `--version` and the CNI "about" text. */
export const VERSION = "0.1.0";
