// Rooms area of the Client-Server API: room creation, sending, state, reading history, membership,
// redaction, typing, receipts and read markers, plus /sync (sync/route.ts). Paths are relative to
// /_matrix/client; handlers parse input, call the room service (or the sync engine's typing
// tracker), and answer.
import type { Request, Response, Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { isValidRoomId, isValidUserId } from "../../core/identifiers.js";
import type { JsonObject } from "../../core/json.js";
import { parseCreateRoomRequest } from "../../rooms/create-room.js";
import { EMPTY_EVENT_FILTER, parseFilterParam, parseRoomEventFilter } from "../../rooms/event-filter.js";
import type { MembershipAction, RoomService, Sender } from "../../rooms/room-service.js";
import type { ClientApiContext } from "../contracts.js";
import { bodyOf, optionalString, paramOf, queryInt, queryString, requesterOf, requireAuth, requireString } from "../http.js";
import type { SyncEngine } from "../sync/engine.js";
import { mountSyncRoute } from "../sync/route.js";

/** Default and largest typing timeout a client may ask for (ms). */
const DEFAULT_TYPING_TIMEOUT_MS = 30_000;

function senderOf(res: Response): Sender {
  const requester = requesterOf(res);
  return { userId: requester.userId, deviceId: requester.deviceId };
}

function roomIdOf(req: Request): string {
  const roomId = paramOf(req, "roomId");
  if (!isValidRoomId(roomId)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${roomId} is not a room ID`);
  return roomId;
}

function reasonOf(body: JsonObject): string | undefined {
  return optionalString(body, "reason");
}

/** Routes for: sync, send, createRoom, state, event, messages, members, joined_members, joined_rooms, join,
 *  invite, leave, forget, kick, ban, unban, knock, redact, typing, receipt, read_markers, aliases, context,
 *  registered on `router` with their paths relative to /_matrix/client. */
export function mountRoomsApi(router: Router, ctx: ClientApiContext, rooms: RoomService, sync: SyncEngine): void {
  const auth = requireAuth(ctx.authenticator);
  const { queries } = rooms;
  // The `message` rate limit (config `rate_limits.message`) applies per user to everything sent into rooms.
  const limitSends = (_req: Request, res: Response, next: () => void): void => {
    const requester = requesterOf(res);
    // Application services registered with `rate_limited: false` are exempt (Application Service API).
    if (!requester.exemptFromRateLimits) ctx.rateLimiter.take("message", requester.userId);
    next();
  };

  mountSyncRoute(router, ctx, sync);

  // PUT /v3/rooms/{roomId}/send/{eventType}/{txnId}
  router.put("/v3/rooms/:roomId/send/:eventType/:txnId", auth, limitSends, async (req, res) => {
    const { eventId } = await rooms.sendEvent(senderOf(res), roomIdOf(req), { type: paramOf(req, "eventType"), content: bodyOf(req) }, paramOf(req, "txnId"));
    res.json({ event_id: eventId });
  });

  // POST /v3/createRoom
  router.post("/v3/createRoom", auth, async (req, res) => {
    const { roomId } = await rooms.createRoom(senderOf(res), parseCreateRoomRequest(bodyOf(req)));
    res.json({ room_id: roomId });
  });

  // PUT /v3/rooms/{roomId}/state/{eventType}/{stateKey} (empty state key: trailing slash or none)
  router.put("/v3/rooms/:roomId/state/:eventType{/:stateKey}", auth, limitSends, async (req, res) => {
    const stateKey = typeof req.params.stateKey === "string" ? req.params.stateKey : "";
    const { eventId } = await rooms.sendEvent(senderOf(res), roomIdOf(req), { type: paramOf(req, "eventType"), stateKey, content: bodyOf(req) });
    res.json({ event_id: eventId });
  });

  // GET /v3/rooms/{roomId}/state/{eventType}/{stateKey}
  router.get("/v3/rooms/:roomId/state/:eventType{/:stateKey}", auth, async (req, res) => {
    const stateKey = typeof req.params.stateKey === "string" ? req.params.stateKey : "";
    const event = await queries.getStateEvent(senderOf(res), roomIdOf(req), paramOf(req, "eventType"), stateKey);
    if (queryString(req, "format") === "event") {
      const [client] = await rooms.decorator.decorate([event], senderOf(res), { prevContent: false });
      res.json(client);
      return;
    }
    res.json(event.pdu.content);
  });

  // GET /v3/rooms/{roomId}/state
  router.get("/v3/rooms/:roomId/state", auth, async (req, res) => {
    res.json(await queries.getState(senderOf(res), roomIdOf(req)));
  });

  // GET /v3/rooms/{roomId}/event/{eventId}
  router.get("/v3/rooms/:roomId/event/:eventId", auth, async (req, res) => {
    res.json(await queries.getEvent(senderOf(res), roomIdOf(req), paramOf(req, "eventId")));
  });

  // GET /v3/rooms/{roomId}/messages
  router.get("/v3/rooms/:roomId/messages", auth, async (req, res) => {
    const dir = queryString(req, "dir") ?? "b";
    if (dir !== "b" && dir !== "f") throw new MatrixError(Errcode.INVALID_PARAM, 400, "dir must be b or f");
    const from = queryString(req, "from");
    const to = queryString(req, "to");
    const filter = parseRoomEventFilter(parseFilterParam(queryString(req, "filter")));
    const limit = queryInt(req, "limit", filter.limit ?? 10, 1000);
    res.json(
      await queries.getMessages(senderOf(res), roomIdOf(req), {
        dir,
        limit: Math.max(limit, 1),
        filter,
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
      }),
    );
  });

  // GET /v3/rooms/{roomId}/context/{eventId}
  router.get("/v3/rooms/:roomId/context/:eventId", auth, async (req, res) => {
    const filter = parseFilterParam(queryString(req, "filter"));
    const limit = queryInt(req, "limit", 10, 100);
    res.json(await queries.getContext(senderOf(res), roomIdOf(req), paramOf(req, "eventId"), limit, filter ? parseRoomEventFilter(filter) : EMPTY_EVENT_FILTER));
  });

  // GET /v3/rooms/{roomId}/members
  router.get("/v3/rooms/:roomId/members", auth, async (req, res) => {
    const at = queryString(req, "at");
    const membership = queryString(req, "membership");
    const notMembership = queryString(req, "not_membership");
    const chunk = await queries.getMembers(senderOf(res), roomIdOf(req), {
      ...(at === undefined ? {} : { at }),
      ...(membership === undefined ? {} : { membership }),
      ...(notMembership === undefined ? {} : { notMembership }),
    });
    res.json({ chunk });
  });

  // GET /v3/rooms/{roomId}/joined_members
  router.get("/v3/rooms/:roomId/joined_members", auth, async (req, res) => {
    res.json({ joined: await queries.getJoinedMembers(senderOf(res).userId, roomIdOf(req)) });
  });

  // GET /v3/joined_rooms
  router.get("/v3/joined_rooms", auth, async (_req, res) => {
    res.json({ joined_rooms: await queries.getJoinedRooms(senderOf(res).userId) });
  });

  // GET /v3/rooms/{roomId}/aliases
  router.get("/v3/rooms/:roomId/aliases", auth, async (req, res) => {
    const requester = requesterOf(res);
    res.json({ aliases: await queries.getAliases(requester.userId, roomIdOf(req), { serverAdmin: requester.isAdmin }) });
  });

  // POST /v3/join/{roomIdOrAlias}
  router.post("/v3/join/:roomIdOrAlias", auth, async (req, res) => {
    const { roomId } = await rooms.join(senderOf(res), paramOf(req, "roomIdOrAlias"), reasonOf(bodyOrEmpty(req)), serverHintsOf(req));
    res.json({ room_id: roomId });
  });

  // POST /v3/rooms/{roomId}/join
  router.post("/v3/rooms/:roomId/join", auth, async (req, res) => {
    const { roomId } = await rooms.join(senderOf(res), roomIdOf(req), reasonOf(bodyOrEmpty(req)));
    res.json({ room_id: roomId });
  });

  // POST /v3/knock/{roomIdOrAlias}
  router.post("/v3/knock/:roomIdOrAlias", auth, async (req, res) => {
    const { roomId } = await rooms.knock(senderOf(res), paramOf(req, "roomIdOrAlias"), reasonOf(bodyOrEmpty(req)), serverHintsOf(req));
    res.json({ room_id: roomId });
  });

  // POST /v3/rooms/{roomId}/leave
  router.post("/v3/rooms/:roomId/leave", auth, async (req, res) => {
    await rooms.leave(senderOf(res), roomIdOf(req), reasonOf(bodyOrEmpty(req)));
    res.json({});
  });

  // POST /v3/rooms/{roomId}/forget
  router.post("/v3/rooms/:roomId/forget", auth, async (req, res) => {
    await rooms.forget(senderOf(res), roomIdOf(req));
    res.json({});
  });

  // POST /v3/rooms/{roomId}/{invite,kick,ban,unban}
  for (const action of ["invite", "kick", "ban", "unban"] as const satisfies readonly MembershipAction[]) {
    router.post(`/v3/rooms/:roomId/${action}`, auth, async (req, res) => {
      const body = bodyOf(req);
      const target = requireString(body, "user_id");
      if (!isValidUserId(target)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${target} is not a user ID`);
      await rooms.changeMembership(senderOf(res), roomIdOf(req), action, target, reasonOf(body));
      res.json({});
    });
  }

  // PUT /v3/rooms/{roomId}/redact/{eventId}/{txnId}
  router.put("/v3/rooms/:roomId/redact/:eventId/:txnId", auth, limitSends, async (req, res) => {
    const { eventId } = await rooms.redact(senderOf(res), roomIdOf(req), paramOf(req, "eventId"), reasonOf(bodyOrEmpty(req)), paramOf(req, "txnId"));
    res.json({ event_id: eventId });
  });

  // PUT /v3/rooms/{roomId}/typing/{userId}
  router.put("/v3/rooms/:roomId/typing/:userId", auth, async (req, res) => {
    const sender = senderOf(res);
    const roomId = roomIdOf(req);
    if (paramOf(req, "userId") !== sender.userId) throw new MatrixError(Errcode.FORBIDDEN, 403, "Cannot set typing for another user");
    const body = bodyOf(req);
    const typing = body.typing;
    if (typeof typing !== "boolean") throw new MatrixError(Errcode.BAD_JSON, 400, "typing must be a boolean");
    const timeout = body.timeout ?? DEFAULT_TYPING_TIMEOUT_MS;
    if (typeof timeout !== "number" || !Number.isSafeInteger(timeout) || timeout < 0) throw new MatrixError(Errcode.BAD_JSON, 400, "timeout must be a non-negative integer");
    await queries.requireJoined(sender.userId, roomId);
    sync.typing.setTyping(roomId, sender.userId, typing, timeout);
    res.json({});
  });

  // POST /v3/rooms/{roomId}/receipt/{receiptType}/{eventId}
  router.post("/v3/rooms/:roomId/receipt/:receiptType/:eventId", auth, async (req, res) => {
    const threadId = optionalString(bodyOrEmpty(req), "thread_id") ?? null;
    await rooms.putReceipt(senderOf(res), roomIdOf(req), paramOf(req, "receiptType"), paramOf(req, "eventId"), threadId);
    res.json({});
  });

  // POST /v3/rooms/{roomId}/read_markers
  router.post("/v3/rooms/:roomId/read_markers", auth, async (req, res) => {
    const body = bodyOf(req);
    const fullyRead = optionalString(body, "m.fully_read");
    const read = optionalString(body, "m.read");
    const readPrivate = optionalString(body, "m.read.private");
    await rooms.setReadMarkers(senderOf(res), roomIdOf(req), {
      ...(fullyRead === undefined ? {} : { fullyRead }),
      ...(read === undefined ? {} : { read }),
      ...(readPrivate === undefined ? {} : { readPrivate }),
    });
    res.json({});
  });

}

/** Bodies that are optional (`{}` when the client sent none). */
function bodyOrEmpty(req: Request): JsonObject {
  return req.body === undefined || req.body === null || (typeof req.body === "object" && Object.keys(req.body as object).length === 0) ? {} : bodyOf(req);
}

/** `via` (v1.12) and the older `server_name` query parameters: servers that may know the room. */
function serverHintsOf(req: Request): string[] {
  const hints: string[] = [];
  for (const name of ["via", "server_name"]) {
    const value = req.query[name];
    for (const item of Array.isArray(value) ? value : [value]) if (typeof item === "string" && item !== "") hints.push(item);
  }
  return hints;
}
