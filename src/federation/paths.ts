// Federation endpoint paths (DESIGN.md "endpoint prefix"): the draft's endpoints that are not yet
// versioned live under the unstable LM prefix peers use today; Bobbin also serves the draft's
// versioned paths (`v2/send`, `v3/invite`, ...) as aliases.
import { LINEARIZED_02 } from "../core/room-versions.js";

/** Relative to /_matrix/federation. */
export const LM_UNSTABLE = `/unstable/${LINEARIZED_02}`;

/** The paths (relative to /_matrix/federation) one endpoint is served at. */
export function lmPaths(unstable: string, ...versioned: string[]): string[] {
  return [`${LM_UNSTABLE}${unstable}`, ...versioned];
}
