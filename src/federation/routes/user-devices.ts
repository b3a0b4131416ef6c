// GET /_matrix/federation/v1/user/devices/{userId}
import type { RequestHandler, Router } from "../../app/http/router.js";
import { isJsonObject, type JsonObject } from "../../core/json.js";
import { requireLocalUser, type UserKeyRoutesDeps } from "./user-keys.js";

/** A device as the devices answer lists it: keys as uploaded, the display name beside them. */
function deviceOf(deviceId: string, stored: JsonObject): JsonObject {
  const { unsigned, ...keys } = stored;
  const displayName = isJsonObject(unsigned) ? unsigned.device_display_name : undefined;
  return { device_id: deviceId, keys, ...(typeof displayName === "string" ? { device_display_name: displayName } : {}) };
}

export function mountUserDevicesRoute(api: Router, auth: RequestHandler, deps: UserKeyRoutesDeps): void {
  api.get("/v1/user/devices/:userId", auth, async (req, res) => {
    const userId = req.params.userId as string;
    requireLocalUser(userId, deps.serverName);
    const devices = (await deps.keys.queryLocal(new Map([[userId, []]])))[userId] ?? {};
    // `stream_id` versions the list against our m.device_list_update EDUs, whose stream_ids
    // come from the same clock (federation/edus-out.ts): an update sent later has a larger one.
    // Devices without keys are left out: the spec requires `keys` on every entry.
    res.json({ user_id: userId, stream_id: deps.now(), devices: Object.entries(devices).map(([deviceId, keys]) => deviceOf(deviceId, keys)) });
  });
}
