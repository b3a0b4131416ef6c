// The MLS overlay, continued (issue 5): Welcomes waiting for their commit's acceptance and for
// delivery, so that neither a crash nor a retried request loses or repeats one; and which commit
// event started each epoch, so that a server can hand out the GroupInfo of an earlier epoch (a
// participant that joined after earlier commits asks its hub for the one its next commit builds on).
import type { Knex } from "knex";
import type { Migration } from "./index.js";

export const mlsWelcomesSchema: Migration = {
  name: "0009-mls-welcomes",

  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable("mls_pending_welcomes", (t) => {
      t.text("room_id").notNullable();
      // SHA-256 hex of the commit's `message` (as the client sent it).
      t.text("commit_hash").notNullable();
      // The epoch the commit was built on; a record still unbound once the room is past it was refused.
      t.bigInteger("epoch").notNullable();
      t.text("sender_user").notNullable();
      t.text("sender_device").notNullable();
      t.text("welcome").notNullable();
      // JSON [[user_id, device_id], ...]
      t.text("targets").notNullable();
      // Null until the commit event is appended (accepted by the hub).
      t.text("event_id").nullable();
      t.bigInteger("created_ts").notNullable();
      t.primary(["room_id", "commit_hash"]);
      t.index(["event_id"]);
    });
    await knex.schema.createTable("mls_epochs", (t) => {
      t.text("room_id").notNullable();
      t.bigInteger("epoch").notNullable();
      // The `m.mls.commit` event that started `epoch` (its public_group_state is that epoch's GroupInfo).
      t.text("commit_event_id").notNullable();
      t.primary(["room_id", "epoch"]);
    });
  },

  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTableIfExists("mls_epochs");
    await knex.schema.dropTableIfExists("mls_pending_welcomes");
  },
};
