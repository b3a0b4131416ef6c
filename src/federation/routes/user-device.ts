// GET /_matrix/federation/v1/user/{userId}/device/{deviceId} and its LM unstable path (LM draft
// "Device Info Publishing"; MLS wire contract section 2): one device's object as it uploaded it
// (the MLS credential and its signature), for another server's members to check credentials.
import type { RequestHandler, Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { isValidUserId, serverNameOf } from "../../core/identifiers.js";
import { lmPaths } from "../paths.js";
import type { UserKeyRoutesDeps } from "./user-keys.js";

export function mountUserDeviceRoute(api: Router, auth: RequestHandler, deps: UserKeyRoutesDeps): void {
  api.get(lmPaths("/user/:userId/device/:deviceId", "/v1/user/:userId/device/:deviceId"), auth, async (req, res) => {
    const userId = req.params.userId as string;
    const deviceId = req.params.deviceId as string;
    // A user of another server, or one unknown here, has no device here either.
    if (!isValidUserId(userId) || serverNameOf(userId) !== deps.serverName) throw new MatrixError(Errcode.NOT_FOUND, 404, `${userId} is not a user of ${deps.serverName}`);
    const device = (await deps.keys.queryLocal(new Map([[userId, [deviceId]]])))[userId]?.[deviceId];
    if (!device) throw new MatrixError(Errcode.NOT_FOUND, 404, `${userId} has no device ${deviceId} with published keys`);
    res.json(device);
  });
}
