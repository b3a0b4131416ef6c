// Client transaction IDs: a retried send with the same (user, device, txnId) returns the first event.
import type { Knex } from "knex";
import type { ClientTxnsRepo } from "../ports.js";

export function createClientTxnsRepo(knex: Knex): ClientTxnsRepo {
  return {
    async get(userId, deviceId, txnId) {
      const row = (await knex("client_txns").select("event_id").where({ user_id: userId, device_id: deviceId, txn_id: txnId }).first()) as
        | { event_id: string }
        | undefined;
      return row?.event_id;
    },

    async put(userId, deviceId, txnId, eventId, ts) {
      // The first recorded event wins: a racing retry must not overwrite it.
      await knex("client_txns")
        .insert({ user_id: userId, device_id: deviceId, txn_id: txnId, event_id: eventId, ts })
        .onConflict(["user_id", "device_id", "txn_id"])
        .ignore();
    },
  };
}
