// The room service: the single writer of every room hosted here (room-writer.ts) and the reads
// clients make of rooms (room-queries.ts). Rooms whose hub is another server are written through
// a HubLink (hub-link.ts), which the federation layer provides.
import type { Logger } from "pino";
import type { ProfilePropagator, RemoteEdus, SyncNotifier } from "../client-api/contracts.js";
import { Errcode, MatrixError } from "../core/errors.js";
import { isValidEventId, isValidUserId, serverNameOf } from "../core/identifiers.js";
import type { JsonObject } from "../core/json.js";
import type { Pdu } from "../core/events.js";
import { DEFAULT_ROOM_VERSION, getRoomVersion } from "../core/room-versions.js";
import type { SigningKey } from "../core/signing.js";
import { membershipOf, powerLevelsFrom } from "../auth-rules/index.js";
import { buildLpdu, type EventDraft } from "../room-dag/index.js";
import type { RoomPurge, Storage } from "../storage/ports.js";
import type { FederationFanout } from "./fanout.js";
import type { VerifyPool } from "./verify-pool.js";
import type { StreamTracker } from "../storage/stream-tracker.js";
import { planRoomCreation, type CreateRoomRequest } from "./create-room.js";
import { EventDecorator, type Viewer } from "./event-decorator.js";
import type { HubLink } from "./hub-link.js";
import type { MembershipIndex } from "./membership-index.js";
import type { RecentEvents } from "./recent-events.js";
import { RoomQueries } from "./room-queries.js";
import { createRoomFederation, type RoomFederation } from "./room-federation.js";
import { RoomWriter, type EventRequest, type PlacedEvent, type RoomEventPolicy, type RoomHead } from "./room-writer.js";
import { TransactionEchoes } from "./transaction-echoes.js";

export interface RoomServiceDeps {
  serverName: string;
  signingKey: SigningKey;
  storage: Storage;
  streams: StreamTracker;
  notifier: SyncNotifier;
  logger: Logger;
  now: () => number;
  /** Wakes the outbound federation queues after a hub event committed. */
  fanout?: FederationFanout;
  /** Verifies big batches of signatures on a second core (one per server; app/ closes it). */
  verifyPool?: VerifyPool;
  /** Shared with the sync engine so the sending device sees `transaction_id`. */
  transactions?: TransactionEchoes;
  /** Shared with the sync engine; the room writer keeps it current. */
  memberships: MembershipIndex;
  /** Shared with the sync engine; the room writer keeps it current. */
  recentEvents: RecentEvents;
  /** Public read receipts for the room's other servers (federation/edus-out.ts). */
  remoteEdus?: RemoteEdus;
  /** Room policy beyond the auth rules (the MLS overlay), handed to the room writer. */
  policy?: RoomEventPolicy;
}

/** Who asks: a user and, for transaction IDs, the device. */
export interface Sender {
  userId: string;
  deviceId: string;
}

export type MembershipAction = "invite" | "kick" | "ban" | "unban";

export interface RoomService extends ProfilePropagator {
  readonly queries: RoomQueries;
  readonly decorator: EventDecorator;
  /** What the federation layer asks of rooms (hub and participant sides). */
  readonly federation: RoomFederation;
  /** Connects rooms hosted elsewhere (the federation layer provides it once built). */
  setHubLink(link: HubLink): void;
  createRoom(sender: Sender, request: CreateRoomRequest): Promise<{ roomId: string }>;
  /** Sends a message or state event; with `txnId`, idempotent per (user, device, txnId). */
  sendEvent(sender: Sender, roomId: string, event: { type: string; stateKey?: string; content: JsonObject }, txnId?: string): Promise<{ eventId: string }>;
  redact(sender: Sender, roomId: string, targetEventId: string, reason: string | undefined, txnId: string): Promise<{ eventId: string }>;
  /** `serverHints`: `via` / `server_name` servers for a room this server is not in. */
  join(sender: Sender, roomIdOrAlias: string, reason?: string, serverHints?: string[]): Promise<{ roomId: string }>;
  leave(sender: Sender, roomId: string, reason?: string): Promise<void>;
  knock(sender: Sender, roomIdOrAlias: string, reason?: string, serverHints?: string[]): Promise<{ roomId: string }>;
  /** invite, kick, ban, unban of `target` by `sender`. */
  changeMembership(sender: Sender, roomId: string, action: MembershipAction, target: string, reason?: string): Promise<void>;
  forget(sender: Sender, roomId: string): Promise<void>;
  /**
   * Deletes every row of the room from the database (admin API room purge) under the room's lock,
   * so no append races it, and drops what the writer, the membership index and the recent-events
   * cache hold of it.
   */
  purge(roomId: string): Promise<RoomPurge>;
  putReceipt(sender: Sender, roomId: string, receiptType: string, eventId: string, threadId: string | null): Promise<void>;
  setReadMarkers(sender: Sender, roomId: string, markers: { fullyRead?: string; read?: string; readPrivate?: string }): Promise<void>;
}

const RECEIPT_TYPES: ReadonlySet<string> = new Set(["m.read", "m.read.private"]);

export function createRoomService(deps: RoomServiceDeps): RoomService {
  const { storage, streams, notifier, serverName, logger, now } = deps;
  const writer = new RoomWriter(deps);
  let hubLink: HubLink | undefined;
  const requireHubLink = (what: string): HubLink => {
    if (!hubLink) throw new MatrixError(Errcode.FORBIDDEN, 403, `${what} needs federation, which is not configured`);
    return hubLink;
  };
  const echoes = deps.transactions ?? new TransactionEchoes();
  const decorator = new EventDecorator(storage, echoes, now);
  const queries = new RoomQueries(storage, streams, decorator, () => {
    const link = hubLink;
    if (!link) return undefined;
    return {
      async backfill(roomId, eventId, limit) {
        const room = await storage.events.getRoom(roomId);
        if (!room || room.hubServer === serverName) return [];
        return link.backfill(room.hubServer, roomId, eventId, limit);
      },
    };
  });

  function notifyPlaced(roomId: string, placed: PlacedEvent[]): void {
    const last = placed[placed.length - 1];
    if (!last) return;
    notifier.notifyRoom(roomId, last.streamPos);
    // Membership changes also concern users not (yet) watching the room: invitees, joiners.
    const targets = placed.filter((p) => p.event.pdu.type === "m.room.member" && p.event.pdu.state_key !== undefined).map((p) => p.event.pdu.state_key as string);
    if (targets.length > 0) notifier.notifyUsers(targets, last.streamPos);
  }

  async function requireHead(roomId: string): Promise<RoomHead> {
    const head = await writer.head(roomId);
    if (!head) throw new MatrixError(Errcode.NOT_FOUND, 404, `Unknown room ${roomId}`);
    return head;
  }

  /**
   * Appends under the room's lock; rooms hosted elsewhere go through the hub link. `afterCommit`
   * runs once the events committed, before syncs can see them. `pipelined`: the lock is released
   * once the events are placed and their transaction queued (RoomWriter.appendPipelined), so
   * the room's next request is placed while these commit; the answer still waits for the commit.
   */
  async function append(
    roomId: string,
    requests: EventRequest[],
    options: {
      persistExtra?: Parameters<RoomWriter["appendLocked"]>[2];
      afterCommit?: (head: RoomHead, placed: PlacedEvent[]) => void;
      pipelined?: boolean;
    } = {},
  ): Promise<{ placed: PlacedEvent[] }> {
    const { persistExtra, afterCommit, pipelined = false } = options;
    // Remote-hub rooms leave the lock with `remote` set and are sent outside it.
    const result = await writer.withRoom(roomId, async (): Promise<{ committed: Promise<PlacedEvent[]> } | { remote: RoomHead }> => {
      const head = await requireHead(roomId);
      if (!writer.isHostedHere(head)) return { remote: head };
      const after = afterCommit && ((placed: PlacedEvent[]) => afterCommit(head, placed));
      if (pipelined) return writer.appendPipelined(head, requests, persistExtra, after);
      return { committed: Promise.resolve(await writer.appendLocked(head, requests, persistExtra, after)) };
    });
    if ("remote" in result) {
      const sent = await sendThroughHub(result.remote, requests);
      // The echo is stored; what the request records beside it (its transaction ID) follows.
      if (persistExtra) await storage.transaction((tx) => persistExtra(tx, sent.placed));
      afterCommit?.(result.remote, sent.placed);
      return sent;
    }
    const placed = await result.committed;
    notifyPlaced(roomId, placed);
    return { placed };
  }

  /** Requests in flight per (user, device, transaction ID); see `once`. */
  const sending = new Map<string, Promise<string>>();

  /**
   * Runs `send` once per (user, device, txnId) (Client-Server API "Transaction identifiers"): a
   * request whose txnId is stored gets the stored event ID; one whose txnId is still being sent
   * waits for that send and gets its event ID (or, if it failed, tries again). Its entry is
   * removed only after the commit that stored the txnId, so the stored row takes over seamlessly.
   * Checked before the event is placed: a pipelined event cannot be taken back once later events
   * are placed after it.
   */
  async function once(sender: Sender, txnId: string, send: () => Promise<string>): Promise<string> {
    const key = `${sender.userId}\u0000${sender.deviceId}\u0000${txnId}`;
    for (let running = sending.get(key); running !== undefined; running = sending.get(key)) {
      try {
        return await running;
      } catch {
        // The first request failed: this one tries again.
      }
    }
    const attempt = (async () => (await storage.clientTxns.get(sender.userId, sender.deviceId, txnId)) ?? (await send()))();
    sending.set(key, attempt);
    try {
      return await attempt;
    } finally {
      if (sending.get(key) === attempt) sending.delete(key);
    }
  }

  /**
   * LM participant path (LM draft "Sending Events"): the LPDU goes to the room's hub, which
   * orders, completes and fans it out; the federation layer stores the echo and wakes syncs.
   */
  async function sendThroughHub(head: RoomHead, requests: EventRequest[]): Promise<{ placed: PlacedEvent[] }> {
    const request = requests[0];
    if (requests.length !== 1 || request === undefined) {
      throw new MatrixError(Errcode.FORBIDDEN, 403, `Room ${head.roomId} is hosted by ${head.hubServer}; this request cannot be sent through a remote hub`);
    }
    const link = requireHubLink(`Sending to ${head.roomId}, hosted by ${head.hubServer},`);
    const draft: EventDraft = { room_id: head.roomId, type: request.type, sender: request.sender, content: request.content, origin_server_ts: now() };
    if (request.stateKey !== undefined) draft.state_key = request.stateKey;
    const lpdu = buildLpdu(draft, head.hubServer, { serverName, key: deps.signingKey }, head.rules);
    // The request's own checks (e.g. redaction permissions) against this server's replica first.
    const refused = await request.check?.(writer.stateView(head), { eventId: "$pending", pdu: lpdu as unknown as Pdu });
    if (refused) throw refused;
    const echo = await link.sendLpdu(head.hubServer, lpdu);
    return { placed: [{ event: echo.event, roomSeq: echo.roomSeq, streamPos: echo.streamPos, index: 0 }] };
  }

  async function profileContent(userId: string): Promise<JsonObject> {
    const user = serverNameOf(userId) === serverName ? await storage.accounts.getUser(userId) : undefined;
    const content: JsonObject = {};
    if (user?.displayname) content.displayname = user.displayname;
    if (user?.avatarUrl) content.avatar_url = user.avatarUrl;
    return content;
  }

  /** A room ID and servers that may know it: `via`/`server_name` hints, an alias's answer. */
  async function resolveRoomAndServers(roomIdOrAlias: string, hints: string[]): Promise<{ roomId: string; servers: string[] }> {
    if (roomIdOrAlias.startsWith("#") && serverNameOf(roomIdOrAlias) !== serverName && serverNameOf(roomIdOrAlias) !== undefined) {
      const answer = await requireHubLink(`Resolving ${roomIdOrAlias}`).resolveAlias(roomIdOrAlias);
      return { roomId: answer.roomId, servers: [...answer.servers, ...hints] };
    }
    return { roomId: await resolveRoom(roomIdOrAlias), servers: hints };
  }

  async function resolveRoom(roomIdOrAlias: string): Promise<string> {
    if (roomIdOrAlias.startsWith("!")) return roomIdOrAlias;
    if (roomIdOrAlias.startsWith("#")) {
      const alias = await storage.aliases.get(roomIdOrAlias);
      if (!alias) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room alias ${roomIdOrAlias} not found`);
      return alias.roomId;
    }
    throw new MatrixError(Errcode.INVALID_PARAM, 400, `${roomIdOrAlias} is neither a room ID nor a room alias`);
  }

  async function sendMembership(sender: Sender, roomId: string, target: string, content: JsonObject): Promise<void> {
    await append(roomId, [{ type: "m.room.member", stateKey: target, content, sender: sender.userId }]);
  }

  /**
   * An invite of a user whose server is not in the room (LM draft "Invites"): the hub has the
   * invitee's server sign the event before appending it; a participant sends the LPDU to the hub's
   * `invite` endpoint, which does the same.
   */
  async function inviteRemote(sender: Sender, head: RoomHead, target: string, content: JsonObject): Promise<void> {
    const link = requireHubLink(`Inviting ${target}`);
    if (writer.isHostedHere(head)) {
      const placed = await writer.withRoom(head.roomId, async () => {
        const current = await requireHead(head.roomId);
        const stripped = await federation.strippedState(head.roomId);
        return writer.appendLocked(current, [
          { type: "m.room.member", stateKey: target, content, sender: sender.userId, countersign: (event) => link.countersignInvite(event, current.rules.id, stripped) },
        ]);
      });
      notifyPlaced(head.roomId, placed);
      return;
    }
    const draft: EventDraft = { room_id: head.roomId, type: "m.room.member", state_key: target, sender: sender.userId, content, origin_server_ts: now() };
    await link.inviteThroughHub(head.hubServer, buildLpdu(draft, head.hubServer, { serverName, key: deps.signingKey }, head.rules), head.rules.id);
  }

  /** A room an admin blocked (admin API `DELETE /rooms/{roomId}` with `block`) takes no one in. */
  async function refuseIfBlocked(roomId: string): Promise<void> {
    if (await storage.blockedRooms.get(roomId)) throw new MatrixError(Errcode.FORBIDDEN, 403, `Room ${roomId} has been blocked by the server's administrators`);
  }

  function withReason(content: JsonObject, reason: string | undefined): JsonObject {
    return reason === undefined ? content : { ...content, reason };
  }

  const federation = createRoomFederation({ serverName, signingKey: deps.signingKey, storage, writer, logger, now, notifyPlaced, ...(deps.verifyPool ? { verifyPool: deps.verifyPool } : {}) });

  /** Whether this server takes part in a room hosted elsewhere: it holds its state and has a joined user. */
  function participating(head: RoomHead): boolean {
    return writer.stateView(head).get("m.room.create", "") !== undefined && (head.joinedServers.get(serverName) ?? 0) > 0;
  }

  /** Servers to try for a room this server is not in: the hub (the room ID's server) first. */
  function candidateServers(roomId: string, hints: string[]): string[] {
    const hub = serverNameOf(roomId);
    return [...new Set([...(hub === undefined ? [] : [hub]), ...hints])].filter((s) => s !== serverName);
  }

  const service: RoomService = {
    queries,
    decorator,
    federation,
    setHubLink(link) {
      hubLink = link;
    },

    async createRoom(sender, request) {
      const roomVersion = request.roomVersion ?? DEFAULT_ROOM_VERSION;
      const rules = getRoomVersion(roomVersion);
      // Only room versions whose auth rules are implemented can be hosted.
      if (!rules || rules.authRules !== "linearized") {
        throw new MatrixError(Errcode.UNSUPPORTED_ROOM_VERSION, 400, `Room version ${JSON.stringify(roomVersion)} is not supported`);
      }
      // Invitees on other servers are invited once the room exists (their servers sign the invites).
      const remoteInvitees = request.invite.filter((invitee) => serverNameOf(invitee) !== serverName);
      request = { ...request, invite: request.invite.filter((invitee) => serverNameOf(invitee) === serverName) };
      const alias = request.roomAliasName === undefined ? undefined : `#${request.roomAliasName}:${serverName}`;
      if (alias !== undefined && (await storage.aliases.get(alias))) throw new MatrixError(Errcode.ROOM_IN_USE, 400, `Room alias ${alias} is already in use`);
      const inviteeProfiles = new Map<string, JsonObject>();
      for (const invitee of request.invite) inviteeProfiles.set(invitee, await profileContent(invitee));
      const plan = planRoomCreation(request, {
        creator: sender.userId,
        roomVersion,
        creatorProfile: await profileContent(sender.userId),
        inviteeProfiles,
        ...(alias === undefined ? {} : { alias }),
      });
      const roomId = writer.newRoomId();
      const placed = await writer.createRoom(
        { roomId, roomVersion, creator: sender.userId, isPublic: request.visibility === "public", createdTs: now() },
        plan.createContent,
        plan.events.map((e) => ({ type: e.type, stateKey: e.stateKey, content: e.content, sender: sender.userId })),
        async (tx) => {
          if (alias !== undefined && !(await tx.aliases.create(alias, roomId, sender.userId))) {
            throw new MatrixError(Errcode.ROOM_IN_USE, 400, `Room alias ${alias} is already in use`);
          }
        },
      );
      notifyPlaced(roomId, placed);
      logger.info({ room_id: roomId, creator: sender.userId, events: placed.length }, "room created");
      for (const invitee of remoteInvitees) await service.changeMembership(sender, roomId, "invite", invitee);
      return { roomId };
    },

    async sendEvent(sender, roomId, event, txnId) {
      if (event.type === "m.room.create") throw new MatrixError(Errcode.FORBIDDEN, 403, "m.room.create cannot be sent into an existing room");
      if (event.type === "m.room.redaction" && event.stateKey === undefined) {
        const redacts = event.content.redacts;
        if (typeof redacts !== "string") throw new MatrixError(Errcode.BAD_JSON, 400, "m.room.redaction needs content.redacts");
        return service.redact(sender, roomId, redacts, typeof event.content.reason === "string" ? event.content.reason : undefined, txnId ?? `redact-${now()}`);
      }
      const requests: EventRequest[] = [{ type: event.type, ...(event.stateKey === undefined ? {} : { stateKey: event.stateKey }), content: event.content, sender: sender.userId }];
      if (txnId === undefined) {
        const { placed } = await append(roomId, requests, { pipelined: true });
        return { eventId: (placed[0] as PlacedEvent).event.eventId };
      }
      const eventId = await once(sender, txnId, async () => {
        const { placed } = await append(roomId, requests, {
          pipelined: true,
          persistExtra: (tx, placed) => tx.clientTxns.put(sender.userId, sender.deviceId, txnId, (placed[0] as PlacedEvent).event.eventId, now()),
          afterCommit: (_head, placed) => echoes.remember((placed[0] as PlacedEvent).event.eventId, sender.userId, sender.deviceId, txnId),
        });
        return (placed[0] as PlacedEvent).event.eventId;
      });
      return { eventId };
    },

    async redact(sender, roomId, targetEventId, reason, txnId) {
      // Not pipelined: the redaction changes the head (the target's redacted copy) in afterCommit,
      // which the room's next events must be placed and authorized after.
      const eventId = await once(sender, txnId, async () => {
        if (!isValidEventId(targetEventId)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${targetEventId} is not an event ID`);
        const target = await storage.events.getEvent(targetEventId);
        if (!target || target.roomId !== roomId) throw new MatrixError(Errcode.NOT_FOUND, 404, `Event ${targetEventId} not found in ${roomId}`);
        const content: JsonObject = { redacts: targetEventId };
        if (reason !== undefined) content.reason = reason;
        // Outside the transaction: a head read inside it could wait for the connection it holds.
        const redactedPdu = writer.redactedCopy(await requireHead(roomId), { eventId: target.eventId, pdu: target.pdu });
        const { placed } = await append(
          roomId,
          [
            {
              type: "m.room.redaction",
              content,
              sender: sender.userId,
              // LM auth rules have no redaction rule: the original sender, or power >= `redact`.
              check: (state) => {
                if (target.pdu.sender === sender.userId) return undefined;
                const levels = powerLevelsFrom(state);
                const needed = levels.actionLevel("redact");
                const has = levels.userLevel(sender.userId);
                return has >= needed ? undefined : new MatrixError(Errcode.FORBIDDEN, 403, `Redacting others' events requires power level ${needed}, you have ${has}`);
              },
            },
          ],
          {
            persistExtra: async (tx, placed) => {
              const redaction = (placed[0] as PlacedEvent).event;
              if (target.redactedBy === null) await tx.events.redactEvent(target.eventId, redaction.eventId, redactedPdu);
              await tx.clientTxns.put(sender.userId, sender.deviceId, txnId, redaction.eventId, now());
            },
            afterCommit: (head, placed) => {
              writer.applyRedaction(head, target.eventId, (placed[0] as PlacedEvent).event.eventId, redactedPdu);
              echoes.remember((placed[0] as PlacedEvent).event.eventId, sender.userId, sender.deviceId, txnId);
            },
          },
        );
        return (placed[0] as PlacedEvent).event.eventId;
      });
      return { eventId };
    },

    async join(sender, roomIdOrAlias, reason, serverHints = []) {
      const { roomId, servers } = await resolveRoomAndServers(roomIdOrAlias, serverHints);
      await refuseIfBlocked(roomId);
      const head = await writer.head(roomId);
      const profile = await profileContent(sender.userId);
      if (!head || (!writer.isHostedHere(head) && !participating(head))) {
        // Not in the room: the make_join/send_join handshake through its hub (LM draft "Joins").
        const link = requireHubLink(`Joining ${roomIdOrAlias}, which is not known here,`);
        const tryServers = candidateServers(roomId, servers);
        if (tryServers.length === 0) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room ${roomIdOrAlias} is not known here`);
        await link.changeMembershipRemotely("join", sender.userId, roomId, tryServers, withReason({ ...profile, membership: "join" }, reason));
        return { roomId };
      }
      const current = writer.stateView(head).get("m.room.member", sender.userId)?.pdu.content;
      // Joining again with the same profile changes nothing: no new event.
      if (current?.membership === "join" && current.displayname === profile.displayname && current.avatar_url === profile.avatar_url) return { roomId };
      await sendMembership(sender, roomId, sender.userId, withReason({ ...profile, membership: "join" }, reason));
      return { roomId };
    },

    async leave(sender, roomId, reason) {
      const head = await requireHead(roomId);
      const membership = membershipOf(writer.stateView(head), sender.userId);
      if (membership === "leave") return;
      if (membership === "ban") throw new MatrixError(Errcode.FORBIDDEN, 403, `${sender.userId} is banned from ${roomId}`);
      if (!writer.isHostedHere(head) && !participating(head)) {
        // Rejecting an invite (or retracting a knock) of a room this server is not in (LM draft
        // "Rejecting Invites and Leaves").
        await requireHubLink(`Leaving ${roomId}`).changeMembershipRemotely("leave", sender.userId, roomId, candidateServers(roomId, [head.hubServer]), withReason({ membership: "leave" }, reason));
        return;
      }
      await sendMembership(sender, roomId, sender.userId, withReason({ membership: "leave" }, reason));
    },

    async knock(sender, roomIdOrAlias, reason, serverHints = []) {
      const { roomId, servers } = await resolveRoomAndServers(roomIdOrAlias, serverHints);
      await refuseIfBlocked(roomId);
      const head = await writer.head(roomId);
      if (!head || (!writer.isHostedHere(head) && !participating(head))) {
        const tryServers = candidateServers(roomId, servers);
        if (tryServers.length === 0) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room ${roomIdOrAlias} is not known here`);
        await requireHubLink(`Knocking on ${roomIdOrAlias}`).changeMembershipRemotely("knock", sender.userId, roomId, tryServers, withReason({ ...(await profileContent(sender.userId)), membership: "knock" }, reason));
        return { roomId };
      }
      await sendMembership(sender, roomId, sender.userId, withReason({ ...(await profileContent(sender.userId)), membership: "knock" }, reason));
      return { roomId };
    },

    async changeMembership(sender, roomId, action, target, reason) {
      if (!isValidUserId(target)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${target} is not a user ID`);
      const head = await requireHead(roomId);
      const targetMembership = membershipOf(writer.stateView(head), target);
      let content: JsonObject;
      switch (action) {
        case "invite":
          if (targetMembership === "invite") return;
          await refuseIfBlocked(roomId);
          content = { ...(await profileContent(target)), membership: "invite" };
          if (serverNameOf(target) !== serverName && (head.joinedServers.get(serverNameOf(target) as string) ?? 0) === 0) {
            await inviteRemote(sender, head, target, withReason(content, reason));
            return;
          }
          break;
        case "kick":
          if (targetMembership !== "join" && targetMembership !== "invite" && targetMembership !== "knock") {
            throw new MatrixError(Errcode.FORBIDDEN, 403, `${target} is not in the room (membership ${targetMembership})`);
          }
          content = { membership: "leave" };
          break;
        case "ban":
          content = { membership: "ban" };
          break;
        case "unban":
          if (targetMembership !== "ban") throw new MatrixError(Errcode.FORBIDDEN, 403, `${target} is not banned`);
          content = { membership: "leave" };
          break;
      }
      await sendMembership(sender, roomId, target, withReason(content, reason));
    },

    async forget(sender, roomId) {
      const head = await requireHead(roomId);
      const membership = membershipOf(writer.stateView(head), sender.userId);
      if (membership === "join" || membership === "invite" || membership === "knock") {
        throw new MatrixError(Errcode.UNKNOWN, 400, `${sender.userId} is still in room ${roomId} (membership ${membership}); leave it first`);
      }
      // Never a member: nothing to forget.
      if (writer.stateView(head).get("m.room.member", sender.userId) === undefined) return;
      await storage.events.forgetRoom(sender.userId, roomId);
    },

    purge(roomId) {
      return writer.withRoom(roomId, async () => {
        // Appends released the lock before their commit: none may land after the purge.
        await writer.settled(roomId);
        const purged = await storage.purge.purgeRoom(roomId);
        writer.forget(roomId);
        deps.memberships.forgetRoom(roomId);
        deps.recentEvents.forgetRoom(roomId);
        return purged;
      });
    },

    async putReceipt(sender, roomId, receiptType, eventId, threadId) {
      if (receiptType === "m.fully_read") return service.setReadMarkers(sender, roomId, { fullyRead: eventId });
      if (!RECEIPT_TYPES.has(receiptType)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `Unknown receipt type ${receiptType}`);
      await queries.requireJoined(sender.userId, roomId);
      await queries.getVisibleEvent(sender, roomId, eventId);
      const ts = now();
      const streamPos = await streams.withPositions(1, async ([pos]) => {
        notifier.recordChange("receipts", [roomId], pos as number);
        await storage.transaction((tx) => tx.receipts.put({ roomId, userId: sender.userId, receiptType, threadId, eventId, ts, streamPos: pos as number }));
        return pos as number;
      });
      notifier.notifyRoom(roomId, streamPos);
      await deps.remoteEdus?.receipt(roomId, sender.userId, { receiptType, eventId, ts, threadId });
    },

    async setReadMarkers(sender, roomId, markers) {
      await queries.requireJoined(sender.userId, roomId);
      for (const eventId of [markers.fullyRead, markers.read, markers.readPrivate]) {
        if (eventId !== undefined) await queries.getVisibleEvent(sender, roomId, eventId);
      }
      const receipts: Array<[string, string]> = [];
      if (markers.read !== undefined) receipts.push(["m.read", markers.read]);
      if (markers.readPrivate !== undefined) receipts.push(["m.read.private", markers.readPrivate]);
      const count = receipts.length + (markers.fullyRead === undefined ? 0 : 1);
      if (count === 0) return;
      const last = await streams.withPositions(count, async (positions) => {
        const lastPos = positions[positions.length - 1] as number;
        if (markers.fullyRead !== undefined) notifier.recordChange("account_data", [sender.userId], lastPos);
        if (receipts.length > 0) notifier.recordChange("receipts", [roomId], lastPos);
        await storage.transaction(async (tx) => {
          let i = 0;
          if (markers.fullyRead !== undefined) await tx.accountData.put(sender.userId, roomId, "m.fully_read", { event_id: markers.fullyRead }, positions[i++] as number);
          for (const [receiptType, eventId] of receipts) {
            await tx.receipts.put({ roomId, userId: sender.userId, receiptType, threadId: null, eventId, ts: now(), streamPos: positions[i++] as number });
          }
        });
        return positions[positions.length - 1] as number;
      });
      if (markers.fullyRead !== undefined) notifier.notifyUsers([sender.userId], last);
      if (receipts.length > 0) notifier.notifyRoom(roomId, last);
      if (markers.read !== undefined) await deps.remoteEdus?.receipt(roomId, sender.userId, { receiptType: "m.read", eventId: markers.read, ts: now(), threadId: null });
    },

    async leaveAllRooms(userId) {
      const memberships = await deps.memberships.membershipsOf(userId);
      for (const [roomId, membership] of memberships) {
        if (membership !== "join" && membership !== "invite" && membership !== "knock") continue;
        try {
          await service.leave({ userId, deviceId: "" }, roomId, "account deactivated");
        } catch (error) {
          logger.warn({ err: error, room_id: roomId, user_id: userId }, "deactivated user could not leave a room");
        }
      }
    },

    async profileChanged(userId, profile) {
      const memberships = await deps.memberships.membershipsOf(userId);
      for (const [roomId, membership] of memberships) {
        if (membership !== "join") continue;
        const content: JsonObject = { membership: "join" };
        if (profile.displayname !== null) content.displayname = profile.displayname;
        if (profile.avatarUrl !== null) content.avatar_url = profile.avatarUrl;
        try {
          await append(roomId, [{ type: "m.room.member", stateKey: userId, content, sender: userId }]);
        } catch (error) {
          // One room refusing (e.g. a power-level quirk) must not stop the others.
          logger.warn({ err: error, room_id: roomId, user_id: userId }, "profile change not propagated");
        }
      }
    },
  };
  return service;
}

export type { CreateRoomRequest, Viewer };
