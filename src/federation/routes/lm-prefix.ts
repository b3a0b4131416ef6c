// Where peers serve the draft's endpoints that are not yet versioned (DESIGN.md "endpoint prefix").
import { LINEARIZED_02 } from "../../core/room-versions.js";

export const LM_UNSTABLE_PREFIX = `/unstable/${LINEARIZED_02}`;
