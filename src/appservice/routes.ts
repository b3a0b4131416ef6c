// Client-Server API extensions for application services: `POST /v1/appservice/{appserviceId}/ping`
// (Application Service API "Pinging"), mounted under /_matrix/client before the client API.
import { Router } from "../app/http/router.js";
import { Errcode, MatrixError } from "../core/errors.js";
import { bodyOf, optionalString, paramOf, requesterOf, requireAuth, type TokenAuthenticator } from "../client-api/http.js";
import type { Appservices } from "./appservices.js";

export function appserviceClientRoutes(appservices: Appservices, authenticator: TokenAuthenticator): Router {
  const router = new Router();

  // POST /v1/appservice/{appserviceId}/ping
  router.post("/v1/appservice/:appserviceId/ping", requireAuth(authenticator), async (req, res) => {
    const appserviceId = paramOf(req, "appserviceId");
    const transactionId = optionalString(bodyOf(req), "transaction_id");
    // Only the service itself may ping it: its as_token, whoever it masquerades as.
    if (requesterOf(res).appserviceId !== appserviceId) throw new MatrixError(Errcode.FORBIDDEN, 403, "The access token is not this application service's");
    const verdict = await appservices.ping(appserviceId, transactionId);
    if (verdict.ok) res.json({ duration_ms: verdict.durationMs });
    else res.status(verdict.status).json(verdict.body);
  });

  return router;
}
