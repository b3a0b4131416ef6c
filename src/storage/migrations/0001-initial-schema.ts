// The first schema: accounts, the linear event log with its state index, and the per-user
// streams. Portable across SQLite and PostgreSQL: only knex schema builder types, `text` for every
// identifier (Matrix IDs may reach 255 bytes; neither engine gains from varchar), `bigInteger` for
// stream positions and timestamps, `boolean` (SQLite stores 0/1; the repositories convert), and
// JSON as text (the repositories parse it). Tables that must keep a column nullable for the
// protocol but need it in a key (account data's room, receipts' thread) store '' for "none".
import type { Knex } from "knex";
import type { Migration } from "./index.js";

export const initialSchema: Migration = {
  name: "0001-initial-schema",

  async up(knex: Knex): Promise<void> {
    // -- Accounts --------------------------------------------------------------------------------
    await knex.schema.createTable("users", (t) => {
      t.text("user_id").primary();
      t.text("localpart").notNullable().unique();
      t.text("password_hash");
      t.boolean("is_admin").notNullable().defaultTo(false);
      t.boolean("is_guest").notNullable().defaultTo(false);
      t.boolean("deactivated").notNullable().defaultTo(false);
      t.text("displayname");
      t.text("avatar_url");
      t.bigInteger("created_ts").notNullable();
      t.text("appservice_id");
    });

    await knex.schema.createTable("devices", (t) => {
      t.text("user_id").notNullable().references("user_id").inTable("users").onDelete("CASCADE");
      t.text("device_id").notNullable();
      t.text("display_name");
      t.bigInteger("last_seen_ts");
      t.text("last_seen_ip");
      t.bigInteger("created_ts").notNullable();
      t.primary(["user_id", "device_id"]);
    });

    // Only SHA-256 hashes of tokens: a database leak does not leak sessions.
    await knex.schema.createTable("access_tokens", (t) => {
      t.text("token_hash").primary();
      t.text("user_id").notNullable();
      t.text("device_id").notNullable();
      t.bigInteger("created_ts").notNullable();
      t.bigInteger("expires_ts");
      t.index(["user_id", "device_id"], "access_tokens_device");
    });

    // -- Rooms and the linear event log (DESIGN.md "Storage") ------------------------------------
    await knex.schema.createTable("rooms", (t) => {
      t.text("room_id").primary();
      t.text("room_version").notNullable();
      t.text("creator").notNullable();
      t.text("hub_server").notNullable();
      t.boolean("is_public").notNullable().defaultTo(false);
      t.bigInteger("created_ts").notNullable();
    });

    await knex.schema.createTable("events", (t) => {
      t.text("event_id").primary();
      t.text("room_id").notNullable().references("room_id").inTable("rooms");
      // Position in the room's linear log: 0 is the create event, each append is last + 1.
      t.integer("room_seq").notNullable();
      // Position in the server-wide sync stream (see ports.ts).
      t.bigInteger("stream_pos").notNullable().unique();
      t.text("type").notNullable();
      t.text("state_key");
      // content.membership of m.room.member state events, so membership changes are indexable.
      t.text("membership");
      t.text("sender").notNullable();
      t.bigInteger("origin_server_ts").notNullable();
      t.text("json").notNullable();
      t.text("redacted_by");
      t.boolean("soft_failed").notNullable().defaultTo(false);
      t.unique(["room_id", "room_seq"], { indexName: "events_room_seq" });
      t.index(["room_id", "stream_pos"], "events_room_stream");
    });
    // A user's membership changes by stream range (sync: joined/left rooms since a token). Partial,
    // so the millions of message events with state_key NULL are not in it; both engines support it.
    await knex.schema.alterTable("events", (t) => {
      t.index(["state_key", "stream_pos"], "events_membership_stream", {
        predicate: knex.whereNotNull("membership"),
      });
    });

    // One row per state event, keyed by its seq: the state before seq N is, per (type, state_key),
    // the row with the highest room_seq < N — one range scan of this primary key.
    await knex.schema.createTable("state_history", (t) => {
      t.text("room_id").notNullable();
      t.text("type").notNullable();
      t.text("state_key").notNullable();
      t.integer("room_seq").notNullable();
      t.text("event_id").notNullable().references("event_id").inTable("events");
      t.primary(["room_id", "type", "state_key", "room_seq"]);
    });

    await knex.schema.createTable("current_state", (t) => {
      t.text("room_id").notNullable();
      t.text("type").notNullable();
      t.text("state_key").notNullable();
      t.text("event_id").notNullable().references("event_id").inTable("events");
      // Denormalised content.membership of m.room.member rows: a user's rooms in one index scan.
      t.text("membership");
      t.primary(["room_id", "type", "state_key"]);
      t.index(["state_key", "membership"], "current_state_member");
    });

    // -- Client transaction IDs, aliases, filters ------------------------------------------------
    await knex.schema.createTable("client_txns", (t) => {
      t.text("user_id").notNullable();
      t.text("device_id").notNullable();
      t.text("txn_id").notNullable();
      t.text("event_id").notNullable();
      t.bigInteger("ts").notNullable();
      t.primary(["user_id", "device_id", "txn_id"]);
    });

    await knex.schema.createTable("room_aliases", (t) => {
      t.text("alias").primary();
      t.text("room_id").notNullable();
      t.text("creator").notNullable();
      t.index(["room_id"], "room_aliases_room");
    });

    await knex.schema.createTable("filters", (t) => {
      t.increments("filter_id").primary();
      t.text("user_id").notNullable();
      t.text("json").notNullable();
      t.index(["user_id"], "filters_user");
    });

    // -- Per-user streams --------------------------------------------------------------------------
    await knex.schema.createTable("account_data", (t) => {
      t.text("user_id").notNullable();
      t.text("room_id").notNullable(); // '' = global account data
      t.text("type").notNullable();
      t.text("content").notNullable();
      t.bigInteger("stream_pos").notNullable();
      t.primary(["user_id", "room_id", "type"]);
      t.index(["user_id", "stream_pos"], "account_data_stream");
    });

    await knex.schema.createTable("receipts", (t) => {
      t.text("room_id").notNullable();
      t.text("user_id").notNullable();
      t.text("receipt_type").notNullable();
      t.text("thread_id").notNullable(); // '' = unthreaded
      t.text("event_id").notNullable();
      t.bigInteger("ts").notNullable();
      t.bigInteger("stream_pos").notNullable();
      t.primary(["room_id", "user_id", "receipt_type", "thread_id"]);
      t.index(["room_id", "stream_pos"], "receipts_stream");
    });

    await knex.schema.createTable("to_device", (t) => {
      t.increments("id").primary();
      t.bigInteger("stream_pos").notNullable();
      t.text("user_id").notNullable();
      t.text("device_id").notNullable();
      t.text("sender").notNullable();
      t.text("type").notNullable();
      t.text("content").notNullable();
      t.index(["user_id", "device_id", "stream_pos"], "to_device_inbox");
    });

    // -- End-to-end keys ---------------------------------------------------------------------------
    await knex.schema.createTable("device_keys", (t) => {
      t.text("user_id").notNullable();
      t.text("device_id").notNullable();
      t.text("keys").notNullable();
      t.bigInteger("stream_pos").notNullable();
      t.primary(["user_id", "device_id"]);
    });

    // Device-list changes (keys uploaded, device deleted) by stream position. Separate from
    // device_keys because a deleted device's row is gone but its deletion must still be reported.
    await knex.schema.createTable("device_list_changes", (t) => {
      t.text("user_id").notNullable();
      t.text("device_id").notNullable(); // '' when only the user is known (markDeviceListChanged)
      t.bigInteger("stream_pos").notNullable();
      t.primary(["user_id", "stream_pos", "device_id"]);
    });

    await knex.schema.createTable("one_time_keys", (t) => {
      t.increments("id").primary();
      t.text("user_id").notNullable();
      t.text("device_id").notNullable();
      t.text("algorithm").notNullable();
      t.text("key_id").notNullable(); // "<algorithm>:<key id>"
      t.text("key_json").notNullable();
      // Fallback keys live here too: reused when no one-time key is left, marked used when handed out.
      t.boolean("fallback").notNullable().defaultTo(false);
      t.boolean("used").notNullable().defaultTo(false);
      t.unique(["user_id", "device_id", "fallback", "key_id"], { indexName: "one_time_keys_key" });
      t.index(["user_id", "device_id", "algorithm", "fallback"], "one_time_keys_claim");
    });

    // The highest stream position ever deleted from a stream table (acknowledged to-device
    // messages, a deleted device's inbox). maxStreamPos() includes it, so a restart never hands out
    // again a position a client has already seen in a sync token.
    await knex.schema.createTable("stream_retired", (t) => {
      t.integer("id").primary();
      t.bigInteger("stream_pos").notNullable();
    });
    await knex("stream_retired").insert({ id: 1, stream_pos: 0 });
  },

  async down(knex: Knex): Promise<void> {
    for (const table of [
      "stream_retired", "one_time_keys", "device_list_changes", "device_keys", "to_device", "receipts",
      "account_data", "filters", "room_aliases", "client_txns", "current_state", "state_history", "events",
      "rooms", "access_tokens", "devices", "users",
    ]) {
      await knex.schema.dropTableIfExists(table);
    }
  },
};
