// Bobbin's own admin API under /_bobbin/admin (issue 7): what Synapse's admin API has no place
// for, Linearized Matrix data. Same callers as /_synapse/admin: server admins only.
import { Router } from "express";
import { queryString, requireAuth, unrecognized, type TokenAuthenticator } from "../../client-api/http.js";
import type { HubViolationRow, Storage } from "../../storage/ports.js";
import { requireServerAdmin } from "./guard.js";

export interface BobbinAdminApiDeps {
  storage: Storage;
  authenticator: TokenAuthenticator;
}

function toAdminViolation(row: HubViolationRow) {
  return { room_id: row.roomId, event_id: row.eventId, hub_server: row.hubServer, reason: row.reason, detected_ts: row.detectedTs };
}

export function bobbinAdminApi(deps: BobbinAdminApiDeps): Router {
  const router = Router();
  router.use(requireAuth(deps.authenticator), requireServerAdmin(deps.storage));

  // GET /v1/hub_violations[?room_id=]: events a hub appended that the auth rules forbid (LM
  // draft "Sending Events": participants check what the hub sends them), newest record last.
  router.get("/v1/hub_violations", async (req, res) => {
    const violations = await deps.storage.federation.listHubViolations(queryString(req, "room_id"));
    res.json({ violations: violations.map(toAdminViolation), total: violations.length });
  });

  router.use(unrecognized(router));
  return router;
}
