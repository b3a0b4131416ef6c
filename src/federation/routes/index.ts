// The Federation API under /_matrix/federation: each route with X-Matrix request authentication
// unless the spec leaves it open (version), then 404/405 M_UNRECOGNIZED.
import { Router } from "express";
import { unrecognized } from "../../client-api/http.js";
import type { LocalQueries } from "../queries.js";
import { requireFederationAuth, type FederationAuthDeps } from "../transport/require-auth.js";
import { mountQueryDirectoryRoute } from "./query-directory.js";
import { mountQueryProfileRoute } from "./query-profile.js";
import { mountVersionRoute } from "./version.js";

export function federationApi(deps: { auth: FederationAuthDeps; queries: LocalQueries; version: string }): Router {
  const api = Router();
  const auth = requireFederationAuth(deps.auth);
  mountVersionRoute(api, deps.version);
  mountQueryProfileRoute(api, auth, deps.queries);
  mountQueryDirectoryRoute(api, auth, deps.queries);
  const routes = Router();
  routes.use(api);
  routes.use(unrecognized(api));
  return routes;
}
