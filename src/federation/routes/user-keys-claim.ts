// POST /_matrix/federation/v1/user/keys/claim
import type { RequestHandler, Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { isJsonObject } from "../../core/json.js";
import { isValidUserId } from "../../core/identifiers.js";
import type { UserKeyRoutesDeps } from "./user-keys.js";

/**
 * `one_time_keys`: user ID -> device ID -> algorithm. Users of other servers are ignored, not
 * refused, like unknown users and devices (LM draft "One Time Key Claiming"); the keys service
 * claims for this server's users only.
 */
function wantedOf(body: unknown): Map<string, Map<string, string>> {
  const oneTimeKeys = isJsonObject(body) ? body.one_time_keys : undefined;
  if (!isJsonObject(oneTimeKeys)) throw new MatrixError(Errcode.BAD_JSON, 400, "one_time_keys must be an object");
  const wanted = new Map<string, Map<string, string>>();
  for (const [userId, devices] of Object.entries(oneTimeKeys)) {
    if (!isJsonObject(devices)) throw new MatrixError(Errcode.BAD_JSON, 400, "one_time_keys must map user IDs to objects");
    const perDevice = new Map<string, string>();
    for (const [deviceId, algorithm] of Object.entries(devices)) {
      if (typeof algorithm !== "string") throw new MatrixError(Errcode.BAD_JSON, 400, "one_time_keys must map device IDs to algorithm names");
      perDevice.set(deviceId, algorithm);
    }
    if (!isValidUserId(userId)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${userId} is not a user ID`);
    wanted.set(userId, perDevice);
  }
  return wanted;
}

export function mountUserKeysClaimRoute(api: Router, auth: RequestHandler, deps: UserKeyRoutesDeps): void {
  api.post("/v1/user/keys/claim", auth, async (req, res) => {
    res.json({ one_time_keys: await deps.keys.claimLocal(wantedOf(req.body)) });
  });
}
