// POST /_matrix/federation/v1/user/keys/query
import type { RequestHandler, Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { isJsonObject } from "../../core/json.js";
import { requireLocalUser, type UserKeyRoutesDeps } from "./user-keys.js";

/** `device_keys`: user ID -> device IDs; every user must be of this server (Server-Server API "End-to-End Encryption"). */
function wantedOf(body: unknown, serverName: string): Map<string, string[]> {
  const deviceKeys = isJsonObject(body) ? body.device_keys : undefined;
  if (!isJsonObject(deviceKeys)) throw new MatrixError(Errcode.BAD_JSON, 400, "device_keys must be an object");
  const wanted = new Map<string, string[]>();
  for (const [userId, devices] of Object.entries(deviceKeys)) {
    if (!Array.isArray(devices) || !devices.every((d): d is string => typeof d === "string")) {
      throw new MatrixError(Errcode.BAD_JSON, 400, "device_keys must map user IDs to arrays of device IDs");
    }
    requireLocalUser(userId, serverName);
    wanted.set(userId, devices);
  }
  return wanted;
}

export function mountUserKeysQueryRoute(api: Router, auth: RequestHandler, deps: UserKeyRoutesDeps): void {
  api.post("/v1/user/keys/query", auth, async (req, res) => {
    res.json({ device_keys: await deps.keys.queryLocal(wantedOf(req.body, deps.serverName)) });
  });
}
