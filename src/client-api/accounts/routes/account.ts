// `GET /v3/account/whoami`, `POST /v3/account/password`, `POST /v3/account/deactivate`.
import type { Router } from "../../../app/http/router.js";
import type { TokenAuthenticator } from "../../http.js";
import { bodyOf, optionalBoolean, requesterOf, requireAuth, requireString } from "../../http.js";
import type { Sessions } from "../sessions.js";
import { authDictOf } from "../uia.js";

export function mountAccountRoutes(router: Router, sessions: Sessions, authenticator: TokenAuthenticator): void {
  const auth = requireAuth(authenticator);

  // GET /v3/account/whoami
  router.get("/v3/account/whoami", auth, (_req, res) => {
    const requester = requesterOf(res);
    // An application service acting without `device_id` has no device: the field is then left out.
    res.json({ user_id: requester.userId, ...(requester.deviceId !== "" ? { device_id: requester.deviceId } : {}), is_guest: requester.isGuest });
  });

  // POST /v3/account/password
  router.post("/v3/account/password", auth, async (req, res) => {
    const body = bodyOf(req);
    const newPassword = requireString(body, "new_password");
    const logoutDevices = optionalBoolean(body, "logout_devices") ?? true;
    await sessions.changePassword(requesterOf(res), newPassword, logoutDevices, authDictOf(body));
    res.json({});
  });

  // POST /v3/account/deactivate
  router.post("/v3/account/deactivate", auth, async (req, res) => {
    const body = bodyOf(req);
    await sessions.deactivate(requesterOf(res), authDictOf(body));
    // No identity server is involved in this server's accounts.
    res.json({ id_server_unbind_result: "no-support" });
  });
}
