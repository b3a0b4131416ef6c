// Remote servers' verified signing keys (table server_keys, migration 0002).
import type { Knex } from "knex";
import type { ServerKeyRow, ServerKeysRepo } from "../ports.js";
import { chunk, parseJsonObject, toNumber, toNumberOrNull } from "./db.js";

interface Row {
  server_name: string;
  key_id: string;
  key: string;
  valid_until_ts: unknown;
  expired_ts: unknown;
  fetched_ts: unknown;
  response_json: string;
}

export function createServerKeysRepo(knex: Knex): ServerKeysRepo {
  return {
    async putServerKeys(rows) {
      // Seven columns a row: chunks of 500 rows stay under both engines' parameter limits.
      for (const part of chunk(rows)) {
        if (part.length === 0) continue;
        await knex("server_keys")
          .insert(
            part.map((row) => ({
              server_name: row.serverName,
              key_id: row.keyId,
              key: row.key,
              valid_until_ts: row.validUntilTs,
              expired_ts: row.expiredTs,
              fetched_ts: row.fetchedTs,
              response_json: JSON.stringify(row.response),
            })),
          )
          .onConflict(["server_name", "key_id"])
          .merge();
      }
    },

    async getServerKeys(serverName) {
      const rows = (await knex("server_keys").select("*").where("server_name", serverName).orderBy("key_id")) as Row[];
      return rows.map(
        (row): ServerKeyRow => ({
          serverName: row.server_name,
          keyId: row.key_id,
          key: row.key,
          validUntilTs: toNumber(row.valid_until_ts),
          expiredTs: toNumberOrNull(row.expired_ts),
          fetchedTs: toNumber(row.fetched_ts),
          response: parseJsonObject(row.response_json),
        }),
      );
    },
  };
}
