// `GET /v3/devices`, `GET/PUT/DELETE /v3/devices/{deviceId}`, `POST /v3/delete_devices`.
import type { Router } from "../../../app/http/router.js";
import { Errcode, MatrixError } from "../../../core/errors.js";
import type { TokenAuthenticator } from "../../http.js";
import { bodyOf, optionalString, paramOf, requesterOf, requireAuth } from "../../http.js";
import type { Devices } from "../devices.js";
import { authDictOf } from "../uia.js";
import { forbidGuest } from "./guards.js";

const MAX_DEVICE_NAME_LENGTH = 256;

export function mountDeviceRoutes(router: Router, devices: Devices, authenticator: TokenAuthenticator): void {
  const auth = requireAuth(authenticator);

  // GET /v3/devices
  router.get("/v3/devices", auth, async (_req, res) => {
    res.json({ devices: await devices.list(requesterOf(res).userId) });
  });

  // GET /v3/devices/{deviceId}
  router.get("/v3/devices/:deviceId", auth, async (req, res) => {
    res.json(await devices.get(requesterOf(res).userId, paramOf(req, "deviceId")));
  });

  // PUT /v3/devices/{deviceId}
  router.put("/v3/devices/:deviceId", auth, async (req, res) => {
    const displayName = optionalString(bodyOf(req), "display_name") ?? null;
    if (displayName !== null && displayName.length > MAX_DEVICE_NAME_LENGTH) throw new MatrixError(Errcode.INVALID_PARAM, 400, "display_name is too long");
    await devices.rename(requesterOf(res).userId, paramOf(req, "deviceId"), displayName);
    res.json({});
  });

  // DELETE /v3/devices/{deviceId}
  router.delete("/v3/devices/:deviceId", auth, async (req, res) => {
    const requester = requesterOf(res);
    forbidGuest(requester);
    // DELETE may come without a body; UIA then answers 401 with the flows.
    const body = req.body === undefined ? {} : bodyOf(req);
    const deviceId = paramOf(req, "deviceId");
    await devices.get(requester.userId, deviceId);
    await devices.delete(requester, [deviceId], authDictOf(body));
    res.json({});
  });

  // POST /v3/delete_devices
  router.post("/v3/delete_devices", auth, async (req, res) => {
    const requester = requesterOf(res);
    forbidGuest(requester);
    const body = bodyOf(req);
    const ids = body.devices;
    if (ids === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, "Missing parameter: devices");
    if (!Array.isArray(ids) || !ids.every((id): id is string => typeof id === "string")) {
      throw new MatrixError(Errcode.INVALID_PARAM, 400, "devices must be an array of device IDs");
    }
    await devices.delete(requester, ids, authDictOf(body));
    res.json({});
  });
}
