// GET /_matrix/federation/v1/version
import type { Router } from "../../app/http/router.js";

export function mountVersionRoute(router: Router, version: string): void {
  router.get("/v1/version", (_req, res) => {
    res.json({ server: { name: "Bobbin", version } });
  });
}
