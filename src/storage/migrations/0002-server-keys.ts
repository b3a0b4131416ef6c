// Remote servers' signing keys as the key ring verified them (LM draft "Retrieving Server Keys").
// One row per (server, key ID), never deleted: a key that signed stored events must stay
// verifiable after the server stops publishing it. Each row keeps the whole signed key response
// it came from, so the notary endpoints can serve it again with its original signatures.
import type { Knex } from "knex";
import type { Migration } from "./index.js";

export const serverKeysSchema: Migration = {
  name: "0002-server-keys",

  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable("server_keys", (t) => {
      t.text("server_name").notNullable();
      t.text("key_id").notNullable();
      // Unpadded base64 Ed25519 public key.
      t.text("key").notNullable();
      // The response's valid_until_ts, capped at fetched_ts + 7 days ("Validity").
      t.bigInteger("valid_until_ts").notNullable();
      // Set when the server lists the key under old_verify_keys.
      t.bigInteger("expired_ts");
      t.bigInteger("fetched_ts").notNullable();
      t.text("response_json").notNullable();
      t.primary(["server_name", "key_id"]);
    });
  },

  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTableIfExists("server_keys");
  },
};
