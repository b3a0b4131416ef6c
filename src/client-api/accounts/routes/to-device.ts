// `PUT /v3/sendToDevice/{eventType}/{txnId}`.
import type { Response, Router } from "../../../app/http/router.js";
import type { Logger } from "pino";
import { Errcode, MatrixError } from "../../../core/errors.js";
import { isJsonObject, type JsonObject } from "../../../core/json.js";
import type { TokenAuthenticator } from "../../http.js";
import { bodyOf, paramOf, requesterOf, requireAuth } from "../../http.js";
import type { ToDevice } from "../to-device.js";

function logOf(res: Response, fallback: Logger): Logger {
  return (res.locals.log as Logger | undefined) ?? fallback;
}

export function mountToDeviceRoutes(router: Router, toDevice: ToDevice, authenticator: TokenAuthenticator, logger: Logger): void {
  // PUT /v3/sendToDevice/{eventType}/{txnId}
  router.put("/v3/sendToDevice/:eventType/:txnId", requireAuth(authenticator), async (req, res) => {
    const body = bodyOf(req);
    const raw = body.messages;
    if (raw === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, "Missing parameter: messages");
    if (!isJsonObject(raw)) throw new MatrixError(Errcode.BAD_JSON, 400, "messages must be an object");
    const messages = new Map<string, Map<string, JsonObject>>();
    for (const [userId, devices] of Object.entries(raw)) {
      if (!isJsonObject(devices)) throw new MatrixError(Errcode.BAD_JSON, 400, "messages must map user IDs to objects");
      const perDevice = new Map<string, JsonObject>();
      for (const [deviceId, content] of Object.entries(devices)) {
        if (!isJsonObject(content)) throw new MatrixError(Errcode.BAD_JSON, 400, "Message content must be an object");
        perDevice.set(deviceId, content);
      }
      messages.set(userId, perDevice);
    }
    const requester = requesterOf(res);
    await toDevice.send(requester, paramOf(req, "eventType"), paramOf(req, "txnId"), messages, logOf(res, logger).child({ txn_id: paramOf(req, "txnId") }));
    res.json({});
  });
}
