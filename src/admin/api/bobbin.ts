// Bobbin's own admin API under /_bobbin/admin (issue 7): what Synapse's admin API has no place
// for, Linearized Matrix data. Same callers as /_synapse/admin: server admins only.
import { Router } from "../../app/http/router.js";
import { queryString, requireAuth, unrecognizedRequest, type TokenAuthenticator } from "../../client-api/http.js";
import type { HubViolationRow, Storage } from "../../storage/ports.js";
import type { AppserviceOverview } from "../../appservice/index.js";
import { requireServerAdmin } from "./guard.js";

export interface BobbinAdminApiDeps {
  storage: Storage;
  authenticator: TokenAuthenticator;
  /** Application services and their transaction queues (absent: none listed). */
  appservices?: { overview(): AppserviceOverview[] };
}

function toAdminViolation(row: HubViolationRow) {
  return { room_id: row.roomId, event_id: row.eventId, hub_server: row.hubServer, reason: row.reason, detected_ts: row.detectedTs };
}

function toAdminAppservice(service: AppserviceOverview) {
  const d = service.delivery;
  return {
    id: service.id,
    url: service.url,
    // A service without a url is sent nothing: it has no queue.
    ...(d
      ? { state: d.state, stream_pos: d.streamPos, behind: d.behind, txn_in_flight: d.inFlight, failures: d.failures, last_error: d.lastError, next_retry_ts: d.nextRetryTs }
      : {}),
  };
}

export function bobbinAdminApi(deps: BobbinAdminApiDeps): Router {
  const router = new Router();
  router.use(requireAuth(deps.authenticator), requireServerAdmin(deps.storage));

  // GET /v1/hub_violations[?room_id=]: events a hub appended that the auth rules forbid (LM
  // draft "Sending Events": participants check what the hub sends them), newest record last.
  router.get("/v1/hub_violations", async (req, res) => {
    const violations = await deps.storage.federation.listHubViolations(queryString(req, "room_id"));
    res.json({ violations: violations.map(toAdminViolation), total: violations.length });
  });

  // GET /v1/appservices: each application service's transaction queue (Application Service API
  // "Pushing events"): its cursor, how far behind the stream it is, the transaction in flight,
  // consecutive failures and when the next retry goes.
  router.get("/v1/appservices", (_req, res) => {
    const services = deps.appservices?.overview() ?? [];
    res.json({ appservices: services.map(toAdminAppservice), total: services.length });
  });

  router.use(unrecognizedRequest);
  return router;
}
