// `GET /versions` (Client-Server API "API Versions").
import type { Router } from "../../../app/http/router.js";

/** The spec versions whose endpoints this server serves (v3 paths, push rules as of v1.11). */
const SPEC_VERSIONS = ["v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11"];

export function mountVersionsRoutes(router: Router): void {
  // GET /versions
  router.get("/versions", (_req, res) => {
    res.json({ versions: SPEC_VERSIONS, unstable_features: {} });
  });
}
