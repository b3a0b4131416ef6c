// The admin API under /_synapse/admin (issue 7: the Synapse Admin API subset admins' tools use).
// Every route but server_version needs a server admin's access token: requireAuth as in the Client-Server API, then
// requireServerAdmin; unknown paths answer 404/405 M_UNRECOGNIZED.
import { Router } from "../../app/http/router.js";
import type { Logger } from "pino";
import type { AuthService } from "../../client-api/accounts/auth-service.js";
import type { ClientApiContext, ProfilePropagator } from "../../client-api/contracts.js";
import type { OutboundQueues } from "../../federation/outbound/types.js";
import type { RoomService } from "../../rooms/room-service.js";
import { requireAuth, unrecognizedRequest } from "../../client-api/http.js";
import { createFederationAdmin, mountFederationRoutes } from "./federation.js";
import { requireServerAdmin } from "./guard.js";
import { createRoomAdmin } from "./room-admin.js";
import { createSharedSecretRegistration, mountRegisterRoutes } from "./register.js";
import { createRoomDelete, mountRoomDeleteRoutes } from "./room-delete.js";
import { mountRoomRoutes } from "./rooms.js";
import { mountServerVersionRoutes } from "./server-version.js";
import { createUserAdmin } from "./user-admin.js";
import { mountUserRoutes } from "./users.js";

export interface AdminApiDeps {
  ctx: ClientApiContext;
  auth: AuthService;
  /** The room service: profile changes, a deactivated user's leaves, a deleted room's members leaving. */
  rooms: ProfilePropagator & Pick<RoomService, "leave" | "forget" | "purge">;
  /** The outbound federation queues: a destination's retry state is reset through them. */
  queues: OutboundQueues;
  /** `registration_shared_secret`: enables `/v1/register`; undefined: disabled. */
  registrationSharedSecret: string | undefined;
  version: string;
  logger: Logger;
}

export function adminApi(deps: AdminApiDeps): Router {
  const router = new Router();
  // Public, as Synapse serves it: the federation API's `/version` tells anyone the same.
  mountServerVersionRoutes(router, deps.version);
  // Public too: the shared secret in the request's MAC authenticates it.
  const { ctx } = deps;
  const registration = { secret: deps.registrationSharedSecret, auth: deps.auth, storage: ctx.storage, serverName: ctx.serverName, logger: deps.logger, now: ctx.now };
  mountRegisterRoutes(router, createSharedSecretRegistration(registration));
  router.use(requireAuth(deps.ctx.authenticator), requireServerAdmin(deps.ctx.storage));
  mountUserRoutes(router, createUserAdmin({ ctx: deps.ctx, auth: deps.auth, rooms: deps.rooms, logger: deps.logger }));
  mountRoomRoutes(router, createRoomAdmin({ storage: deps.ctx.storage, serverName: deps.ctx.serverName }));
  mountRoomDeleteRoutes(router, createRoomDelete({ storage: ctx.storage, rooms: deps.rooms, serverName: ctx.serverName, logger: deps.logger, now: ctx.now }));
  mountFederationRoutes(router, createFederationAdmin({ repo: ctx.storage.federation, queues: deps.queues, logger: deps.logger, now: ctx.now }));
  router.use(unrecognizedRequest);
  return router;
}
