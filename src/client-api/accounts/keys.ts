// End-to-end key distribution (Client-Server API "End-to-End Encryption": `/keys/upload`,
// `/keys/query`, `/keys/claim`, `/keys/changes`). Generic over algorithms. Keys of users on other
// servers are asked of their servers (RemoteKeys): one request per server, all at once, none
// waiting longer than the client's `timeout`; a server without an answer is named in `failures`.
import { Errcode, MatrixError } from "../../core/errors.js";
import { serverNameOf } from "../../core/identifiers.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../../core/json.js";
import type { OneTimeKeyRow } from "../../storage/ports.js";
import type { ClientApiContext, RemoteKeys } from "../contracts.js";
import type { Requester } from "../http.js";
import { notifyDeviceListChange, usersSharingRoomsWith } from "./device-lists.js";
import { decodeBase64 } from "../../core/base64.js";
import { createMlsLoader, type MlsLoader } from "../../mls-overlay/ts-mls-adapter.js";
import { checkDeviceObject, checkKeyPackage } from "../../mls-overlay/validate.js";
import { CREDENTIAL_ALGORITHM, KEY_PACKAGE_ALGORITHM } from "../../core/mls-wire.js";

export interface KeysUpload {
  deviceKeys?: JsonObject;
  oneTimeKeys: Record<string, JsonValue>;
  fallbackKeys: Record<string, JsonValue>;
}

/** user -> device -> device keys */
export type DeviceKeysByUser = Record<string, Record<string, JsonObject>>;
/** user -> device -> `<algorithm>:<key id>` -> key */
export type ClaimedKeysByUser = Record<string, Record<string, Record<string, JsonValue>>>;

/** Client-Server API "POST /keys/query", "POST /keys/claim": how long to wait for other servers unless the client says. */
export const DEFAULT_REMOTE_KEYS_TIMEOUT_MS = 10_000;

export interface Keys {
  upload(requester: Requester, upload: KeysUpload): Promise<{ one_time_key_counts: Record<string, number> }>;
  query(requester: Requester, wanted: Map<string, string[]>, timeoutMs?: number): Promise<{ device_keys: DeviceKeysByUser; failures: Record<string, JsonObject> }>;
  claim(wanted: Map<string, Map<string, string>>, timeoutMs?: number): Promise<{ one_time_keys: ClaimedKeysByUser; failures: Record<string, JsonObject> }>;
  changes(requester: Requester, fromPos: number, toPos: number): Promise<{ changed: string[]; left: string[] }>;
  /** Device keys of this server's users only; other users are skipped (what federation serves). */
  queryLocal(wanted: Map<string, string[]>): Promise<DeviceKeysByUser>;
  /** Claims keys of this server's users only, each one-time key at most once (what federation serves). */
  claimLocal(wanted: Map<string, Map<string, string>>): Promise<ClaimedKeysByUser>;
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

/**
 * MLS device objects and KeyPackages (MLS wire contract sections 2 and 3): a device object with a
 * credential key must name the uploader and be signed by the credential's key; every KeyPackage
 * must verify (identity, ciphersuite, signatures, lifetime, key version = KeyPackageRef). Any bad
 * one refuses the whole upload (400 M_INVALID_PARAM naming it). Sets each package row's expiry;
 * ts-mls is loaded only when a KeyPackage is uploaded.
 */
async function checkMlsUpload(loader: MlsLoader, stored: () => Promise<JsonObject | undefined>, requester: Requester, deviceKeys: JsonObject | undefined, rows: OneTimeKeyRow[], nowMs: number): Promise<void> {
  const expected = { userId: requester.userId, deviceId: requester.deviceId };
  let credential: Uint8Array | undefined;
  if (deviceKeys) {
    const checked = checkDeviceObject(deviceKeys, expected);
    if (!checked.ok) throw new MatrixError(Errcode.INVALID_PARAM, 400, `device_keys: ${checked.reason}`);
    credential = checked.credential;
  }
  const packages = rows.filter((row) => row.algorithm === KEY_PACKAGE_ALGORITHM);
  if (packages.length === 0) return;
  if (!credential && !deviceKeys) {
    // The device object published earlier, if any: its credential must be the packages' too.
    const published = await stored();
    const keys = published?.keys;
    const encoded = isJsonObject(keys) ? keys[`${CREDENTIAL_ALGORITHM}:${requester.deviceId}`] : undefined;
    credential = typeof encoded === "string" ? decodeBase64(encoded) : undefined;
  }
  const mls = await loader.load();
  for (const row of packages) {
    const keyVersion = row.keyId.slice(KEY_PACKAGE_ALGORITHM.length + 1);
    const checked = await checkKeyPackage(mls, row.key, { ...expected, keyVersion, nowMs, ...(credential ? { deviceCredential: credential } : {}) });
    if (!checked.ok) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${row.keyId}: ${checked.reason}`);
    row.expiresTs = checked.expiresTs;
  }
}

/** Users of other servers, grouped by server (user IDs that name no server are skipped). */
function remoteUsersByServer<T>(wanted: Map<string, T>, ownServer: string): Map<string, Record<string, T>> {
  const byServer = new Map<string, Record<string, T>>();
  for (const [userId, value] of wanted) {
    const server = serverNameOf(userId);
    if (server === undefined || server === ownServer) continue;
    let users = byServer.get(server);
    if (!users) byServer.set(server, (users = {}));
    users[userId] = value;
  }
  return byServer;
}

function failureOf(error: unknown): JsonObject {
  if (error instanceof MatrixError) return { errcode: error.errcode, error: error.message };
  return { errcode: Errcode.UNKNOWN, error: error instanceof Error ? error.message : String(error) };
}

/**
 * Asks every server at once and waits at most `timeoutMs` for each; the answers come back in a
 * list, and every server that failed or did not answer in time is a `failures` entry.
 */
async function askServers<Asked, Answer>(
  servers: Map<string, Asked>,
  ask: (server: string, asked: Asked) => Promise<Answer>,
  timeoutMs: number,
): Promise<{ answers: Answer[]; failures: Record<string, JsonObject> }> {
  const answers: Answer[] = [];
  const failures: Record<string, JsonObject> = {};
  await Promise.all(
    [...servers].map(async ([server, asked]) => {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new MatrixError(Errcode.UNKNOWN, 504, `${server} did not answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        answers.push(await Promise.race([ask(server, asked), timedOut]));
      } catch (error) {
        failures[server] = failureOf(error);
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { answers, failures };
}

/** Without federation every other server is a failure. */
const NO_FEDERATION: RemoteKeys = {
  query: (server) => Promise.reject(new MatrixError(Errcode.UNKNOWN, 501, `This server does not federate; cannot ask ${server}`)),
  claim: (server) => Promise.reject(new MatrixError(Errcode.UNKNOWN, 501, `This server does not federate; cannot ask ${server}`)),
};

export function createKeys(ctx: ClientApiContext, remoteKeys: RemoteKeys = NO_FEDERATION): Keys {
  const { storage } = ctx;
  // ts-mls is imported on the first KeyPackage upload, not before (idle memory).
  const mlsLoader = createMlsLoader();

  async function queryLocal(wanted: Map<string, string[]>): Promise<DeviceKeysByUser> {
    const deviceKeys: DeviceKeysByUser = {};
    const local = [...wanted.keys()].filter((userId) => serverNameOf(userId) === ctx.serverName);
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
    return deviceKeys;
  }

  async function claimLocal(wanted: Map<string, Map<string, string>>): Promise<ClaimedKeysByUser> {
    const oneTimeKeys: ClaimedKeysByUser = {};
    for (const [userId, devices] of wanted) {
      if (serverNameOf(userId) !== ctx.serverName) continue;
      for (const [deviceId, algorithm] of devices) {
        // Expired keys (an MLS KeyPackage past its lifetime) are never handed out.
        const key = await storage.transaction((tx) => tx.keys.claimKey(userId, deviceId, algorithm, ctx.now()));
        ctx.notifier.oneTimeKeysChanged(userId, deviceId);
        if (!key) continue;
        ((oneTimeKeys[userId] ??= {})[deviceId] ??= {})[key.keyId] = key.key;
      }
    }
    return oneTimeKeys;
  }

  async function counts(userId: string, deviceId: string): Promise<Record<string, number>> {
    // Clients expect a count for signed_curve25519 even when none are left.
    return { signed_curve25519: 0, ...(await storage.keys.countOneTimeKeys(userId, deviceId)) };
  }

  return {
    async upload(requester, { deviceKeys, oneTimeKeys, fallbackKeys }) {
      const { userId, deviceId } = requester;
      // An application service acting as a user without `device_id` has no device to hold keys.
      if (deviceId === "") throw new MatrixError(Errcode.MISSING_PARAM, 400, "Keys belong to a device: an application service must name it with device_id");
      if (deviceKeys) checkDeviceKeys(deviceKeys, requester);
      const rows = (keys: Record<string, JsonValue>, fallback: boolean): OneTimeKeyRow[] =>
        Object.entries(keys).map(([keyId, key]) => ({ userId, deviceId, keyId, algorithm: splitKeyId(keyId).algorithm, key, fallback }));
      const oneTime = rows(oneTimeKeys, false);
      const fallback = rows(fallbackKeys, true);
      const byAlgorithm = new Map(fallback.map((k) => [k.algorithm, k]));
      if (byAlgorithm.size !== fallback.length) throw new MatrixError(Errcode.BAD_JSON, 400, "At most one fallback key per algorithm");
      const storedDeviceKeys = async (): Promise<JsonObject | undefined> => (await storage.keys.getDeviceKeys([userId])).find((d) => d.deviceId === deviceId)?.keys;
      await checkMlsUpload(mlsLoader, storedDeviceKeys, requester, deviceKeys, [...oneTime, ...fallback], ctx.now());

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

    async query(_requester, wanted, timeoutMs = DEFAULT_REMOTE_KEYS_TIMEOUT_MS) {
      const remote = remoteUsersByServer(wanted, ctx.serverName);
      const [local, { answers, failures }] = await Promise.all([
        queryLocal(wanted),
        askServers(remote, (server, users) => remoteKeys.query(server, users, timeoutMs), timeoutMs),
      ]);
      for (const answer of answers) Object.assign(local, answer);
      return { device_keys: local, failures };
    },

    async claim(wanted, timeoutMs = DEFAULT_REMOTE_KEYS_TIMEOUT_MS) {
      const perUser = new Map([...wanted].map(([userId, devices]) => [userId, Object.fromEntries(devices)]));
      const remote = remoteUsersByServer(perUser, ctx.serverName);
      const [local, { answers, failures }] = await Promise.all([
        claimLocal(wanted),
        askServers(remote, (server, users) => remoteKeys.claim(server, users, timeoutMs), timeoutMs),
      ]);
      for (const answer of answers) Object.assign(local, answer);
      return { one_time_keys: local, failures };
    },

    queryLocal,
    claimLocal,

    async changes(requester, fromPos, toPos) {
      const users = await usersSharingRoomsWith(storage, requester.userId);
      const changed = await storage.keys.getDeviceListChanges([...users], fromPos, toPos);
      return { changed, left: [] };
    },
  };
}
