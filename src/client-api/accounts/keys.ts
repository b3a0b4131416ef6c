// End-to-end key distribution (Client-Server API "End-to-End Encryption": `/keys/upload`,
// `/keys/query`, `/keys/claim`, `/keys/changes`). Generic over algorithms; keys of users on other
// servers need federation queries, which are reported as `failures` for now.
import { Errcode, MatrixError } from "../../core/errors.js";
import { serverNameOf } from "../../core/identifiers.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../../core/json.js";
import type { OneTimeKeyRow } from "../../storage/ports.js";
import type { ClientApiContext } from "../contracts.js";
import type { Requester } from "../http.js";
import { notifyDeviceListChange, usersSharingRoomsWith } from "./device-lists.js";

export interface KeysUpload {
  deviceKeys?: JsonObject;
  oneTimeKeys: Record<string, JsonValue>;
  fallbackKeys: Record<string, JsonValue>;
}

export interface Keys {
  upload(requester: Requester, upload: KeysUpload): Promise<{ one_time_key_counts: Record<string, number> }>;
  query(requester: Requester, wanted: Map<string, string[]>): Promise<{ device_keys: Record<string, Record<string, JsonObject>>; failures: Record<string, JsonObject> }>;
  claim(wanted: Map<string, Map<string, string>>): Promise<{ one_time_keys: Record<string, Record<string, Record<string, JsonValue>>>; failures: Record<string, JsonObject> }>;
  changes(requester: Requester, fromPos: number, toPos: number): Promise<{ changed: string[]; left: string[] }>;
}

/** `<algorithm>:<key id>` */
function splitKeyId(keyId: string): { algorithm: string; id: string } {
  const colon = keyId.indexOf(":");
  if (colon <= 0 || colon === keyId.length - 1) throw new MatrixError(Errcode.BAD_JSON, 400, `Key ID ${keyId} is not <algorithm>:<key id>`);
  return { algorithm: keyId.slice(0, colon), id: keyId.slice(colon + 1) };
}

/** Device keys (spec "Device keys" definition) must name the uploading user and device. */
function checkDeviceKeys(keys: JsonObject, requester: Requester): void {
  if (keys.user_id !== requester.userId || keys.device_id !== requester.deviceId) {
    throw new MatrixError(Errcode.BAD_JSON, 400, "device_keys must be for the requesting user and device");
  }
  const { algorithms, keys: publicKeys, signatures } = keys;
  if (!Array.isArray(algorithms) || !algorithms.every((a) => typeof a === "string")) throw new MatrixError(Errcode.BAD_JSON, 400, "device_keys.algorithms must be an array of strings");
  if (!isJsonObject(publicKeys) || !Object.values(publicKeys).every((k) => typeof k === "string")) throw new MatrixError(Errcode.BAD_JSON, 400, "device_keys.keys must map key IDs to strings");
  if (!isJsonObject(signatures)) throw new MatrixError(Errcode.BAD_JSON, 400, "device_keys.signatures must be an object");
}

export function createKeys(ctx: ClientApiContext): Keys {
  const { storage } = ctx;

  async function counts(userId: string, deviceId: string): Promise<Record<string, number>> {
    // Clients expect a count for signed_curve25519 even when none are left.
    return { signed_curve25519: 0, ...(await storage.keys.countOneTimeKeys(userId, deviceId)) };
  }

  return {
    async upload(requester, { deviceKeys, oneTimeKeys, fallbackKeys }) {
      const { userId, deviceId } = requester;
      if (deviceKeys) checkDeviceKeys(deviceKeys, requester);
      const rows = (keys: Record<string, JsonValue>, fallback: boolean): OneTimeKeyRow[] =>
        Object.entries(keys).map(([keyId, key]) => ({ userId, deviceId, keyId, algorithm: splitKeyId(keyId).algorithm, key, fallback }));
      const oneTime = rows(oneTimeKeys, false);
      const fallback = rows(fallbackKeys, true);
      const byAlgorithm = new Map(fallback.map((k) => [k.algorithm, k]));
      if (byAlgorithm.size !== fallback.length) throw new MatrixError(Errcode.BAD_JSON, 400, "At most one fallback key per algorithm");

      if (deviceKeys) {
        const pos = await ctx.streams.withPositions(1, async ([streamPos]) => {
          ctx.notifier.recordChange("device_lists", [userId], streamPos!);
          await storage.transaction(async (tx) => {
            await tx.keys.putDeviceKeys(userId, deviceId, deviceKeys, streamPos!);
            if (oneTime.length > 0) await tx.keys.addOneTimeKeys(oneTime);
            for (const key of byAlgorithm.values()) await tx.keys.setFallbackKey(key);
          });
          return streamPos!;
        });
        ctx.notifier.oneTimeKeysChanged(userId, deviceId);
        await notifyDeviceListChange(ctx, userId, pos);
        await ctx.remoteEdus?.deviceListChanged(userId, deviceId, { deleted: false, keys: deviceKeys });
      } else if (oneTime.length > 0 || fallback.length > 0) {
        await storage.transaction(async (tx) => {
          if (oneTime.length > 0) await tx.keys.addOneTimeKeys(oneTime);
          for (const key of byAlgorithm.values()) await tx.keys.setFallbackKey(key);
        });
        ctx.notifier.oneTimeKeysChanged(userId, deviceId);
      }
      return { one_time_key_counts: await counts(userId, deviceId) };
    },

    async query(_requester, wanted) {
      const deviceKeys: Record<string, Record<string, JsonObject>> = {};
      const failures: Record<string, JsonObject> = {};
      const local = [...wanted.keys()].filter((userId) => serverNameOf(userId) === ctx.serverName);
      for (const userId of wanted.keys()) {
        const server = serverNameOf(userId);
        if (server !== undefined && server !== ctx.serverName) failures[server] = { errcode: Errcode.UNKNOWN, error: "Federated key queries are not supported yet" };
      }
      const stored = await storage.keys.getDeviceKeys(local);
      const names = new Map<string, Map<string, string | null>>();
      for (const userId of local) {
        deviceKeys[userId] = {};
        names.set(userId, new Map((await storage.accounts.listDevices(userId)).map((d) => [d.deviceId, d.displayName])));
      }
      for (const { userId, deviceId, keys } of stored) {
        const only = wanted.get(userId) ?? [];
        if (only.length > 0 && !only.includes(deviceId)) continue;
        const displayName = names.get(userId)?.get(deviceId);
        // A device that has been deleted keeps no keys; skip leftovers.
        if (displayName === undefined) continue;
        const unsigned = isJsonObject(keys.unsigned) ? keys.unsigned : {};
        deviceKeys[userId]![deviceId] = { ...keys, unsigned: { ...unsigned, ...(displayName !== null ? { device_display_name: displayName } : {}) } };
      }
      return { device_keys: deviceKeys, failures };
    },

    async claim(wanted) {
      const oneTimeKeys: Record<string, Record<string, Record<string, JsonValue>>> = {};
      const failures: Record<string, JsonObject> = {};
      for (const [userId, devices] of wanted) {
        const server = serverNameOf(userId);
        if (server !== ctx.serverName) {
          if (server !== undefined) failures[server] = { errcode: Errcode.UNKNOWN, error: "Federated key claims are not supported yet" };
          continue;
        }
        for (const [deviceId, algorithm] of devices) {
          const key = await storage.transaction((tx) => tx.keys.claimKey(userId, deviceId, algorithm));
          ctx.notifier.oneTimeKeysChanged(userId, deviceId);
          if (!key) continue;
          ((oneTimeKeys[userId] ??= {})[deviceId] ??= {})[key.keyId] = key.key;
        }
      }
      return { one_time_keys: oneTimeKeys, failures };
    },

    async changes(requester, fromPos, toPos) {
      const users = await usersSharingRoomsWith(storage, requester.userId);
      const changed = await storage.keys.getDeviceListChanges([...users], fromPos, toPos);
      return { changed, left: [] };
    },
  };
}
