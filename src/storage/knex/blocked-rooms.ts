// Rooms blocked by a server admin (migration 0006-blocked-rooms).
import type { Knex } from "knex";
import type { BlockedRoomsRepo } from "../ports.js";
import { toNumber } from "./db.js";

export function createBlockedRoomsRepo(knex: Knex): BlockedRoomsRepo {
  return {
    async block(roomId, blockedBy, ts) {
      // Blocking a blocked room keeps the first record: who blocked it, and when.
      await knex("blocked_rooms").insert({ room_id: roomId, blocked_by: blockedBy, blocked_ts: ts }).onConflict("room_id").ignore();
    },

    async unblock(roomId) {
      return (await knex("blocked_rooms").where("room_id", roomId).del()) > 0;
    },

    async get(roomId) {
      const row = (await knex("blocked_rooms").where("room_id", roomId).first()) as { blocked_by: string; blocked_ts: number | string } | undefined;
      return row && { roomId, blockedBy: row.blocked_by, blockedTs: toNumber(row.blocked_ts) };
    },
  };
}
