// Application services' delivery state (migration 0007-appservice) and the stream read the pusher
// makes over every room's events.
import type { Knex } from "knex";
import type { AppserviceRepo, AppserviceStateRow, ReceiptRow, ToDeviceMessage } from "../ports.js";
import { parseJsonObject, toNumber, toNumberOrNull } from "./db.js";
import { toStoredEvent, type EventRecord } from "./events.js";

interface StateRecord {
  appservice_id: string;
  stream_pos: unknown;
  last_txn_id: unknown;
  txn_id: string | null;
  txn_up_to_pos: unknown;
  txn_body: string | null;
}

function toStateRow(r: StateRecord): AppserviceStateRow {
  const upToPos = toNumberOrNull(r.txn_up_to_pos);
  return {
    appserviceId: r.appservice_id,
    streamPos: toNumber(r.stream_pos),
    lastTxnId: toNumber(r.last_txn_id),
    inFlight: r.txn_id !== null && upToPos !== null && r.txn_body !== null ? { txnId: r.txn_id, upToPos, body: r.txn_body } : null,
  };
}

export function createAppserviceRepo(knex: Knex): AppserviceRepo {
  return {
    async getState(appserviceId) {
      const row = (await knex("appservice_state").where("appservice_id", appserviceId).first()) as StateRecord | undefined;
      return row && toStateRow(row);
    },

    async initState(appserviceId, streamPos) {
      await knex("appservice_state").insert({ appservice_id: appserviceId, stream_pos: streamPos, last_txn_id: 0 }).onConflict("appservice_id").ignore();
    },

    async advanceCursor(appserviceId, streamPos) {
      await knex("appservice_state").where("appservice_id", appserviceId).where("stream_pos", "<", streamPos).update({ stream_pos: streamPos });
    },

    async putInFlight(appserviceId, txnId, txn) {
      await knex("appservice_state")
        .where("appservice_id", appserviceId)
        .update({ last_txn_id: txnId, txn_id: txn.txnId, txn_up_to_pos: txn.upToPos, txn_body: txn.body });
    },

    async completeInFlight(appserviceId, txnId) {
      // The cursor takes the transaction's upToPos in the same statement that clears it.
      await knex("appservice_state")
        .where({ appservice_id: appserviceId, txn_id: txnId })
        .update({ stream_pos: knex.raw("CASE WHEN txn_up_to_pos > stream_pos THEN txn_up_to_pos ELSE stream_pos END"), txn_id: null, txn_up_to_pos: null, txn_body: null });
    },

    async readStream(fromPos, toPos, limit) {
      const rows = (await knex("events")
        .select("event_id", "room_id", "room_seq", "stream_pos", "json", "redacted_by", "soft_failed")
        .where("stream_pos", ">", fromPos)
        .andWhere("stream_pos", "<=", toPos)
        .orderBy("stream_pos", "asc")
        .limit(limit)) as EventRecord[];
      return rows.map(toStoredEvent).filter((event) => !event.softFailed);
    },

    async readReceipts(fromPos, toPos, limit) {
      const rows = (await knex("receipts")
        .select("room_id", "user_id", "receipt_type", "thread_id", "event_id", "ts", "stream_pos")
        .where("stream_pos", ">", fromPos)
        .andWhere("stream_pos", "<=", toPos)
        .orderBy("stream_pos", "asc")
        .limit(limit)) as Array<{ room_id: string; user_id: string; receipt_type: string; thread_id: string; event_id: string; ts: unknown; stream_pos: unknown }>;
      return rows.map((r): ReceiptRow => ({
        roomId: r.room_id,
        userId: r.user_id,
        receiptType: r.receipt_type,
        // '' is "unthreaded" in the receipts table (0001-initial-schema).
        threadId: r.thread_id === "" ? null : r.thread_id,
        eventId: r.event_id,
        ts: toNumber(r.ts),
        streamPos: toNumber(r.stream_pos),
      }));
    },

    async readToDevice(fromPos, toPos, limit) {
      const rows = (await knex("to_device")
        .select("stream_pos", "user_id", "device_id", "sender", "type", "content")
        .where("stream_pos", ">", fromPos)
        .andWhere("stream_pos", "<=", toPos)
        .orderBy([{ column: "stream_pos" }, { column: "id" }])
        .limit(limit)) as Array<{ stream_pos: unknown; user_id: string; device_id: string; sender: string; type: string; content: string }>;
      return rows.map(
        (r): ToDeviceMessage => ({ streamPos: toNumber(r.stream_pos), userId: r.user_id, deviceId: r.device_id, sender: r.sender, type: r.type, content: parseJsonObject(r.content) }),
      );
    },
  };
}
