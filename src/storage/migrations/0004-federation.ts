// Federation state (LM draft "Sending Events", "Receiving Events/PDUs"; DESIGN.md "Hub pipeline"):
// the durable outbound queues, one per destination server, the retry state of each destination,
// inbound transaction IDs for idempotent `PUT /send/{txnId}`, the LPDUs this hub has completed,
// and what this server, as a participant, found wrong with a room's hub.
import type { Knex } from "knex";
import type { Migration } from "./index.js";

export const federationSchema: Migration = {
  name: "0004-federation",

  async up(knex: Knex): Promise<void> {
    // The PDU queues of every destination share one outbox row per event (not one per destination
    // and event: a room with 415 servers would write 415 scattered index entries per event). The
    // row names an interned destination set: consecutive events of a room share theirs, so
    // queueing an event costs one primary-key lookup and one row. The PDU itself is read from
    // `events` when sent.
    await knex.schema.createTable("federation_outbox_events", (t) => {
      t.bigInteger("stream_pos").primary();
      t.text("event_id").notNullable();
      t.text("dest_set").notNullable();
      // Per set: its newest row (backlog) and its acknowledged rows (garbage collection).
      t.index(["dest_set", "stream_pos"], "federation_outbox_events_set");
    });

    // Immutable: set_id is a hash of the sorted names, `destinations` their JSON array.
    await knex.schema.createTable("federation_dest_sets", (t) => {
      t.text("set_id").primary();
      t.text("destinations").notNullable();
    });

    // How far each destination's queue has been acknowledged: its queue is the outbox rows after
    // acked_pos whose set names it. Created just before the first event whose set names it, so a
    // server that joins does not scan history.
    await knex.schema.createTable("federation_pdu_cursors", (t) => {
      t.text("destination").primary();
      t.bigInteger("acked_pos").notNullable();
      // Queueing asks "has any cursor passed this position?" (a commit later than a higher one).
      t.index(["acked_pos"], "federation_pdu_cursors_acked");
    });

    // The exceptions, one row per (destination, event): an event that commits after a higher
    // position its destination already acknowledged, or a destination added to an event already
    // queued for others.
    await knex.schema.createTable("federation_outbox_extra_pdus", (t) => {
      t.text("destination").notNullable();
      t.bigInteger("stream_pos").notNullable();
      t.text("event_id").notNullable();
      t.primary(["destination", "stream_pos"]);
    });

    await knex.schema.createTable("federation_outbox_edus", (t) => {
      t.bigIncrements("id").primary();
      t.text("destination").notNullable();
      t.text("edu").notNullable();
      t.bigInteger("created_ts").notNullable();
      t.index(["destination", "id"], "federation_outbox_edus_queue");
    });

    await knex.schema.createTable("federation_destinations", (t) => {
      t.text("destination").primary();
      t.integer("failures").notNullable();
      t.bigInteger("retry_at_ts");
      t.text("last_error");
      t.bigInteger("last_success_ts");
    });

    // Kept for a day so a repeated (origin, txnId) replays the first response (Server-Server API
    // `PUT /send/{txnId}`: the transaction ID makes the request idempotent).
    await knex.schema.createTable("federation_inbound_txns", (t) => {
      t.text("origin").notNullable();
      t.text("txn_id").notNullable();
      t.text("response").notNullable();
      t.bigInteger("received_ts").notNullable();
      t.primary(["origin", "txn_id"]);
      t.index(["received_ts"], "federation_inbound_txns_received");
    });

    // Hub side: the event ID over the LPDU as the participant sent it -> the completed event, so a
    // resent LPDU is answered with the same event instead of being appended twice.
    await knex.schema.createTable("hub_completed_lpdus", (t) => {
      t.text("lpdu_id").primary();
      t.text("event_id").notNullable();
      t.text("origin").notNullable();
      t.bigInteger("received_ts").notNullable();
    });

    await knex.schema.createTable("hub_violations", (t) => {
      t.bigIncrements("id").primary();
      t.text("room_id").notNullable();
      t.text("event_id").notNullable();
      t.text("hub_server").notNullable();
      t.text("reason").notNullable();
      t.bigInteger("detected_ts").notNullable();
      t.index(["room_id", "id"], "hub_violations_room");
    });
  },

  async down(knex: Knex): Promise<void> {
    for (const table of [
      "hub_violations",
      "hub_completed_lpdus",
      "federation_inbound_txns",
      "federation_destinations",
      "federation_outbox_edus",
      "federation_outbox_extra_pdus",
      "federation_pdu_cursors",
      "federation_dest_sets",
      "federation_outbox_events",
    ]) {
      await knex.schema.dropTableIfExists(table);
    }
  },
};
