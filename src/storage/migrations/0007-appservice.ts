// Application services' delivery state (Application Service API "Pushing events"): one row per
// service with its cursor over the server-wide event stream and the transaction in flight, so a
// restart resends the same txnId with the same body before moving on.
import type { Knex } from "knex";
import type { Migration } from "./index.js";

export const appserviceSchema: Migration = {
  name: "0007-appservice",

  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable("appservice_state", (t) => {
      t.text("appservice_id").primary();
      t.bigInteger("stream_pos").notNullable();
      t.bigInteger("last_txn_id").notNullable().defaultTo(0);
      // The transaction in flight: all three set, or all three null.
      t.text("txn_id");
      t.bigInteger("txn_up_to_pos");
      t.text("txn_body");
    });
    // Services that receive EDUs read receipts of every room by stream position.
    await knex.schema.alterTable("receipts", (t) => {
      t.index(["stream_pos"], "receipts_stream_pos");
    });
  },

  async down(knex: Knex): Promise<void> {
    await knex.schema.alterTable("receipts", (t) => {
      t.dropIndex(["stream_pos"], "receipts_stream_pos");
    });
    await knex.schema.dropTableIfExists("appservice_state");
  },
};
