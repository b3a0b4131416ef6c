// Where a participant's replica of a room hosted elsewhere begins (LM draft "Event and State APIs":
// only the hub holds the full history). A replica starts with the state the hub's send_join
// answered, then the join; the timeline a client may page through locally starts at the join
// (`first_seq`), and older history is asked of the hub's backfill before `before_event_id` (the
// hub's event the join was placed after).
import type { Knex } from "knex";
import type { Migration } from "./index.js";

export const replicaHistorySchema: Migration = {
  name: "0005-replica-history",

  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable("replica_history", (t) => {
      t.text("room_id").primary();
      t.integer("first_seq").notNullable();
      t.text("before_event_id").nullable();
    });
  },

  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTableIfExists("replica_history");
  },
};
