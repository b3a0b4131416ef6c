// The MLS overlay (issue 5; LM draft "MLS Considerations"): each encrypted room's group record —
// the current epoch, the GroupInfo of that epoch (with its ratchet tree) and the commit event that
// started it — and an expiry on uploaded keys, so that a KeyPackage past its lifetime is never
// handed out by a claim (contract section 3).
import type { Knex } from "knex";
import type { Migration } from "./index.js";

export const mlsSchema: Migration = {
  name: "0008-mls",

  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable("mls_groups", (t) => {
      t.text("room_id").primary();
      t.bigInteger("epoch").notNullable();
      // Unpadded base64 of the MLSMessage(GroupInfo) of `epoch`.
      t.text("group_info").notNullable();
      t.text("commit_event_id").notNullable();
      // JSON [[user_id, device_id], ...]: the devices in the group's tree (departed devices in /sync).
      t.text("devices").notNullable();
    });
    await knex.schema.alterTable("one_time_keys", (t) => {
      // Milliseconds since the epoch; null: never expires (keys of other algorithms).
      t.bigInteger("expires_ts").nullable();
    });
  },

  async down(knex: Knex): Promise<void> {
    await knex.schema.alterTable("one_time_keys", (t) => {
      t.dropColumn("expires_ts");
    });
    await knex.schema.dropTableIfExists("mls_groups");
  },
};
