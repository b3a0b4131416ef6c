// The federation side of rooms hosted elsewhere (rooms/hub-link.ts declares what rooms need):
// - LPDUs go to the hub in the destination's next transaction (outbound queues); the caller
//   waits for the hub's echo (EchoWaiters), bounded;
// - make_CHANGE/send_CHANGE for a room this server is not in (LM draft "Make and Send Handshake");
// - the invitee's server countersigns an invite (hub side of "Invites"); a participant sends its
//   invite LPDU to the hub's `invite` endpoint.
import type { Logger } from "pino";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { Lpdu, Pdu, RoomEvent } from "../../core/events.js";
import { computeEventId } from "../../core/hashes.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../../core/json.js";
import { getRoomVersion, knownRoomVersions } from "../../core/room-versions.js";
import { verifyEventSignatures, type SigningKey } from "../../core/signing.js";
import { buildLpdu, checkPduIntegrity, type EventDraft } from "../../room-dag/index.js";
import type { HubLink } from "../../rooms/hub-link.js";
import type { RoomFederation } from "../../rooms/room-federation.js";
import type { KeyRing } from "../keys/key-ring.js";
import type { OutboundQueues } from "../outbound/types.js";
import type { RemoteDirectory } from "../../client-api/contracts.js";
import type { FederationClient } from "../transport/client.js";
import { FederationRequestError } from "../transport/errors.js";
import type { EchoWaiters } from "./echoes.js";
import { prefetchEventKeys } from "./event-keys.js";
import type { JoinsInProgress } from "./joins.js";
import { LM_UNSTABLE } from "../paths.js";

export interface FederationHubLinkDeps {
  serverName: string;
  signingKey: SigningKey;
  client: FederationClient;
  queues: OutboundQueues;
  echoes: EchoWaiters;
  joins: JoinsInProgress;
  rooms: RoomFederation;
  keyRing: KeyRing;
  directory: RemoteDirectory;
  logger: Logger;
  now: () => number;
  /** How long a client send waits for the hub's echo. */
  echoTimeoutMs?: number;
}

const DEFAULT_ECHO_TIMEOUT_MS = 30_000;
/** How long a hub waits, holding the room's lock, for an invitee's server to sign an invite. */
const COUNTERSIGN_TIMEOUT_MS = 10_000;

export function createFederationHubLink(deps: FederationHubLinkDeps): HubLink {
  const echoTimeoutMs = deps.echoTimeoutMs ?? DEFAULT_ECHO_TIMEOUT_MS;
  const identity = { serverName: deps.serverName, key: deps.signingKey };

  /** A federation request that must succeed: a non-200 answer becomes the remote's error, proxied. */
  async function call(destination: string, method: string, path: string, body?: JsonValue, query?: Record<string, string | string[]>, timeoutMs?: number): Promise<JsonObject> {
    let response;
    try {
      response = await deps.client.request(destination, method, path, { ...(body !== undefined ? { body } : {}), ...(query ? { query } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
    } catch (error) {
      if (error instanceof FederationRequestError) throw new MatrixError(Errcode.UNKNOWN, 502, `${destination} could not be reached: ${error.message}`);
      throw error;
    }
    if (response.status === 200 && isJsonObject(response.json)) return response.json;
    const remote = isJsonObject(response.json) ? response.json : {};
    const errcode = typeof remote.errcode === "string" ? remote.errcode : Errcode.UNKNOWN;
    const message = typeof remote.error === "string" ? remote.error : `${destination} answered ${response.status}`;
    // Proxied as the remote said it (LM draft "Invites": responses are proxied), never as a 5xx of ours.
    const status = response.status >= 400 && response.status < 500 ? response.status : 502;
    throw new MatrixError(errcode as Errcode, status, message);
  }

  const link: HubLink = {
    async sendLpdu(hubServer, lpdu) {
      const info = await deps.rooms.roomInfo(lpdu.room_id);
      if (!info) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room ${lpdu.room_id} is not known here`);
      const lpduId = computeEventId(lpdu as unknown as JsonObject, info.rules);
      const waiter = deps.echoes.wait(lpduId, echoTimeoutMs);
      try {
        const [result] = await deps.queues.sendLpdus(hubServer, [lpdu as unknown as JsonObject], [lpduId], echoTimeoutMs);
        if (result && !result.ok) throw new MatrixError(Errcode.FORBIDDEN, 403, `The room's hub ${hubServer} refused the event: ${result.error}`);
      } catch (error) {
        const failure = error instanceof MatrixError ? error : new MatrixError(Errcode.UNKNOWN, 504, `The room's hub ${hubServer} could not be reached: ${error instanceof Error ? error.message : String(error)}`);
        waiter.cancel(failure);
        throw failure;
      }
      return waiter.echo;
    },

    async changeMembershipRemotely(change, userId, roomId, servers, content) {
      let lastError: MatrixError | undefined;
      for (const server of servers) {
        try {
          await handshake(change, userId, roomId, server, content);
          return;
        } catch (error) {
          if (!(error instanceof MatrixError)) throw error;
          // A refusal under the rules is final; an unreachable or wrong server, try the next.
          if (error.errcode === Errcode.FORBIDDEN || error.errcode === Errcode.INCOMPATIBLE_ROOM_VERSION) throw error;
          lastError = error;
          deps.logger.info({ room_id: roomId, server, err: error.message }, `make_${change} failed; trying the next server`);
        }
      }
      throw lastError ?? new MatrixError(Errcode.NOT_FOUND, 404, `No server to ${change} ${roomId} through`);
    },

    async countersignInvite(event, roomVersion, strippedState) {
      const target = event.pdu.state_key as string;
      const server = target.slice(target.indexOf(":") + 1);
      const path = `/_matrix/federation${LM_UNSTABLE}/invite/${encodeURIComponent(event.eventId)}`;
      // The room's lock is held meanwhile (the event is placed after the current tip): a bounded wait.
      const answer = await call(server, "POST", path, { event: event.pdu as unknown as JsonObject, room_version: roomVersion, invite_room_state: strippedState }, undefined, COUNTERSIGN_TIMEOUT_MS);
      const signed = isJsonObject(answer.event) ? answer.event : isJsonObject(answer.pdu) ? answer.pdu : undefined;
      if (!signed) throw new MatrixError(Errcode.UNKNOWN, 502, `${server} answered the invite without the event`);
      const rules = getRoomVersion(roomVersion);
      if (!rules || computeEventId(signed, rules) !== event.eventId) throw new MatrixError(Errcode.UNKNOWN, 502, `${server} returned a different event than the invite it was sent`);
      // Keep our event, adding only the invitee server's signature, once it verifies.
      const keys = await prefetchEventKeys(deps.keyRing, [{ ...signed, sender: target, hub_server: undefined } as unknown as JsonObject]);
      const theirs = isJsonObject(signed.signatures) ? signed.signatures[server] : undefined;
      if (!isJsonObject(theirs)) throw new MatrixError(Errcode.UNKNOWN, 502, `${server} did not sign the invite`);
      const pdu = { ...event.pdu, signatures: { ...event.pdu.signatures, [server]: theirs as Record<string, string> } } as Pdu;
      const check = verifyEventSignatures(pdu as unknown as JsonObject, server, keys, rules);
      if (!check.ok) throw new MatrixError(Errcode.UNKNOWN, 502, `${server}'s signature on the invite does not verify: ${check.reason}`);
      return { eventId: event.eventId, pdu };
    },

    async inviteThroughHub(hubServer, lpdu, roomVersion) {
      const rules = getRoomVersion(roomVersion);
      const txnId = rules ? computeEventId(lpdu as unknown as JsonObject, rules) : `${deps.now()}`;
      await call(hubServer, "POST", `/_matrix/federation${LM_UNSTABLE}/invite/${encodeURIComponent(txnId)}`, { event: lpdu as unknown as JsonObject, room_version: roomVersion });
    },

    async backfill(hubServer, roomId, eventId, limit) {
      const info = await deps.rooms.roomInfo(roomId);
      if (!info) return [];
      const answer = await call(hubServer, "GET", `/_matrix/federation${LM_UNSTABLE}/backfill/${encodeURIComponent(roomId)}`, undefined, { v: eventId, limit: String(Math.min(limit, 100)) });
      const pdus = Array.isArray(answer.pdus) ? answer.pdus : [];
      const keys = await prefetchEventKeys(deps.keyRing, pdus);
      const events: RoomEvent[] = [];
      for (const raw of pdus) {
        const checked = checkPduIntegrity(raw, { rules: info.rules, keys, roomId, hubServer });
        if (checked.action === "drop") {
          deps.logger.warn({ room_id: roomId, hub: hubServer, reason: checked.reason }, "backfill: an event failed its checks and was left out");
          continue;
        }
        events.push(checked.event);
      }
      // The draft's backfill answers oldest first; clients page newest first.
      return events.reverse().slice(0, limit);
    },

    resolveAlias: (alias) => deps.directory.queryAlias(alias).then((a) => ({ roomId: a.room_id, servers: a.servers })),
  };

  /** make_CHANGE on `server`, fill the template, send_CHANGE; a join then creates the replica. */
  async function handshake(change: "join" | "leave" | "knock", userId: string, roomId: string, server: string, content: JsonObject): Promise<void> {
    const ver = knownRoomVersions().filter((r) => r.authRules === "linearized").map((r) => r.id);
    const made = await call(server, "GET", `/_matrix/federation/v1/make_${change}/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}`, undefined, { ver });
    // eigen-server and classic Matrix answer {event, room_version}; the draft's make_join, the template itself.
    const template = isJsonObject(made.event) ? made.event : made;
    const roomVersion = typeof made.room_version === "string" ? made.room_version : undefined;
    const rules = roomVersion === undefined ? undefined : getRoomVersion(roomVersion);
    if (!rules || rules.authRules !== "linearized" || roomVersion === undefined) {
      throw new MatrixError(Errcode.INCOMPATIBLE_ROOM_VERSION, 400, `${roomId} has room version ${String(roomVersion)}, which this server does not support`);
    }
    if (template.type !== "m.room.member" || template.state_key !== userId || template.sender !== userId) {
      throw new MatrixError(Errcode.UNKNOWN, 502, `${server}'s make_${change} template is not a ${change} of ${userId}`);
    }
    const hubServer = typeof template.hub_server === "string" ? template.hub_server : server;
    const draft: EventDraft = { room_id: roomId, type: "m.room.member", state_key: userId, sender: userId, content: { ...content, membership: change }, origin_server_ts: deps.now() };
    const lpdu: Lpdu = buildLpdu(draft, hubServer, identity, rules);
    const lpduId = computeEventId(lpdu as unknown as JsonObject, rules);
    const path = `/_matrix/federation${LM_UNSTABLE}/send_${change}/${encodeURIComponent(lpduId)}`;
    if (change === "leave") {
      await call(hubServer, "POST", path, lpdu as unknown as JsonObject);
      return;
    }
    if (change === "knock") {
      const answer = await call(hubServer, "POST", path, lpdu as unknown as JsonObject);
      // Keep the knock (and the room's stripped state) so the user's sync shows it, as an invite is kept.
      const stripped = Array.isArray(answer.stripped_state) ? answer.stripped_state.filter(isJsonObject) : [];
      if (isJsonObject(answer.event)) {
        const keys = await prefetchEventKeys(deps.keyRing, [answer.event]);
        const checked = checkPduIntegrity(answer.event, { rules, keys, roomId, hubServer });
        if (checked.action === "accept") await deps.rooms.storeInviteStub(roomVersion, checked.event, stripped);
      }
      return;
    }
    // The hub's /send of the join and what follows is kept meanwhile (joins.ts) and applied,
    // still under the room's lock, right after the replica is created.
    deps.joins.begin(roomId);
    let ended = false;
    try {
      await deps.rooms.withRoom(roomId, async () => {
        const answer = await call(hubServer, "POST", path, lpdu as unknown as JsonObject);
        const state = Array.isArray(answer.state) ? answer.state : [];
        const event = answer.event;
        if (!isJsonObject(event)) throw new MatrixError(Errcode.UNKNOWN, 502, `${hubServer}'s send_join answer has no event`);
        const keys = await prefetchEventKeys(deps.keyRing, [...state, event]);
        await deps.rooms.applyJoin(roomId, roomVersion, hubServer, state, event, keys);
        deps.logger.info({ room_id: roomId, user_id: userId, hub: hubServer, state_events: state.length }, "joined a room hosted elsewhere");
        ended = true;
        for (const { origin, pdus } of deps.joins.end(roomId)) {
          const bufferedKeys = await prefetchEventKeys(deps.keyRing, pdus);
          for (const result of await deps.rooms.receivePdusLocked(roomId, origin, pdus, bufferedKeys)) {
            if (result.placed) deps.echoes.delivered({ event: result.placed.event, roomSeq: result.placed.roomSeq, streamPos: result.placed.streamPos }, rules);
          }
        }
      });
    } finally {
      if (!ended) deps.joins.end(roomId);
    }
  }

  return link;
}
