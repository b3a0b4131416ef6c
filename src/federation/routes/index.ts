// The Federation API under /_matrix/federation: each route with X-Matrix request authentication
// unless the spec leaves it open (version), then 404/405 M_UNRECOGNIZED.
import { Router } from "../../app/http/router.js";
import { unrecognizedRequest } from "../../client-api/http.js";
import type { LocalQueries } from "../queries.js";
import { requireFederationAuth, type FederationAuthDeps } from "../transport/require-auth.js";
import type { Storage } from "../../storage/ports.js";
import { mountEventAndStateRoutes } from "./event-state.js";
import { mountInboundSendRoute, type InboundSendDeps } from "../rooms/inbound-send.js";
import { mountMembershipRoutes, type MembershipRoutesDeps } from "../rooms/membership-routes.js";
import { mountQueryDirectoryRoute } from "./query-directory.js";
import { mountQueryProfileRoute } from "./query-profile.js";
import { mountUserKeyRoutes, type LocalUserKeys } from "./user-keys.js";
import { mountUserDeviceRoute } from "./user-device.js";
import { mountVersionRoute } from "./version.js";
import { mountMlsFederationRoutes } from "../../mls-overlay/group-info-federation.js";
import { limitPerOrigin } from "./origin-rate-limit.js";
import type { RateLimiter } from "../../client-api/http.js";

export interface FederationApiDeps {
  auth: FederationAuthDeps;
  queries: LocalQueries;
  version: string;
  storage: Storage;
  now: () => number;
  /** `PUT /send` and the membership handshakes. */
  send: InboundSendDeps;
  membership: MembershipRoutesDeps;
  /** `user/keys/query`, `user/keys/claim`, `user/devices`. */
  userKeys: LocalUserKeys;
  /** The `per_origin` rate limit (config `rate_limits.per_origin`); absent: not limited. */
  rateLimiter?: RateLimiter;
}

export function federationApi(deps: FederationApiDeps): Router {
  const api = new Router();
  const authenticate = requireFederationAuth(deps.auth);
  const auth = deps.rateLimiter ? limitPerOrigin(authenticate, deps.rateLimiter) : authenticate;
  mountVersionRoute(api, deps.version);
  mountQueryProfileRoute(api, auth, deps.queries);
  mountQueryDirectoryRoute(api, auth, deps.queries);
  mountEventAndStateRoutes(api, auth, { storage: deps.storage, serverName: deps.auth.serverName, now: deps.now });
  mountInboundSendRoute(api, auth, deps.send);
  mountMembershipRoutes(api, auth, deps.membership);
  mountUserKeyRoutes(api, auth, { serverName: deps.auth.serverName, keys: deps.userKeys, now: deps.now });
  mountUserDeviceRoute(api, auth, { serverName: deps.auth.serverName, keys: deps.userKeys, now: deps.now });
  // Bobbin's MLS overlay: a room's GroupInfo for a participant that joined after earlier commits.
  mountMlsFederationRoutes(api, auth, { storage: deps.storage });
  const routes = new Router();
  routes.use(api);
  routes.use(unrecognizedRequest);
  return routes;
}
