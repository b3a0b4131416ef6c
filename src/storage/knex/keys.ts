// End-to-end keys: device keys (with device-list changes by stream position), one-time keys and
// fallback keys.
import type { Knex } from "knex";
import type { KeysRepo, OneTimeKeyRow } from "../ports.js";
import { type Engine, atomically, chunk, parseJsonObject, parseJsonValue, toBool, toNumber, toNumberOrNull } from "./db.js";

interface OneTimeKeyRecord {
  user_id: string;
  device_id: string;
  key_id: string;
  algorithm: string;
  key_json: string;
  fallback: unknown;
  expires_ts: unknown;
}

function toOneTimeKeyRow(r: OneTimeKeyRecord): OneTimeKeyRow {
  const expiresTs = toNumberOrNull(r.expires_ts);
  return {
    userId: r.user_id,
    deviceId: r.device_id,
    keyId: r.key_id,
    algorithm: r.algorithm,
    key: parseJsonValue(r.key_json),
    fallback: toBool(r.fallback),
    // Only keys that expire carry it (rows of other algorithms read as they always did).
    ...(expiresTs === null ? {} : { expiresTs }),
  };
}

const keyColumns = ["user_id", "device_id", "key_id", "algorithm", "key_json", "fallback", "expires_ts"];

export function createKeysRepo(knex: Knex, engine: Engine): KeysRepo {
  return {
    async putDeviceKeys(userId, deviceId, keys, streamPos) {
      await atomically(knex, async (trx) => {
        await trx("device_keys")
          .insert({ user_id: userId, device_id: deviceId, keys: JSON.stringify(keys), stream_pos: streamPos })
          .onConflict(["user_id", "device_id"])
          .merge(["keys", "stream_pos"]);
        await trx("device_list_changes").insert({ user_id: userId, device_id: deviceId, stream_pos: streamPos }).onConflict().ignore();
      });
    },

    async getDeviceKeys(userIds) {
      const result: Array<{ userId: string; deviceId: string; keys: ReturnType<typeof parseJsonObject> }> = [];
      for (const ids of chunk(userIds)) {
        const rows = (await knex("device_keys").select("user_id", "device_id", "keys").whereIn("user_id", ids).orderBy(["user_id", "device_id"])) as Array<{
          user_id: string;
          device_id: string;
          keys: string;
        }>;
        result.push(...rows.map((r) => ({ userId: r.user_id, deviceId: r.device_id, keys: parseJsonObject(r.keys) })));
      }
      return result;
    },

    async addOneTimeKeys(keys) {
      // A key ID already uploaded is kept as it is (clients re-upload after a lost response).
      for (const batch of chunk(keys, 200)) {
        await knex("one_time_keys")
          .insert(
            batch.map((k) => ({
              user_id: k.userId,
              device_id: k.deviceId,
              algorithm: k.algorithm,
              key_id: k.keyId,
              key_json: JSON.stringify(k.key),
              fallback: k.fallback,
              used: false,
              expires_ts: k.expiresTs ?? null,
            })),
          )
          .onConflict(["user_id", "device_id", "fallback", "key_id"])
          .ignore();
      }
    },

    async setFallbackKey(key) {
      await atomically(knex, async (trx) => {
        await trx("one_time_keys").where({ user_id: key.userId, device_id: key.deviceId, algorithm: key.algorithm, fallback: true }).del();
        await trx("one_time_keys").insert({
          user_id: key.userId,
          device_id: key.deviceId,
          algorithm: key.algorithm,
          key_id: key.keyId,
          key_json: JSON.stringify(key.key),
          fallback: true,
          used: false,
          expires_ts: key.expiresTs ?? null,
        });
      });
    },

    async countOneTimeKeys(userId, deviceId) {
      const rows = (await knex("one_time_keys")
        .select("algorithm")
        .count({ n: "*" })
        .where({ user_id: userId, device_id: deviceId, fallback: false })
        .groupBy("algorithm")) as Array<{ algorithm: string; n: unknown }>;
      return Object.fromEntries(rows.map((r) => [r.algorithm, toNumber(r.n)]));
    },

    async unusedFallbackAlgorithms(userId, deviceId) {
      const rows = (await knex("one_time_keys")
        .distinct("algorithm")
        .where({ user_id: userId, device_id: deviceId, fallback: true, used: false })
        .orderBy("algorithm")) as Array<{ algorithm: string }>;
      return rows.map((r) => r.algorithm);
    },

    async claimKey(userId, deviceId, algorithm, nowMs) {
      return atomically(knex, async (trx) => {
        // An expired one-time key can never be handed out: drop it (MLS KeyPackage lifetimes).
        if (nowMs !== undefined) await trx("one_time_keys").where({ user_id: userId, device_id: deviceId, algorithm, fallback: false }).where("expires_ts", "<=", nowMs).del();
        // On PostgreSQL, FOR UPDATE SKIP LOCKED makes concurrent claims lock different rows: none
        // can delete (and return) a key another claim holds, and none waits on a key that is about
        // to disappear only to find nothing. SQLite has a single writer (and this process a single
        // connection), so the transaction alone makes select-then-delete atomic there.
        const pick = trx("one_time_keys")
          .select(["id", ...keyColumns])
          .where({ user_id: userId, device_id: deviceId, algorithm, fallback: false })
          .orderBy("id")
          .first();
        if (nowMs !== undefined) pick.where((q) => q.whereNull("expires_ts").orWhere("expires_ts", ">", nowMs));
        if (engine === "postgres") pick.forUpdate().skipLocked();
        const claimed = (await pick) as (OneTimeKeyRecord & { id: number }) | undefined;
        if (claimed) {
          await trx("one_time_keys").where("id", claimed.id).del();
          return toOneTimeKeyRow(claimed);
        }

        // None left: the fallback key, reused until the client uploads a new one.
        const fallback = trx("one_time_keys").where({ user_id: userId, device_id: deviceId, algorithm, fallback: true });
        if (nowMs !== undefined) fallback.where((q) => q.whereNull("expires_ts").orWhere("expires_ts", ">", nowMs));
        const row = (await fallback.clone().select(keyColumns).first()) as OneTimeKeyRecord | undefined;
        if (!row) return undefined;
        await fallback.clone().update({ used: true });
        return toOneTimeKeyRow(row);
      });
    },

    async markDeviceListChanged(userId, streamPos) {
      // device_id '' = "some device of the user": deleted devices have no keys row left to bump.
      await knex("device_list_changes").insert({ user_id: userId, device_id: "", stream_pos: streamPos }).onConflict().ignore();
    },

    async getDeviceListChanges(userIds, fromPos, toPos) {
      const changed = new Set<string>();
      for (const ids of chunk(userIds)) {
        const rows = (await knex("device_list_changes")
          .distinct("user_id")
          .whereIn("user_id", ids)
          .where("stream_pos", ">", fromPos)
          .where("stream_pos", "<=", toPos)) as Array<{ user_id: string }>;
        for (const r of rows) changed.add(r.user_id);
      }
      return [...changed].sort();
    },
  };
}
