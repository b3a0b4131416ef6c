// Account data, global (room '' in the table) and per room, by stream position.
import type { Knex } from "knex";
import type { AccountDataRepo } from "../ports.js";
import { parseJsonObject } from "./db.js";

const globalRoom = "";

export function createAccountDataRepo(knex: Knex): AccountDataRepo {
  return {
    async put(userId, roomId, type, content, streamPos) {
      await knex("account_data")
        .insert({ user_id: userId, room_id: roomId ?? globalRoom, type, content: JSON.stringify(content), stream_pos: streamPos })
        .onConflict(["user_id", "room_id", "type"])
        .merge(["content", "stream_pos"]);
    },

    async get(userId, roomId, type) {
      const row = (await knex("account_data").select("content").where({ user_id: userId, room_id: roomId ?? globalRoom, type }).first()) as
        | { content: string }
        | undefined;
      return row && parseJsonObject(row.content);
    },

    async getChanged(userId, fromPos, toPos) {
      const rows = (await knex("account_data")
        .select("room_id", "type", "content")
        .where("user_id", userId)
        .where("stream_pos", ">", fromPos)
        .where("stream_pos", "<=", toPos)
        .orderBy("stream_pos")) as Array<{ room_id: string; type: string; content: string }>;
      return rows.map((r) => ({ roomId: r.room_id === globalRoom ? null : r.room_id, type: r.type, content: parseJsonObject(r.content) }));
    },
  };
}
