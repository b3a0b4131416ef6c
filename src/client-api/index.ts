// The Client-Server API: every area's routes under /_matrix/client, then 404/405 M_UNRECOGNIZED.
import { Router } from "express";
import type { RoomService } from "../rooms/room-service.js";
import { accountsApi, type AccountsOptions, type AuthService } from "./accounts/index.js";
import type { ClientApiContext } from "./contracts.js";
import { unrecognized } from "./http.js";
import { roomsApi } from "./rooms/index.js";
import type { SyncEngine } from "./sync/engine.js";

export interface ClientApiServices {
  auth: AuthService;
  rooms: RoomService;
  sync: SyncEngine;
  accounts: AccountsOptions;
}

export function clientApi(ctx: ClientApiContext, services: ClientApiServices): Router {
  const router = Router();
  router.use(accountsApi(ctx, services.auth, services.rooms, services.accounts));
  router.use(roomsApi(ctx, services.rooms, services.sync));
  const routes = Router();
  routes.use(router);
  routes.use(unrecognized(router));
  return routes;
}
