// `POST /v3/keys/upload`, `POST /v3/keys/query`, `POST /v3/keys/claim`, `GET /v3/keys/changes`.
import type { Router } from "../../../app/http/router.js";
import { Errcode, MatrixError } from "../../../core/errors.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../../../core/json.js";
import type { TokenAuthenticator } from "../../http.js";
import { bodyOf, optionalObject, queryString, requesterOf, requireAuth } from "../../http.js";
import type { Keys } from "../keys.js";

/** The stream position of a sync token: `s<pos>` optionally followed by `_<more>`. */
export function streamPosOfSyncToken(token: string, name: string): number {
  const match = /^s([0-9]{1,15})(?:_.*)?$/.exec(token);
  if (!match) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${name} is not a sync token`);
  return Number(match[1]);
}

function objectOfObjects(body: JsonObject, key: string): Map<string, JsonObject> {
  const outer = optionalObject(body, key) ?? {};
  const result = new Map<string, JsonObject>();
  for (const [name, value] of Object.entries(outer)) {
    if (!isJsonObject(value)) throw new MatrixError(Errcode.BAD_JSON, 400, `${key}.${name} must be an object`);
    result.set(name, value);
  }
  return result;
}

/** Longest wait for other servers a client may ask for. */
const MAX_REMOTE_TIMEOUT_MS = 60_000;

/** The request's `timeout` (milliseconds to wait for other servers), if any, capped at a minute. */
function remoteTimeoutOf(body: JsonObject): number | undefined {
  const timeout = body.timeout;
  if (timeout === undefined) return undefined;
  if (typeof timeout !== "number" || !Number.isSafeInteger(timeout) || timeout < 0) throw new MatrixError(Errcode.BAD_JSON, 400, "timeout must be a non-negative integer");
  return Math.min(timeout, MAX_REMOTE_TIMEOUT_MS);
}

export function mountKeysRoutes(router: Router, keys: Keys, authenticator: TokenAuthenticator): void {
  const auth = requireAuth(authenticator);

  // POST /v3/keys/upload
  router.post("/v3/keys/upload", auth, async (req, res) => {
    const body = bodyOf(req);
    const deviceKeys = optionalObject(body, "device_keys");
    const oneTimeKeys: Record<string, JsonValue> = optionalObject(body, "one_time_keys") ?? {};
    const fallbackKeys: Record<string, JsonValue> = optionalObject(body, "fallback_keys") ?? {};
    res.json(await keys.upload(requesterOf(res), { ...(deviceKeys ? { deviceKeys } : {}), oneTimeKeys, fallbackKeys }));
  });

  // POST /v3/keys/query
  router.post("/v3/keys/query", auth, async (req, res) => {
    const body = bodyOf(req);
    const wanted = new Map<string, string[]>();
    for (const [userId, devices] of Object.entries(optionalObject(body, "device_keys") ?? {})) {
      if (!Array.isArray(devices) || !devices.every((d): d is string => typeof d === "string")) {
        throw new MatrixError(Errcode.BAD_JSON, 400, "device_keys must map user IDs to arrays of device IDs");
      }
      wanted.set(userId, devices);
    }
    res.json(await keys.query(requesterOf(res), wanted, remoteTimeoutOf(body)));
  });

  // POST /v3/keys/claim
  router.post("/v3/keys/claim", auth, async (req, res) => {
    const body = bodyOf(req);
    const wanted = new Map<string, Map<string, string>>();
    for (const [userId, devices] of objectOfObjects(body, "one_time_keys")) {
      const perDevice = new Map<string, string>();
      for (const [deviceId, algorithm] of Object.entries(devices)) {
        if (typeof algorithm !== "string") throw new MatrixError(Errcode.BAD_JSON, 400, "one_time_keys must map devices to algorithm names");
        perDevice.set(deviceId, algorithm);
      }
      wanted.set(userId, perDevice);
    }
    res.json(await keys.claim(wanted, remoteTimeoutOf(body)));
  });

  // GET /v3/keys/changes
  router.get("/v3/keys/changes", auth, async (req, res) => {
    const from = queryString(req, "from");
    const to = queryString(req, "to");
    if (from === undefined || to === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, "Missing parameter: from and to are required");
    res.json(await keys.changes(requesterOf(res), streamPosOfSyncToken(from, "from"), streamPosOfSyncToken(to, "to")));
  });
}
