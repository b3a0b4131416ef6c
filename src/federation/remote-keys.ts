// Asking other servers for their users' end-to-end keys (Server-Server API "End-to-End
// Encryption": `POST /user/keys/query`, `POST /user/keys/claim`; LM draft "One Time Key
// Claiming"). The request goes straight to the users' own server, never through a hub. An answer
// is trusted only for what was asked: users and devices nobody asked about are dropped, and device
// keys must name the user and device they are listed under. Clients verify the Olm-style signatures
// themselves; an MLS device object (LM "Device Credentials") whose credential names another device
// or whose signature fails is dropped here, as it is on upload and in device-list updates.
import type { RemoteKeys } from "../client-api/contracts.js";
import { Errcode, MatrixError } from "../core/errors.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../core/json.js";
import { checkDeviceObject } from "../mls-overlay/validate.js";
import type { FederationClient } from "./transport/client.js";
import { FederationRequestError } from "./transport/errors.js";

export const USER_KEYS_QUERY_PATH = "/_matrix/federation/v1/user/keys/query";
export const USER_KEYS_CLAIM_PATH = "/_matrix/federation/v1/user/keys/claim";

/** POSTs `body` to `server`; anything but a 200 JSON object is a MatrixError the caller reports as a failure. */
async function post(client: FederationClient, server: string, path: string, body: JsonObject, timeoutMs: number): Promise<JsonObject> {
  let response;
  try {
    response = await client.request(server, "POST", path, { body, timeoutMs });
  } catch (error) {
    if (error instanceof FederationRequestError) throw new MatrixError(Errcode.UNKNOWN, 502, `${server} is unreachable (${error.failure}: ${error.message})`);
    throw error;
  }
  if (response.status !== 200 || !isJsonObject(response.json)) {
    const theirs = isJsonObject(response.json) && typeof response.json.errcode === "string" ? ` ${response.json.errcode}` : "";
    throw new MatrixError(Errcode.UNKNOWN, 502, `${server} answered ${response.status}${theirs}`);
  }
  return response.json;
}

/** The answer's `field` object, or a MatrixError when it is missing (the spec requires it). */
function requiredObject(answer: JsonObject, field: string, server: string): JsonObject {
  const value = answer[field];
  if (!isJsonObject(value)) throw new MatrixError(Errcode.UNKNOWN, 502, `${server} answered without a ${field} object`);
  return value;
}

/** Device keys of the asked users whose `user_id` and `device_id` match where they are listed. */
function askedDeviceKeys(answered: JsonObject, asked: Record<string, string[]>): Record<string, Record<string, JsonObject>> {
  const result: Record<string, Record<string, JsonObject>> = {};
  for (const [userId, devices] of Object.entries(asked)) {
    const perDevice = answered[userId];
    if (!isJsonObject(perDevice)) continue;
    const kept: Record<string, JsonObject> = {};
    for (const [deviceId, keys] of Object.entries(perDevice)) {
      if (devices.length > 0 && !devices.includes(deviceId)) continue;
      if (!isJsonObject(keys) || keys.user_id !== userId || keys.device_id !== deviceId) continue;
      if (!checkDeviceObject(keys, { userId, deviceId }).ok) continue;
      kept[deviceId] = keys;
    }
    result[userId] = kept;
  }
  return result;
}

/** Claimed keys of the asked devices, only of the asked algorithm (`<algorithm>:<key id>`). */
function askedClaims(answered: JsonObject, asked: Record<string, Record<string, string>>): Record<string, Record<string, Record<string, JsonValue>>> {
  const result: Record<string, Record<string, Record<string, JsonValue>>> = {};
  for (const [userId, devices] of Object.entries(asked)) {
    const perDevice = answered[userId];
    if (!isJsonObject(perDevice)) continue;
    for (const [deviceId, algorithm] of Object.entries(devices)) {
      const keys = perDevice[deviceId];
      if (!isJsonObject(keys)) continue;
      for (const [keyId, key] of Object.entries(keys)) {
        if (!keyId.startsWith(`${algorithm}:`)) continue;
        ((result[userId] ??= {})[deviceId] ??= {})[keyId] = key;
      }
    }
  }
  return result;
}

export function createRemoteKeys(client: FederationClient): RemoteKeys {
  return {
    async query(server, deviceKeys, timeoutMs) {
      const answer = await post(client, server, USER_KEYS_QUERY_PATH, { device_keys: deviceKeys }, timeoutMs);
      return askedDeviceKeys(requiredObject(answer, "device_keys", server), deviceKeys);
    },

    async claim(server, oneTimeKeys, timeoutMs) {
      const answer = await post(client, server, USER_KEYS_CLAIM_PATH, { one_time_keys: oneTimeKeys }, timeoutMs);
      return askedClaims(requiredObject(answer, "one_time_keys", server), oneTimeKeys);
    },
  };
}
