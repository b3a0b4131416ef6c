// The Client-Server API: every area's routes under /_matrix/client, then 404/405 M_UNRECOGNIZED.
import { Router } from "../app/http/router.js";
import type { RoomService } from "../rooms/room-service.js";
import { mountAccountsApi, type AccountsOptions, type AuthService } from "./accounts/index.js";
import type { ClientApiContext } from "./contracts.js";
import { unrecognizedRequest } from "./http.js";
import { mountRoomsApi } from "./rooms/index.js";
import { limitRequestsPerIp, limitRequestsPerUser } from "./request-rate-limits.js";
import type { SyncEngine } from "./sync/engine.js";
import type { MlsOverlay } from "../mls-overlay/mls-overlay.js";
import type { MlsLoader } from "../mls-overlay/ts-mls-adapter.js";
import { createToDevice } from "./accounts/to-device.js";
import { createMlsCommits } from "./mls/mls-commits.js";
import { mountMlsRoutes } from "./mls/routes.js";

export interface ClientApiServices {
  auth: AuthService;
  rooms: RoomService;
  sync: SyncEngine;
  accounts: AccountsOptions;
  /** The MLS overlay (Bobbin's `org.bobbin.mls` endpoints); absent: not served. */
  mls?: { overlay: MlsOverlay; loader: MlsLoader };
}

export function clientApi(clientCtx: ClientApiContext, services: ClientApiServices): Router {
  const router = new Router();
  // `r0` is the name the Client-Server API's paths had before v1.1 renamed them `v3` with the same
  // meaning; older tools (synadm, scripts) still call it.
  router.alias("/r0/", "/v3/");
  // Rate limits on every request (request-rate-limits.ts): per client address before any route,
  // per user wherever a route authenticates.
  router.use(limitRequestsPerIp(clientCtx.rateLimiter, clientCtx.authenticator));
  const ctx: ClientApiContext = { ...clientCtx, authenticator: limitRequestsPerUser(clientCtx.authenticator, clientCtx.rateLimiter) };
  mountRoomsApi(router, ctx, services.rooms, services.sync);
  mountAccountsApi(router, ctx, services.auth, services.rooms, services.accounts);
  if (services.mls) {
    const commits = createMlsCommits({ ctx, rooms: services.rooms, overlay: services.mls.overlay, loader: services.mls.loader, toDevice: createToDevice(ctx) });
    mountMlsRoutes(router, commits, ctx.authenticator, ctx.logger);
  }
  router.use(unrecognizedRequest);
  return router;
}
