// The membership handshakes (LM draft "Room Membership"):
//   GET  /v1/make_{join,leave,knock}/{roomId}/{userId}?ver=…      hub: a template, if the rules allow
//   POST /{unstable LM,v3}/send_{join,leave,knock}/{txnId}         hub: the filled, signed LPDU
//   POST /{unstable LM,v3}/invite/{txnId}, PUT /v2/invite/{roomId}/{eventId}
//        hub: an invite LPDU from a participant, completed, countersigned by the invitee's server,
//        appended; invitee's server: sign the invite of a local user and keep it.
import type { RequestHandler, Router } from "../../app/http/router.js";
import type { Logger } from "pino";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { Pdu, RoomEvent } from "../../core/events.js";
import { serverNameOf } from "../../core/identifiers.js";
import { isJsonObject, type JsonObject } from "../../core/json.js";
import { getRoomVersion } from "../../core/room-versions.js";
import { signEvent, type SigningKey } from "../../core/signing.js";
import { checkPduIntegrity } from "../../room-dag/index.js";
import type { HubLink } from "../../rooms/hub-link.js";
import type { MembershipChange, RoomFederation } from "../../rooms/room-federation.js";
import type { Storage } from "../../storage/ports.js";
import type { KeyRing } from "../keys/key-ring.js";
import { prefetchEventKeys } from "./event-keys.js";
import { lmPaths } from "../paths.js";

export interface MembershipRoutesDeps {
  serverName: string;
  signingKey: SigningKey;
  storage: Storage;
  rooms: RoomFederation;
  keyRing: KeyRing;
  /** The hub's side of a participant's invite: the invitee's server countersigns. */
  hubLink: () => HubLink;
  logger: Logger;
}

const CHANGES: readonly MembershipChange[] = ["join", "leave", "knock"];

export function mountMembershipRoutes(router: Router, auth: RequestHandler, deps: MembershipRoutesDeps): void {
  for (const change of CHANGES) {
    router.get(`/v1/make_${change}/:roomId/:userId`, auth, async (req, res) => {
      const roomId = req.params.roomId as string;
      const userId = req.params.userId as string;
      requireOwnUser(res.locals.origin as string, userId);
      const info = await deps.rooms.roomInfo(roomId);
      if (info === undefined || info.isStub) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room ${roomId} is not known here`);
      if (!info.hostedHere) throw new MatrixError(Errcode.WRONG_SERVER, 400, `${deps.serverName} is not the hub of ${roomId}; ask ${info.hubServer}`);
      if (change !== "leave") {
        const ver = req.query.ver;
        const versions = (Array.isArray(ver) ? ver : [ver]).filter((v): v is string => typeof v === "string");
        if (!versions.includes(info.roomVersion)) {
          throw new MatrixError(Errcode.INCOMPATIBLE_ROOM_VERSION, 400, `Room ${roomId} is version ${info.roomVersion}, which the requesting server did not list`, { room_version: info.roomVersion });
        }
      }
      const template = await deps.rooms.membershipTemplate(roomId, userId, change);
      res.json({ event: template.event, room_version: template.roomVersion });
    });

    router.post(lmPaths(`/send_${change}/:txnId`, `/v3/send_${change}/:txnId`), auth, async (req, res) => {
      const origin = res.locals.origin as string;
      const lpdu = req.body as unknown;
      if (!isJsonObject(lpdu)) throw new MatrixError(Errcode.BAD_JSON, 400, "The body must be the LPDU");
      const { roomId } = checkMembershipLpdu(lpdu, change, origin);
      const info = await deps.rooms.roomInfo(roomId);
      if (info === undefined || info.isStub) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room ${roomId} is not known here`);
      if (!info.hostedHere) throw new MatrixError(Errcode.WRONG_SERVER, 400, `${deps.serverName} is not the hub of ${roomId}; ask ${info.hubServer}`);
      const keys = await prefetchEventKeys(deps.keyRing, [lpdu]);
      const [result] = await deps.rooms.acceptLpdus(roomId, origin, [lpdu], keys);
      if (!result) throw new MatrixError(Errcode.UNKNOWN, 500, "no result");
      if (result.error !== undefined) throw new MatrixError(Errcode.FORBIDDEN, 403, result.error);
      // A retried send_CHANGE finds the event placed the first time.
      const eventId = result.placed?.event.eventId ?? (await deps.storage.federation.getCompletedLpdu(result.receivedId));
      const stored = eventId === undefined ? undefined : await deps.storage.events.getEvent(eventId);
      if (!stored) throw new MatrixError(Errcode.UNKNOWN, 500, "the event was accepted but cannot be found");
      if (change === "join") {
        const { state, authChain } = await deps.rooms.stateAndAuthChainBefore(roomId, stored.roomSeq);
        res.json({ state, auth_chain: authChain, event: stored.pdu, members_omitted: false, origin: deps.serverName });
      } else if (change === "knock") {
        const strippedState = await deps.rooms.strippedState(roomId);
        // `event` is Bobbin's addition: the knocking server keeps the knock without waiting for the fan-out.
        res.json({ stripped_state: strippedState, knock_room_state: strippedState, event: stored.pdu });
      } else {
        res.json({});
      }
    });
  }

  const invite: RequestHandler = async (req, res) => {
    const origin = res.locals.origin as string;
    const body = req.body as unknown;
    if (!isJsonObject(body) || !isJsonObject(body.event)) throw new MatrixError(Errcode.BAD_JSON, 400, "The body must hold `event`");
    const roomVersion = body.room_version;
    if (typeof roomVersion !== "string") throw new MatrixError(Errcode.BAD_JSON, 400, "room_version is required");
    const rules = getRoomVersion(roomVersion);
    if (!rules || rules.authRules !== "linearized") throw new MatrixError(Errcode.INCOMPATIBLE_ROOM_VERSION, 400, `Room version ${roomVersion} is not supported here`, { room_version: roomVersion });
    const event = body.event;
    const target = event.state_key;
    const content = event.content;
    if (event.type !== "m.room.member" || typeof target !== "string" || !isJsonObject(content) || content.membership !== "invite") {
      throw new MatrixError(Errcode.BAD_JSON, 400, "The event must be an m.room.member invite");
    }
    const roomId = event.room_id;
    if (typeof roomId !== "string") throw new MatrixError(Errcode.BAD_JSON, 400, "The event has no room_id");
    const keys = await prefetchEventKeys(deps.keyRing, [event]);
    const isLpdu = event.auth_events === undefined && event.prev_events === undefined;

    if (isLpdu) {
      // Hub: a participant's invite (LM draft "Invites"): complete, have the invitee's server sign, append.
      const sender = event.sender;
      if (typeof sender !== "string" || serverNameOf(sender) !== origin) throw new MatrixError(Errcode.FORBIDDEN, 403, `The invite's sender is not a user of ${origin}`);
      const info = await deps.rooms.roomInfo(roomId);
      if (info === undefined || info.isStub) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room ${roomId} is not known here`);
      if (!info.hostedHere) throw new MatrixError(Errcode.WRONG_SERVER, 400, `${deps.serverName} is not the hub of ${roomId}`);
      const stripped = await deps.rooms.strippedState(roomId);
      const placed = await deps.rooms.acceptInviteLpdu(roomId, origin, event, keys, (completed) =>
        serverNameOf(target) === deps.serverName ? Promise.resolve(completed) : deps.hubLink().countersignInvite(completed, info.roomVersion, stripped),
      );
      res.json({ event: placed.pdu });
      return;
    }

    // Invitee's server: a local user invited to a room this server is not in.
    if (serverNameOf(target) !== deps.serverName) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${target} is not a user of ${deps.serverName}`);
    const hubServer = typeof event.hub_server === "string" ? event.hub_server : serverNameOf(roomId);
    const checked = checkPduIntegrity(event, { rules, keys, roomId, hubServer });
    if (checked.action !== "accept") throw new MatrixError(Errcode.FORBIDDEN, 403, `The invite event does not verify: ${checked.reason}`);
    const user = await deps.storage.accounts.getUser(target);
    if (!user || user.deactivated) throw new MatrixError(Errcode.NOT_FOUND, 404, `${target} does not exist`);
    const signed = signEvent(event, deps.serverName, deps.signingKey, rules) as unknown as Pdu;
    const strippedState = Array.isArray(body.invite_room_state) ? body.invite_room_state.filter(isJsonObject) : [];
    await deps.rooms.storeInviteStub(roomVersion, { eventId: checked.event.eventId, pdu: signed } as RoomEvent, strippedState);
    deps.logger.info({ room_id: roomId, user_id: target, origin }, "invite received");
    res.json({ event: signed });
  };
  router.post(lmPaths("/invite/:txnId", "/v3/invite/:txnId"), auth, invite);
  router.put("/v2/invite/:roomId/:eventId", auth, invite);
}

/** A make_CHANGE or send_CHANGE is about a user of the requesting server. */
function requireOwnUser(origin: string, userId: string): void {
  if (serverNameOf(userId) !== origin) throw new MatrixError(Errcode.FORBIDDEN, 403, `${userId} is not a user of ${origin}`);
}

function checkMembershipLpdu(lpdu: JsonObject, change: MembershipChange, origin: string): { roomId: string } {
  const content = lpdu.content;
  if (lpdu.type !== "m.room.member" || !isJsonObject(content) || content.membership !== change) {
    throw new MatrixError(Errcode.BAD_JSON, 400, `The event must be an m.room.member ${change}`);
  }
  if (typeof lpdu.sender !== "string" || lpdu.state_key !== lpdu.sender) throw new MatrixError(Errcode.BAD_JSON, 400, "state_key must be the sender");
  requireOwnUser(origin, lpdu.sender);
  if (typeof lpdu.room_id !== "string") throw new MatrixError(Errcode.BAD_JSON, 400, "room_id is required");
  return { roomId: lpdu.room_id };
}
