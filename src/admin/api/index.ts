// The admin API under /_synapse/admin (issue 7: the Synapse Admin API subset admins' tools use).
// Every route but server_version needs a server admin's access token: requireAuth as in the Client-Server API, then
// requireServerAdmin; unknown paths answer 404/405 M_UNRECOGNIZED.
import { Router } from "express";
import type { Logger } from "pino";
import type { AuthService } from "../../client-api/accounts/auth-service.js";
import type { ClientApiContext, ProfilePropagator } from "../../client-api/contracts.js";
import { requireAuth, unrecognized } from "../../client-api/http.js";
import { requireServerAdmin } from "./guard.js";
import { createRoomAdmin } from "./room-admin.js";
import { mountRoomRoutes } from "./rooms.js";
import { mountServerVersionRoutes } from "./server-version.js";
import { createUserAdmin } from "./user-admin.js";
import { mountUserRoutes } from "./users.js";

export interface AdminApiDeps {
  ctx: ClientApiContext;
  auth: AuthService;
  /** The room service: profile changes and a deactivated user's leaves. */
  rooms: ProfilePropagator;
  version: string;
  logger: Logger;
}

export function adminApi(deps: AdminApiDeps): Router {
  const router = Router();
  // Public, as Synapse serves it: the federation API's `/version` tells anyone the same.
  mountServerVersionRoutes(router, deps.version);
  router.use(requireAuth(deps.ctx.authenticator), requireServerAdmin(deps.ctx.storage));
  mountUserRoutes(router, createUserAdmin({ ctx: deps.ctx, auth: deps.auth, rooms: deps.rooms, logger: deps.logger }));
  mountRoomRoutes(router, createRoomAdmin({ storage: deps.ctx.storage, serverName: deps.ctx.serverName }));
  router.use(unrecognized(router));
  return router;
}
