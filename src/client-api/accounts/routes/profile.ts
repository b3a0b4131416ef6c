// `GET /v3/profile/{userId}`, `GET/PUT/DELETE /v3/profile/{userId}/{keyName}` for `displayname`
// and `avatar_url`.
import type { Request, Router } from "../../../app/http/router.js";
import { Errcode, MatrixError } from "../../../core/errors.js";
import type { TokenAuthenticator } from "../../http.js";
import { bodyOf, paramOf, requesterOf, requireAuth } from "../../http.js";
import type { ProfileField, Profiles } from "../profiles.js";
import { forbidGuest, requireOwnUser } from "./guards.js";

/** The spec's grammar for profile keys; only the two standard fields are stored here. */
const PROFILE_KEY = /^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$/;
const MAX_DISPLAYNAME_LENGTH = 256;
const MAX_AVATAR_URL_LENGTH = 1024;

function fieldOf(req: Request): ProfileField {
  const key = paramOf(req, "keyName");
  if (!PROFILE_KEY.test(key)) throw new MatrixError(Errcode.INVALID_PARAM, 400, "Invalid profile key");
  if (key !== "displayname" && key !== "avatar_url") throw new MatrixError(Errcode.NOT_FOUND, 404, `Profile field ${key} is not supported`);
  return key;
}

function checkValue(field: ProfileField, value: unknown): string | null {
  if (value === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, `Missing parameter: ${field}`);
  if (value === null) return null;
  if (typeof value !== "string") throw new MatrixError(Errcode.BAD_JSON, 400, `${field} must be a string`);
  if (field === "displayname" && value.length > MAX_DISPLAYNAME_LENGTH) throw new MatrixError(Errcode.INVALID_PARAM, 400, "displayname is too long");
  if (field === "avatar_url" && (value.length > MAX_AVATAR_URL_LENGTH || (value !== "" && !value.startsWith("mxc://")))) {
    throw new MatrixError(Errcode.INVALID_PARAM, 400, "avatar_url must be an mxc:// URI");
  }
  return value;
}

export function mountProfileRoutes(router: Router, profiles: Profiles, authenticator: TokenAuthenticator): void {
  const auth = requireAuth(authenticator);

  // GET /v3/profile/{userId}
  router.get("/v3/profile/:userId", async (req, res) => {
    res.json(await profiles.getProfile(paramOf(req, "userId")));
  });

  // GET /v3/profile/{userId}/{keyName}
  router.get("/v3/profile/:userId/:keyName", async (req, res) => {
    const field = fieldOf(req);
    const profile = await profiles.getProfile(paramOf(req, "userId"));
    const value = profile[field];
    if (value === undefined) throw new MatrixError(Errcode.NOT_FOUND, 404, `${field} is not set`);
    res.json({ [field]: value });
  });

  // PUT /v3/profile/{userId}/{keyName}
  router.put("/v3/profile/:userId/:keyName", auth, async (req, res) => {
    const requester = requesterOf(res);
    const field = fieldOf(req);
    requireOwnUser(requester, paramOf(req, "userId"), "set the profile");
    // Guests may change only their display name (module "Guest Access").
    if (field !== "displayname") forbidGuest(requester);
    const value = checkValue(field, bodyOf(req)[field]);
    await profiles.setField(requester.userId, field, value);
    res.json({});
  });

  // DELETE /v3/profile/{userId}/{keyName}
  router.delete("/v3/profile/:userId/:keyName", auth, async (req, res) => {
    const requester = requesterOf(res);
    const field = fieldOf(req);
    requireOwnUser(requester, paramOf(req, "userId"), "change the profile");
    if (field !== "displayname") forbidGuest(requester);
    await profiles.setField(requester.userId, field, null);
    res.json({});
  });
}
