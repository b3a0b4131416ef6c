// `GET/POST /v3/login`, `POST /v3/register`, `GET /v3/register/available`, `POST /v3/logout[/all]`.
import type { Router } from "../../../app/http/router.js";
import { isValidDeviceId } from "../../../core/identifiers.js";
import { Errcode, MatrixError } from "../../../core/errors.js";
import type { JsonObject } from "../../../core/json.js";
import type { TokenAuthenticator } from "../../http.js";
import { accessTokenOf, bodyOf, optionalBoolean, optionalString, queryString, requesterOf, requireAuth, requireString } from "../../http.js";
import { identifiedUser, type Sessions } from "../sessions.js";
import { authDictOf } from "../uia.js";

/** A client-chosen device ID: it doubles as a key version, so it follows that grammar. */
function optionalDeviceId(body: JsonObject): string | undefined {
  const deviceId = optionalString(body, "device_id");
  if (deviceId !== undefined && (!isValidDeviceId(deviceId) || deviceId.length > 255)) {
    throw new MatrixError(Errcode.INVALID_PARAM, 400, "device_id may only contain A-Z, a-z, 0-9 and _");
  }
  return deviceId;
}

export function mountLoginRoutes(router: Router, sessions: Sessions, authenticator: TokenAuthenticator): void {
  const auth = requireAuth(authenticator);

  // GET /v3/login
  router.get("/v3/login", (_req, res) => {
    res.json({ flows: [{ type: "m.login.password" }, { type: "m.login.application_service" }] });
  });

  // POST /v3/login
  router.post("/v3/login", async (req, res) => {
    const body = bodyOf(req);
    const type = requireString(body, "type");
    if (type === "m.login.application_service") {
      const named = identifiedUser(body);
      if (named === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, "Missing parameter: identifier");
      const asDeviceId = optionalDeviceId(body);
      const asDisplayName = optionalString(body, "initial_device_display_name");
      res.json(
        await sessions.loginAppservice({
          user: named,
          accessToken: accessTokenOf(req),
          ...(asDeviceId !== undefined ? { deviceId: asDeviceId } : {}),
          ...(asDisplayName !== undefined ? { initialDeviceDisplayName: asDisplayName } : {}),
        }),
      );
      return;
    }
    if (type !== "m.login.password") throw new MatrixError(Errcode.UNKNOWN, 400, `Unknown login type ${type}`);
    const user = identifiedUser(body);
    if (user === undefined) {
      throw body.identifier !== undefined
        ? new MatrixError(Errcode.UNKNOWN, 400, "Unsupported login identifier: only m.id.user is supported")
        : new MatrixError(Errcode.MISSING_PARAM, 400, "Missing parameter: identifier");
    }
    const password = requireString(body, "password");
    const deviceId = optionalDeviceId(body);
    const displayName = optionalString(body, "initial_device_display_name");
    res.json(
      await sessions.login(
        { user, password, ...(deviceId !== undefined ? { deviceId } : {}), ...(displayName !== undefined ? { initialDeviceDisplayName: displayName } : {}) },
        req.ip ?? "",
      ),
    );
  });

  // POST /v3/register
  router.post("/v3/register", async (req, res) => {
    const kind = queryString(req, "kind") ?? "user";
    if (kind !== "user" && kind !== "guest") throw new MatrixError(Errcode.INVALID_PARAM, 400, "kind must be user or guest");
    const body = bodyOf(req);
    const username = optionalString(body, "username");
    const password = optionalString(body, "password");
    const deviceId = kind === "user" ? optionalDeviceId(body) : undefined;
    const displayName = optionalString(body, "initial_device_display_name");
    const inhibitLogin = kind === "user" ? (optionalBoolean(body, "inhibit_login") ?? false) : false;
    optionalBoolean(body, "refresh_token");
    const response = await sessions.register(
      {
        kind,
        ...(username !== undefined ? { username } : {}),
        ...(password !== undefined ? { password } : {}),
        ...(deviceId !== undefined ? { deviceId } : {}),
        ...(displayName !== undefined ? { initialDeviceDisplayName: displayName } : {}),
        inhibitLogin,
        auth: authDictOf(body),
        ...(typeof body.type === "string" ? { type: body.type } : {}),
        ...(accessTokenOf(req) !== undefined ? { accessToken: accessTokenOf(req) } : {}),
      },
      req.ip ?? "",
    );
    res.json(response);
  });

  // GET /v3/register/available
  router.get("/v3/register/available", async (req, res) => {
    const username = queryString(req, "username");
    if (username === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, "Missing parameter: username");
    await sessions.checkUsernameAvailable(username);
    res.json({ available: true });
  });

  // POST /v3/logout
  router.post("/v3/logout", auth, async (_req, res) => {
    await sessions.logout(requesterOf(res));
    res.json({});
  });

  // POST /v3/logout/all
  router.post("/v3/logout/all", auth, async (_req, res) => {
    await sessions.logoutAll(requesterOf(res));
    res.json({});
  });
}
