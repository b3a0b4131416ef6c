// Rooms a server admin has blocked (Synapse Admin API "Delete Room" with `block: true`, and "Block
// Room"), so that local users can be kept out of them. One row per blocked room; unblocking deletes it.
import type { Knex } from "knex";
import type { Migration } from "./index.js";

export const blockedRoomsSchema: Migration = {
  name: "0006-blocked-rooms",

  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable("blocked_rooms", (t) => {
      t.text("room_id").primary();
      t.text("blocked_by").notNullable();
      t.bigInteger("blocked_ts").notNullable();
    });
  },

  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTableIfExists("blocked_rooms");
  },
};
