// `GET /_synapse/admin/v1/server_version` (Synapse Admin API "Server Version"): tools read it to
// tell which server they talk to.
import type { Router } from "../../app/http/router.js";

export function mountServerVersionRoutes(router: Router, version: string): void {
  // GET /v1/server_version
  router.get("/v1/server_version", (_req, res) => {
    res.json({ server_version: version });
  });
}
