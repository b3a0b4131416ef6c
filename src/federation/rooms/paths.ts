// Federation endpoint paths (DESIGN.md "endpoint prefix"): the unstable LM prefix peers use today
// and the draft's versioned paths, served as aliases of each other.
export const LM_UNSTABLE = "/unstable/org.matrix.i-d.ralston-mimi-linearized-matrix.02";

/** Paths (relative to /_matrix/federation) an endpoint is served at. */
export function lmPaths(unstable: string, ...versioned: string[]): string[] {
  return [`${LM_UNSTABLE}${unstable}`, ...versioned];
}
