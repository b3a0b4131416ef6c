// The user routes of the admin API (Synapse Admin API "User Admin API"): `GET /v2/users`,
// `GET|PUT /v2/users/{userId}`, `POST /v1/deactivate/{userId}`, `GET|PUT /v1/users/{userId}/admin`,
// `GET /v2/users/{userId}/devices`, `GET /v1/users/{userId}/joined_rooms`.
import type { Request, Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { isJsonObject, type JsonObject } from "../../core/json.js";
import { bodyOf, optionalBoolean, optionalString, paramOf, queryInt, queryString } from "../../client-api/http.js";
import { adminOf } from "./guard.js";
import { queryBoolean } from "./query.js";
import type { UserAdmin, UserChanges } from "./user-admin.js";

/** Synapse's default page size for the admin lists. */
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 10_000;

/** A string field that may also be null (clears it); undefined when absent. */
function nullableString(body: JsonObject, key: string): string | null | undefined {
  if (body[key] === null) return null;
  return optionalString(body, key);
}

/** The body of `PUT /v2/users/{userId}`; fields it does not support (threepids, ...) are ignored. */
function userChangesOf(body: JsonObject): UserChanges {
  const changes: UserChanges = { logoutDevices: optionalBoolean(body, "logout_devices") ?? true };
  const password = optionalString(body, "password");
  if (password !== undefined) changes.password = password;
  const displayname = nullableString(body, "displayname");
  if (displayname !== undefined) changes.displayname = displayname;
  const avatarUrl = nullableString(body, "avatar_url");
  if (avatarUrl !== undefined) changes.avatarUrl = avatarUrl;
  const admin = optionalBoolean(body, "admin");
  if (admin !== undefined) changes.admin = admin;
  const deactivated = optionalBoolean(body, "deactivated");
  if (deactivated !== undefined) changes.deactivated = deactivated;
  return changes;
}

/** An optional JSON object body: tools send `POST /deactivate` with no body at all. */
function optionalBodyOf(req: Request): JsonObject {
  const body: unknown = req.body;
  if (body === undefined || body === null || (typeof body === "string" && body === "")) return {};
  if (!isJsonObject(body)) throw new MatrixError(Errcode.NOT_JSON, 400, "Content not JSON: expected a JSON object");
  return body;
}

export function mountUserRoutes(router: Router, users: UserAdmin): void {
  // GET /v2/users
  router.get("/v2/users", async (req, res) => {
    // Synapse Admin API "List Accounts": `name` matches user IDs and display names, `user_id` user IDs only.
    const name = queryString(req, "name");
    const userId = queryString(req, "user_id");
    res.json(
      await users.list({
        from: queryInt(req, "from", 0),
        limit: queryInt(req, "limit", DEFAULT_LIMIT, MAX_LIMIT),
        ...(name !== undefined ? { name } : {}),
        ...(userId !== undefined ? { userId } : {}),
        guests: queryBoolean(req, "guests", true),
        // Deactivated accounts are left out unless asked for (Synapse Admin API "List Accounts").
        deactivated: queryBoolean(req, "deactivated", false),
      }),
    );
  });

  // GET /v2/users/{userId}
  router.get("/v2/users/:userId", async (req, res) => {
    res.json(await users.get(paramOf(req, "userId")));
  });

  // PUT /v2/users/{userId}
  router.put("/v2/users/:userId", async (req, res) => {
    const changes = userChangesOf(bodyOf(req));
    const { created, user } = await users.put(adminOf(res), paramOf(req, "userId"), changes);
    res.status(created ? 201 : 200).json(user);
  });

  // POST /v1/deactivate/{userId}
  router.post("/v1/deactivate/:userId", async (req, res) => {
    // GDPR erasure (`erase: true`) is not supported: refuse rather than pretend.
    if (optionalBoolean(optionalBodyOf(req), "erase") === true) throw new MatrixError(Errcode.INVALID_PARAM, 400, "Erasing users is not supported");
    await users.deactivate(adminOf(res), paramOf(req, "userId"));
    // No identity server holds this server's users' third-party IDs.
    res.json({ id_server_unbind_result: "success" });
  });

  // GET /v1/users/{userId}/admin
  router.get("/v1/users/:userId/admin", async (req, res) => {
    res.json({ admin: await users.isAdmin(paramOf(req, "userId")) });
  });

  // PUT /v1/users/{userId}/admin
  router.put("/v1/users/:userId/admin", async (req, res) => {
    const admin = optionalBoolean(bodyOf(req), "admin");
    if (admin === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, "Missing parameter: admin");
    await users.setAdmin(adminOf(res), paramOf(req, "userId"), admin);
    res.json({});
  });

  // GET /v2/users/{userId}/devices
  router.get("/v2/users/:userId/devices", async (req, res) => {
    const devices = await users.devices(paramOf(req, "userId"));
    res.json({ devices, total: devices.length });
  });

  // GET /v1/users/{userId}/joined_rooms
  router.get("/v1/users/:userId/joined_rooms", async (req, res) => {
    const joinedRooms = await users.joinedRooms(paramOf(req, "userId"));
    res.json({ joined_rooms: joinedRooms, total: joinedRooms.length });
  });
}
