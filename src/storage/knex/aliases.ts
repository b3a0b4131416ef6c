// Room aliases (local ones; the alias is the primary key, so it maps to one room only).
import type { Knex } from "knex";
import type { AliasesRepo } from "../ports.js";

export function createAliasesRepo(knex: Knex): AliasesRepo {
  return {
    async create(alias, roomId, creator) {
      // ON CONFLICT DO NOTHING rather than catching the unique violation: on PostgreSQL a failed
      // statement would abort the caller's whole transaction.
      const inserted = await knex("room_aliases").insert({ alias, room_id: roomId, creator }).onConflict("alias").ignore().returning("alias");
      return inserted.length > 0;
    },

    async get(alias) {
      const row = (await knex("room_aliases").where("alias", alias).first()) as { room_id: string; creator: string } | undefined;
      return row && { roomId: row.room_id, creator: row.creator };
    },

    async delete(alias) {
      return (await knex("room_aliases").where("alias", alias).del()) > 0;
    },

    async listForRoom(roomId) {
      const rows = (await knex("room_aliases").select("alias").where("room_id", roomId).orderBy("alias")) as Array<{ alias: string }>;
      return rows.map((r) => r.alias);
    },
  };
}
