// Filters (`/v3/user/{userId}/filter[/{filterId}]`), account data
// (`/v3/user/{userId}[/rooms/{roomId}]/account_data/{type}`) and push rules (`/v3/pushrules/...`).
import type { Request, Router } from "../../../app/http/router.js";
import { Errcode, MatrixError } from "../../../core/errors.js";
import { isValidRoomId } from "../../../core/identifiers.js";
import { isJsonObject, type JsonObject } from "../../../core/json.js";
import type { TokenAuthenticator } from "../../http.js";
import { bodyOf, paramOf, queryString, requesterOf, requireAuth } from "../../http.js";
import type { UserData } from "../user-data.js";
import { requireOwnUser } from "./guards.js";

function roomIdParam(req: Request): string {
  const roomId = paramOf(req, "roomId");
  if (!isValidRoomId(roomId)) throw new MatrixError(Errcode.INVALID_PARAM, 400, "Invalid room ID");
  return roomId;
}

/** Field types of a filter (Client-Server API "Filtering"); deeper fields are the sync engine's to read. */
function checkFilter(filter: JsonObject): void {
  for (const key of ["account_data", "presence", "room"]) {
    if (filter[key] !== undefined && !isJsonObject(filter[key])) throw new MatrixError(Errcode.BAD_JSON, 400, `${key} must be an object`);
  }
  const fields = filter.event_fields;
  if (fields !== undefined && !(Array.isArray(fields) && fields.every((f) => typeof f === "string"))) {
    throw new MatrixError(Errcode.BAD_JSON, 400, "event_fields must be an array of strings");
  }
  const format = filter.event_format;
  if (format !== undefined && format !== "client" && format !== "federation") {
    throw new MatrixError(Errcode.BAD_JSON, 400, "event_format must be client or federation");
  }
}

export function mountUserDataRoutes(router: Router, userData: UserData, authenticator: TokenAuthenticator): void {
  const auth = requireAuth(authenticator);

  // POST /v3/user/{userId}/filter
  router.post("/v3/user/:userId/filter", auth, async (req, res) => {
    const requester = requesterOf(res);
    requireOwnUser(requester, paramOf(req, "userId"), "create filters");
    const filter = bodyOf(req);
    checkFilter(filter);
    res.json({ filter_id: await userData.createFilter(requester.userId, filter) });
  });

  // GET /v3/user/{userId}/filter/{filterId}
  router.get("/v3/user/:userId/filter/:filterId", auth, async (req, res) => {
    const requester = requesterOf(res);
    requireOwnUser(requester, paramOf(req, "userId"), "read filters");
    res.json(await userData.getFilter(requester.userId, paramOf(req, "filterId")));
  });

  // PUT /v3/user/{userId}/account_data/{type}
  router.put("/v3/user/:userId/account_data/:type", auth, async (req, res) => {
    const requester = requesterOf(res);
    requireOwnUser(requester, paramOf(req, "userId"), "add account data");
    await userData.putAccountData(requester.userId, null, paramOf(req, "type"), bodyOf(req));
    res.json({});
  });

  // GET /v3/user/{userId}/account_data/{type}
  router.get("/v3/user/:userId/account_data/:type", auth, async (req, res) => {
    const requester = requesterOf(res);
    requireOwnUser(requester, paramOf(req, "userId"), "read account data");
    res.json(await userData.getAccountData(requester.userId, null, paramOf(req, "type")));
  });

  // PUT /v3/user/{userId}/rooms/{roomId}/account_data/{type}
  router.put("/v3/user/:userId/rooms/:roomId/account_data/:type", auth, async (req, res) => {
    const requester = requesterOf(res);
    requireOwnUser(requester, paramOf(req, "userId"), "add account data");
    const roomId = roomIdParam(req);
    await userData.putAccountData(requester.userId, roomId, paramOf(req, "type"), bodyOf(req));
    res.json({});
  });

  // GET /v3/user/{userId}/rooms/{roomId}/account_data/{type}
  router.get("/v3/user/:userId/rooms/:roomId/account_data/:type", auth, async (req, res) => {
    const requester = requesterOf(res);
    requireOwnUser(requester, paramOf(req, "userId"), "read account data");
    res.json(await userData.getAccountData(requester.userId, roomIdParam(req), paramOf(req, "type")));
  });

  // GET /v3/pushrules/
  router.get("/v3/pushrules", auth, async (_req, res) => {
    res.json({ global: await userData.getPushRules(requesterOf(res).userId) });
  });

  // GET /v3/pushrules/global/
  router.get("/v3/pushrules/global", auth, async (_req, res) => {
    res.json(await userData.getPushRules(requesterOf(res).userId));
  });

  // GET /v3/pushrules/global/{kind}/{ruleId}
  router.get("/v3/pushrules/global/:kind/:ruleId", auth, async (req, res) => {
    res.json(await userData.getPushRule(requesterOf(res).userId, paramOf(req, "kind"), paramOf(req, "ruleId")));
  });

  // PUT /v3/pushrules/global/{kind}/{ruleId}
  router.put("/v3/pushrules/global/:kind/:ruleId", auth, async (req, res) => {
    const body = bodyOf(req);
    const kind = paramOf(req, "kind");
    if (!Array.isArray(body.actions)) throw new MatrixError(Errcode.MISSING_PARAM, 400, "Missing parameter: actions");
    const rule: JsonObject = { actions: body.actions };
    if (kind === "content") {
      if (typeof body.pattern !== "string") throw new MatrixError(Errcode.MISSING_PARAM, 400, "Missing parameter: pattern");
      rule.pattern = body.pattern;
    } else if (kind === "override" || kind === "underride") {
      if (body.conditions !== undefined && !Array.isArray(body.conditions)) throw new MatrixError(Errcode.INVALID_PARAM, 400, "conditions must be an array");
      rule.conditions = body.conditions ?? [];
    }
    const before = queryString(req, "before");
    const after = queryString(req, "after");
    await userData.addPushRule(requesterOf(res).userId, kind, paramOf(req, "ruleId"), rule, {
      ...(before !== undefined ? { before } : {}),
      ...(after !== undefined ? { after } : {}),
    });
    res.json({});
  });

  // DELETE /v3/pushrules/global/{kind}/{ruleId}
  router.delete("/v3/pushrules/global/:kind/:ruleId", auth, async (req, res) => {
    await userData.deletePushRule(requesterOf(res).userId, paramOf(req, "kind"), paramOf(req, "ruleId"));
    res.json({});
  });

  // GET /v3/pushrules/global/{kind}/{ruleId}/{enabled|actions}
  router.get("/v3/pushrules/global/:kind/:ruleId/:attribute", auth, async (req, res) => {
    const attribute = paramOf(req, "attribute");
    if (attribute !== "enabled" && attribute !== "actions") throw new MatrixError(Errcode.UNRECOGNIZED, 404, "Unknown push rule attribute");
    const rule = await userData.getPushRule(requesterOf(res).userId, paramOf(req, "kind"), paramOf(req, "ruleId"));
    res.json({ [attribute]: rule[attribute] });
  });

  // PUT /v3/pushrules/global/{kind}/{ruleId}/{enabled|actions}
  router.put("/v3/pushrules/global/:kind/:ruleId/:attribute", auth, async (req, res) => {
    const attribute = paramOf(req, "attribute");
    const body = bodyOf(req);
    if (attribute === "enabled" && typeof body.enabled !== "boolean") throw new MatrixError(Errcode.BAD_JSON, 400, "enabled must be a boolean");
    if (attribute === "actions" && !Array.isArray(body.actions)) throw new MatrixError(Errcode.BAD_JSON, 400, "actions must be an array");
    if (attribute !== "enabled" && attribute !== "actions") throw new MatrixError(Errcode.UNRECOGNIZED, 404, "Unknown push rule attribute");
    await userData.setPushRuleAttribute(requesterOf(res).userId, paramOf(req, "kind"), paramOf(req, "ruleId"), attribute, body[attribute]!);
    res.json({});
  });
}
