// The Client-Server API: every area's routes under /_matrix/client, then 404/405 M_UNRECOGNIZED.
// All routes sit in one flat router registered with their full paths: each nested router a
// request passes costs express a path match and a prefix trim, and /sync and send come first.
import { Router } from "express";
import type { RoomService } from "../rooms/room-service.js";
import { mountAccountsApi, type AccountsOptions, type AuthService } from "./accounts/index.js";
import type { ClientApiContext } from "./contracts.js";
import { unrecognized } from "./http.js";
import { mountRoomsApi } from "./rooms/index.js";
import type { SyncEngine } from "./sync/engine.js";

export interface ClientApiServices {
  auth: AuthService;
  rooms: RoomService;
  sync: SyncEngine;
  accounts: AccountsOptions;
}

export function clientApi(ctx: ClientApiContext, services: ClientApiServices): Router {
  const router = Router();
  mountRoomsApi(router, ctx, services.rooms, services.sync);
  mountAccountsApi(router, ctx, services.auth, services.rooms, services.accounts);
  router.use(unrecognized(router));
  return router;
}
