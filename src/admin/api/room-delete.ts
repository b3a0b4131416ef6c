// Deleting and blocking rooms (Synapse Admin API "Delete Room" v1 and "Block Room"):
// `DELETE /v1/rooms/{roomId}`, `GET|PUT /v1/rooms/{roomId}/block`. Deleting makes every local
// member leave the room and forget it, removes its local aliases and its directory entry, blocks it
// when asked, and then (unless `purge: false`, as in Synapse) purges it: every row of the room is
// deleted from the database (storage/knex/purge.ts). Other servers keep their copies.
import type { Router } from "../../app/http/router.js";
import type { Logger } from "pino";
import { Errcode, MatrixError } from "../../core/errors.js";
import { serverNameOf } from "../../core/identifiers.js";
import { bodyOf, optionalBoolean, paramOf } from "../../client-api/http.js";
import type { RoomService } from "../../rooms/room-service.js";
import type { Storage } from "../../storage/ports.js";
import { adminOf, logAdminAction } from "./guard.js";

export interface RoomDeleteDeps {
  storage: Storage;
  /** Local members leave and forget the room as themselves, as their own client would. */
  rooms: Pick<RoomService, "leave" | "forget" | "purge">;
  serverName: string;
  logger: Logger;
  now: () => number;
}

export interface RoomDeletion {
  kicked_users: string[];
  failed_to_kick_users: string[];
  local_aliases: string[];
  new_room_id: null;
}

export interface RoomDelete {
  /** `forcePurge`: purge even when a local member could not be made to leave. */
  delete(admin: string, roomId: string, options: { block: boolean; purge: boolean; forcePurge?: boolean }): Promise<RoomDeletion>;
  blockStatus(roomId: string): Promise<{ block: boolean; user_id?: string }>;
  setBlocked(admin: string, roomId: string, block: boolean): Promise<void>;
}

export function createRoomDelete(deps: RoomDeleteDeps): RoomDelete {
  const { storage, serverName, logger } = deps;

  /** Each local member leaves and forgets the room; one failing does not stop the others. */
  async function removeLocalMembers(roomId: string): Promise<{ kicked: string[]; failed: string[] }> {
    const members = (await storage.events.getMembers(roomId, "join")).filter((userId) => serverNameOf(userId) === serverName);
    const kicked: string[] = [];
    const failed: string[] = [];
    for (const userId of members) {
      const sender = { userId, deviceId: "" };
      try {
        await deps.rooms.leave(sender, roomId, "Room deleted by a server admin");
        await deps.rooms.forget(sender, roomId);
        kicked.push(userId);
      } catch (error) {
        logger.warn({ err: error, room_id: roomId, user_id: userId }, "member of a deleted room could not leave");
        failed.push(userId);
      }
    }
    return { kicked, failed };
  }

  async function removeAliases(roomId: string): Promise<string[]> {
    const aliases = await storage.aliases.listForRoom(roomId);
    for (const alias of aliases) await storage.aliases.delete(alias);
    return aliases;
  }

  return {
    async delete(admin, roomId, { block, purge, forcePurge = false }) {
      const room = await storage.events.getRoom(roomId);
      // As Synapse: a room this server does not know may still be blocked ahead of time.
      if (!room && !block) throw new MatrixError(Errcode.NOT_FOUND, 404, "Unknown room id");
      if (block) await storage.blockedRooms.block(roomId, admin, deps.now());
      const { kicked, failed } = room ? await removeLocalMembers(roomId) : { kicked: [], failed: [] };
      const aliases = room ? await removeAliases(roomId) : [];
      if (room?.isPublic) await storage.events.setRoomPublic(roomId, false);
      logAdminAction(logger, admin, "delete_room", { room_id: roomId, block, purge, kicked_users: kicked, failed_to_kick_users: failed, local_aliases: aliases });
      if (room && purge) {
        // Synapse's rule: a local member still in the room stops the purge unless it is forced.
        if (failed.length > 0 && !forcePurge) {
          throw new MatrixError(Errcode.UNKNOWN, 500, `Not purged: ${failed.length} local member(s) could not leave the room; send force_purge: true to purge anyway`);
        }
        const purged = await deps.rooms.purge(roomId);
        logAdminAction(logger, admin, "purge_room", { room_id: roomId, events: purged.events, rows: purged.rows });
      }
      return { kicked_users: kicked, failed_to_kick_users: failed, local_aliases: aliases, new_room_id: null };
    },

    async blockStatus(roomId) {
      const row = await storage.blockedRooms.get(roomId);
      return row ? { block: true, user_id: row.blockedBy } : { block: false };
    },

    async setBlocked(admin, roomId, block) {
      if (block) await storage.blockedRooms.block(roomId, admin, deps.now());
      else await storage.blockedRooms.unblock(roomId);
      logAdminAction(logger, admin, block ? "block_room" : "unblock_room", { room_id: roomId });
    },
  };
}

export function mountRoomDeleteRoutes(router: Router, rooms: RoomDelete): void {
  // DELETE /v1/rooms/{roomId}
  router.delete("/v1/rooms/:roomId", async (req, res) => {
    const body = bodyOf(req);
    if (body.new_room_user_id !== undefined && body.new_room_user_id !== null) throw new MatrixError(Errcode.INVALID_PARAM, 400, "new_room_user_id is not supported");
    // Synapse's defaults: purge unless told not to; force_purge only with purge.
    const purge = optionalBoolean(body, "purge") ?? true;
    const forcePurge = purge && (optionalBoolean(body, "force_purge") ?? false);
    res.json(await rooms.delete(adminOf(res), paramOf(req, "roomId"), { block: optionalBoolean(body, "block") ?? false, purge, forcePurge }));
  });

  // GET /v1/rooms/{roomId}/block
  router.get("/v1/rooms/:roomId/block", async (req, res) => {
    res.json(await rooms.blockStatus(paramOf(req, "roomId")));
  });

  // PUT /v1/rooms/{roomId}/block
  router.put("/v1/rooms/:roomId/block", async (req, res) => {
    const block = optionalBoolean(bodyOf(req), "block");
    if (block === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, "block is required");
    await rooms.setBlocked(adminOf(res), paramOf(req, "roomId"), block);
    res.json({ block });
  });
}
