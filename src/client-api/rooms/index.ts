// Rooms area of the Client-Server API. STUB: being implemented (issue 3).
import { Router } from "express";
import type { RoomService } from "../../rooms/room-service.js";
import type { ClientApiContext } from "../contracts.js";
import type { SyncEngine } from "../sync/engine.js";

/** Routes for: createRoom, send, state, event, messages, members, joined_members, joined_rooms, join, invite,
 *  leave, forget, kick, ban, unban, knock, redact, typing, receipt, read_markers, sync. Paths relative to /_matrix/client. */
export function roomsApi(_ctx: ClientApiContext, _rooms: RoomService, _sync: SyncEngine): Router {
  return Router();
}
