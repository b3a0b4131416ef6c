// Federation state (migration 0004): the outbound queues per destination, destinations' retry
// state, inbound transaction IDs, completed LPDUs and hub violations (see FederationRepo).
import type { Knex } from "knex";
import { encodeCanonicalJson } from "../../core/canonical-json.js";
import type { Pdu } from "../../core/events.js";
import type { DestinationRow, FederationRepo, HubViolationRow, OutboxEdu, OutboxPdu } from "../ports.js";
import { chunk, parseJsonObject, toNumber, toNumberOrNull } from "./db.js";

/**
 * Rows per multi-row INSERT into the PDU queue: three parameters each, so 1,500 per statement,
 * far under both engines' limits (SQLite 32766, PostgreSQL 65535). A fan-out to a few hundred
 * servers is then one statement per event.
 */
const PDU_ROWS_PER_INSERT = 500;
/** Four parameters a row. */
const EDU_ROWS_PER_INSERT = 500;

interface OutboxPduRecord {
  stream_pos: unknown;
  event_id: string;
  json: string;
}

interface OutboxEduRecord {
  id: unknown;
  destination: string;
  edu: string;
}

interface DestinationRecord {
  destination: string;
  failures: unknown;
  retry_at_ts: unknown;
  last_error: string | null;
  last_success_ts: unknown;
}

interface InboundTxnRecord {
  origin: string;
  txn_id: string;
  response: string;
  received_ts: unknown;
}

interface HubViolationRecord {
  room_id: string;
  event_id: string;
  hub_server: string;
  reason: string;
  detected_ts: unknown;
}

function toDestinationRow(r: DestinationRecord): DestinationRow {
  return {
    destination: r.destination,
    failures: toNumber(r.failures),
    retryAtTs: toNumberOrNull(r.retry_at_ts),
    lastError: r.last_error,
    lastSuccessTs: toNumberOrNull(r.last_success_ts),
  };
}

function toHubViolationRow(r: HubViolationRecord): HubViolationRow {
  return { roomId: r.room_id, eventId: r.event_id, hubServer: r.hub_server, reason: r.reason, detectedTs: toNumber(r.detected_ts) };
}

export function createFederationRepo(knex: Knex): FederationRepo {
  return {
    async enqueuePdus(rows) {
      for (const part of chunk(rows, PDU_ROWS_PER_INSERT)) {
        await knex("federation_outbox_pdus")
          .insert(part.map((row) => ({ destination: row.destination, stream_pos: row.streamPos, event_id: row.eventId })))
          .onConflict(["destination", "stream_pos"])
          .ignore();
      }
    },

    async peekPdus(destination, limit) {
      // `events.json` is the redacted copy once the event is redacted: a queued PDU goes out as
      // the event is stored at sending time, never with content redacted since.
      const rows = (await knex("federation_outbox_pdus as o")
        .join("events as e", "e.event_id", "o.event_id")
        .select("o.stream_pos", "o.event_id", "e.json")
        .where("o.destination", destination)
        .orderBy("o.stream_pos")
        .limit(limit)) as OutboxPduRecord[];
      return rows.map((r): OutboxPdu => ({ streamPos: toNumber(r.stream_pos), eventId: r.event_id, pdu: JSON.parse(r.json) as Pdu }));
    },

    async ackPdus(destination, upToPos) {
      await knex("federation_outbox_pdus").where("destination", destination).where("stream_pos", "<=", upToPos).del();
    },

    async enqueueEdus(edus) {
      // The port takes no timestamp; created_ts is bookkeeping only (how long EDUs wait), never
      // compared with a caller's clock, so the repository reads it.
      const createdTs = Date.now();
      for (const part of chunk(edus, EDU_ROWS_PER_INSERT)) {
        await knex("federation_outbox_edus").insert(
          // Key order is immaterial here: the sender re-encodes the transaction it signs. Encoding
          // canonically refuses at queue time an EDU that could never be signed (a float, say).
          part.map((e) => ({ destination: e.destination, edu: encodeCanonicalJson(e.edu, "utf16"), created_ts: createdTs })),
        );
      }
    },

    async peekEdus(destination, limit) {
      const rows = (await knex("federation_outbox_edus")
        .select("id", "destination", "edu")
        .where("destination", destination)
        .orderBy("id")
        .limit(limit)) as OutboxEduRecord[];
      return rows.map((r): OutboxEdu => ({ id: toNumber(r.id), destination: r.destination, edu: parseJsonObject(r.edu) }));
    },

    async ackEdus(destination, upToId) {
      await knex("federation_outbox_edus").where("destination", destination).where("id", "<=", upToId).del();
    },

    async destinationsWithBacklog() {
      const pdus = knex("federation_outbox_pdus").distinct("destination");
      const edus = knex("federation_outbox_edus").distinct("destination");
      const rows = (await knex.select("destination").from(pdus.union(edus).as("backlog")).orderBy("destination")) as Array<{ destination: string }>;
      return rows.map((r) => r.destination);
    },

    async countQueuedPdus(destination) {
      const row = (await knex("federation_outbox_pdus").where("destination", destination).count({ n: "*" }).first()) as { n: unknown } | undefined;
      return row ? toNumber(row.n) : 0;
    },

    async getDestination(destination) {
      const row = (await knex("federation_destinations").where("destination", destination).first()) as DestinationRecord | undefined;
      return row && toDestinationRow(row);
    },

    async listDestinations({ from, limit }) {
      // `from` is the previous page's last destination (exclusive), as listPublicRooms' `since`.
      const query = knex("federation_destinations").select("*").orderBy("destination").limit(limit);
      if (from !== undefined) query.where("destination", ">", from);
      return ((await query) as DestinationRecord[]).map(toDestinationRow);
    },

    async putDestination(row) {
      await knex("federation_destinations")
        .insert({
          destination: row.destination,
          failures: row.failures,
          retry_at_ts: row.retryAtTs,
          last_error: row.lastError,
          last_success_ts: row.lastSuccessTs,
        })
        .onConflict("destination")
        .merge();
    },

    async getInboundTxn(origin, txnId) {
      const row = (await knex("federation_inbound_txns").where({ origin, txn_id: txnId }).first()) as InboundTxnRecord | undefined;
      return row && { origin: row.origin, txnId: row.txn_id, response: parseJsonObject(row.response), receivedTs: toNumber(row.received_ts) };
    },

    async putInboundTxn(row) {
      // Two copies of one transaction processed at once: the first response recorded is the one
      // every later repeat replays.
      await knex("federation_inbound_txns")
        .insert({ origin: row.origin, txn_id: row.txnId, response: JSON.stringify(row.response), received_ts: row.receivedTs })
        .onConflict(["origin", "txn_id"])
        .ignore();
    },

    async pruneInboundTxns(beforeTs) {
      return knex("federation_inbound_txns").where("received_ts", "<", beforeTs).del();
    },

    async putCompletedLpdu(lpduId, eventId, origin, ts) {
      // The first completion stands: a resent LPDU must keep mapping to the event appended for it.
      await knex("hub_completed_lpdus").insert({ lpdu_id: lpduId, event_id: eventId, origin, received_ts: ts }).onConflict("lpdu_id").ignore();
    },

    async getCompletedLpdu(lpduId) {
      const row = (await knex("hub_completed_lpdus").select("event_id").where("lpdu_id", lpduId).first()) as { event_id: string } | undefined;
      return row?.event_id;
    },

    async addHubViolation(row) {
      await knex("hub_violations").insert({
        room_id: row.roomId,
        event_id: row.eventId,
        hub_server: row.hubServer,
        reason: row.reason,
        detected_ts: row.detectedTs,
      });
    },

    async listHubViolations(roomId) {
      const query = knex("hub_violations").select("room_id", "event_id", "hub_server", "reason", "detected_ts").orderBy("id");
      if (roomId !== undefined) query.where("room_id", roomId);
      return ((await query) as HubViolationRecord[]).map(toHubViolationRow);
    },
  };
}
