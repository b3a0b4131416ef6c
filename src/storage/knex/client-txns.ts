// Client transaction IDs: a retried send with the same (user, device, txnId) returns the first event.
import type { Knex } from "knex";
import type { ClientTxnsRepo } from "../ports.js";
import type { SqliteHotPath } from "./sqlite-hot-path.js";

export function createClientTxnsRepo(knex: Knex, hotPath?: SqliteHotPath): ClientTxnsRepo {
  return {
    async get(userId, deviceId, txnId) {
      // Every send asks this first (sqlite-hot-path.ts).
      if (hotPath?.usable(knex.isTransaction === true)) return hotPath.clientTxnEventId(userId, deviceId, txnId);
      const row = (await knex("client_txns").select("event_id").where({ user_id: userId, device_id: deviceId, txn_id: txnId }).first()) as
        | { event_id: string }
        | undefined;
      return row?.event_id;
    },

    async put(userId, deviceId, txnId, eventId, ts) {
      if (knex.isTransaction && hotPath?.usable(true)) {
        hotPath.putClientTxn(userId, deviceId, txnId, eventId, ts);
        return;
      }
      // The first recorded event wins: a racing retry must not overwrite it.
      await knex("client_txns")
        .insert({ user_id: userId, device_id: deviceId, txn_id: txnId, event_id: eventId, ts })
        .onConflict(["user_id", "device_id", "txn_id"])
        .ignore();
    },
  };
}
