// The room service's side of federation (LM draft "Sending Events", "Room Membership"): what the
// federation layer asks of rooms once it has parsed a request and fetched the keys it needs.
// Every write goes through the room's single writer, under the room's lock, like a local send:
//   - a hub places LPDUs from participants after its tip (acceptLpdu) and queues the results for
//     every destination in the same transaction;
//   - a participant appends the PDUs its hub sends (receivePdu) to its replica, in order;
//   - a participant creates its replica from a hub's `send_join` answer;
//   - an invite for a local user of a room this server is not in is kept as a one-event stub.
// Nothing here speaks HTTP or fetches keys: callers pass a key lookup that already holds them.
import type { Logger } from "pino";
import { authorize } from "../auth-rules/index.js";
import { Errcode, MatrixError } from "../core/errors.js";
import type { Lpdu, Pdu, RoomEvent, RoomStateView } from "../core/events.js";
import { decodeBase64 } from "../core/base64.js";
import { computeEventId, eventIdOfSignedBytes } from "../core/hashes.js";
import { serverNameOf } from "../core/identifiers.js";
import { isJsonObject, type JsonObject } from "../core/json.js";
import { redact } from "../core/redaction.js";
import { getRoomVersion, type RoomVersionRules } from "../core/room-versions.js";
import type { Ed25519Verifier } from "../core/ed25519.js";
import { signedBytesOf, type SigningKey, type VerifyKeyLookup } from "../core/signing.js";
import { acceptLpdu, checkPduIntegrity, completeLpdu, receivePdu, type ServerIdentity } from "../room-dag/index.js";
import type { Storage, StorageTx } from "../storage/ports.js";
import { stateKeyOf, type PlacedEvent, type RoomHead, type RoomWriter } from "./room-writer.js";
import { createVerifyPool, type VerifyJob, type VerifyPool } from "./verify-pool.js";

/** What became of one received (L)PDU: keyed by the event ID of the object as received. */
export interface ReceiveResult {
  receivedId: string;
  /** Absent: accepted (or already known, or dropped — the draft lists only rejections). */
  error?: string;
  /** The event placed (hub: the completed PDU). */
  placed?: PlacedEvent;
}

export interface RoomFederationDeps {
  serverName: string;
  signingKey: SigningKey;
  storage: Storage;
  writer: RoomWriter;
  logger: Logger;
  now: () => number;
  notifyPlaced: (roomId: string, placed: PlacedEvent[]) => void;
  /** Verifies a send_join answer's signatures on two cores; one is made here when not given. */
  verifyPool?: VerifyPool;
}

export type MembershipChange = "join" | "leave" | "knock";

export interface RoomFederation {
  /** The room's version and whether this server is its hub; undefined for an unknown room. */
  roomInfo(roomId: string): Promise<{ roomVersion: string; rules: RoomVersionRules; hostedHere: boolean; hubServer: string; isStub: boolean } | undefined>;
  /** Hub: LPDUs from `origin` for one room, placed in order; refusals keyed by the LPDU's ID. */
  acceptLpdus(roomId: string, origin: string, lpdus: JsonObject[], keys: VerifyKeyLookup): Promise<ReceiveResult[]>;
  /**
   * Hub: a participant's invite LPDU (LM draft "Invites"): completed after the tip, authorized,
   * countersigned by the invitee's server (`countersign`, which may refuse), then appended, all
   * under the room's lock. Refusals are MatrixErrors.
   */
  acceptInviteLpdu(roomId: string, origin: string, lpdu: JsonObject, keys: VerifyKeyLookup, countersign: (event: RoomEvent) => Promise<RoomEvent>): Promise<RoomEvent>;
  /** receivePdus for a caller that holds the room's lock (a join applying what arrived meanwhile). */
  receivePdusLocked(roomId: string, origin: string, pdus: JsonObject[], keys: VerifyKeyLookup): Promise<ReceiveResult[]>;
  /** Participant: PDUs from the room's hub, appended in order to the replica. */
  receivePdus(roomId: string, origin: string, pdus: JsonObject[], keys: VerifyKeyLookup): Promise<ReceiveResult[]>;
  /**
   * Hub, make_CHANGE: the partial LPDU `userId` would send, after checking the auth rules would
   * allow it now (M_FORBIDDEN otherwise).
   */
  membershipTemplate(roomId: string, userId: string, change: MembershipChange): Promise<{ event: JsonObject; roomVersion: string }>;
  /** Hub: the state before the event at `roomSeq` and its auth chain (send_join's answer). */
  stateAndAuthChainBefore(roomId: string, roomSeq: number): Promise<{ state: Pdu[]; authChain: Pdu[] }>;
  /** Hub: the stripped state of the room (invites, knocks). */
  strippedState(roomId: string): Promise<JsonObject[]>;
  /**
   * Participant: creates (or completes, over an invite stub) the replica from a hub's send_join
   * answer. `state` is checked (steps 1–3), `event` too and authorized against it.
   */
  applyJoin(roomId: string, roomVersion: string, hubServer: string, state: unknown[], event: unknown, keys: VerifyKeyLookup): Promise<PlacedEvent[]>;
  /** Invited server: keeps the invite of a local user to a room this server is not in. */
  storeInviteStub(roomVersion: string, event: RoomEvent, strippedState: JsonObject[]): Promise<void>;
  /** Runs `work` holding the room's lock (a join keeps it across its send_join round trip). */
  withRoom<T>(roomId: string, work: () => Promise<T>): Promise<T>;
}

/** Signatures handed to the verifying worker at a time while a send_join answer is checked. */
const VERIFY_BLOCK = 1024;

/** Whether the head holds the room's state (an invite or knock stub holds only its own event). */
function hasCreate(head: RoomHead): boolean {
  return head.state.has(stateKeyOf("m.room.create", ""));
}

export function createRoomFederation(deps: RoomFederationDeps): RoomFederation {
  const { storage, writer, serverName, now, logger } = deps;
  const identity: ServerIdentity = { serverName, key: deps.signingKey };
  const verifyPool = deps.verifyPool ?? createVerifyPool();

  function receivedIdOf(raw: JsonObject, rules: RoomVersionRules): string {
    try {
      return computeEventId(raw, rules);
    } catch {
      return "$invalid";
    }
  }

  async function requireHostedHead(roomId: string): Promise<RoomHead> {
    const head = await writer.head(roomId);
    if (!head || !hasCreate(head)) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room ${roomId} is not known here`);
    if (!writer.isHostedHere(head)) throw new MatrixError(Errcode.WRONG_SERVER, 400, `${serverName} is not the hub of ${roomId}; ${head.hubServer} is`);
    return head;
  }

  /** receivePdus without taking the room's lock: the caller holds it. */
  async function receiveLocked(roomId: string, origin: string, pdus: JsonObject[], keys: VerifyKeyLookup): Promise<ReceiveResult[]> {
    const head = await writer.head(roomId);

    if (!head) return pdus.map(() => ({ receivedId: "$unknown", error: `room ${roomId} is not known here` }));
    const results: ReceiveResult[] = pdus.map((raw) => ({ receivedId: receivedIdOf(raw, head.rules) }));
    if (writer.isHostedHere(head)) {
      for (const r of results) r.error = `${serverName} is the hub of ${roomId}: send LPDUs`;
      return results;
    }
    if (origin !== head.hubServer) {
      for (const r of results) r.error = `${origin} is not the hub of ${roomId}`;
      return results;
    }
    const pending: number[] = [];
    const seen = new Set<string>();
    // An event placed right after the one before it is new; anything else may be a repeat (the
    // join event send_join returned, then the hub's fan-out; a transaction replayed after a crash).
    let chainTip = head.lastEvent?.eventId;
    for (let i = 0; i < pdus.length; i++) {
      const id = (results[i] as ReceiveResult).receivedId;
      const prev = (pdus[i] as JsonObject).prev_events;
      const follows = Array.isArray(prev) && prev[0] === chainTip && chainTip !== undefined && id !== chainTip;
      if (seen.has(id) || (!follows && (await storage.events.getEvent(id)) !== undefined)) continue;
      seen.add(id);
      pending.push(i);
      chainTip = id;
    }
    const stub = !hasCreate(head);
    const violations: Array<{ eventId: string; reason: string }> = [];
    const { placed, refused } = await writer.appendBuiltLocked(
      head,
      pending.map((i) => ({
        build: (tip) => {
          if (stub) {
            // An invite stub has no state to authorize against: steps 1–3 only.
            const checked = checkPduIntegrity(pdus[i], { rules: head.rules, keys, roomId, hubServer: head.hubServer });
            if (checked.action === "drop") return { ok: false, error: new MatrixError(Errcode.FORBIDDEN, 403, checked.reason) };
            return { ok: true, event: checked.event };
          }
          const outcome = receivePdu(pdus[i], { rules: head.rules, keys, stateBefore: tip, roomId });
          switch (outcome.action) {
            case "accept":
            case "store-redacted":
              return { ok: true, event: outcome.event };
            case "soft-fail":
              return { ok: true, event: outcome.event, softFailed: true };
            case "reject":
              // The hub appended what the rules forbid: keep the log identical to the hub's but
              // out of state, and tell the admins (LM draft "Receiving Events/PDUs").
              violations.push({ eventId: outcome.eventId, reason: `${outcome.reason} (auth rule ${outcome.rule})` });
              return { ok: true, event: { eventId: outcome.eventId, pdu: pdus[i] as unknown as Pdu }, softFailed: true };
            case "drop":
              return { ok: false, error: new MatrixError(Errcode.FORBIDDEN, 403, `step ${outcome.step}: ${outcome.reason}`) };
          }
        },
      })),
      // Runs after every build above, so `violations` is complete.
      async (tx) => {
        for (const v of violations) await tx.federation.addHubViolation({ roomId, eventId: v.eventId, hubServer: head.hubServer, reason: v.reason, detectedTs: now() });
      },
    );
    for (const v of violations) logger.warn({ room_id: roomId, event_id: v.eventId, hub: head.hubServer, reason: v.reason }, "the hub appended an event the auth rules forbid");
    for (const p of placed) (results[pending[p.index] as number] as ReceiveResult).placed = p;
    for (const r of refused) (results[pending[r.index] as number] as ReceiveResult).error = r.error.message;
    deps.notifyPlaced(roomId, placed);
    return results;

  }

  /**
   * Steps 1–3 of every state event of a send_join answer. The signatures are collected while the
   * events are checked and then verified all at once on two cores (verify-pool.ts); an event with
   * any signature that does not verify is left out, as checkPduIntegrity would have dropped it.
   */
  async function checkStateIntegrity(roomId: string, rules: RoomVersionRules, hubServer: string, state: unknown[], keys: VerifyKeyLookup): Promise<RoomEvent[]> {
    let jobs: VerifyJob[] = [];
    let jobEvents: number[] = [];
    // While this thread encodes events, the worker already verifies what is ready: three blocks
    // in five go to it at once, the rest wait for the end (encoding costs this thread about a
    // fifth of what verifying everything costs, so both threads finish together).
    const handedOver: Array<{ events: number[]; verified: Promise<boolean[]> }> = [];
    const kept: { jobs: VerifyJob[]; events: number[] } = { jobs: [], events: [] };
    let blocks = 0;
    const flush = (): void => {
      if (blocks++ % 5 < 3) handedOver.push({ events: jobEvents, verified: verifyPool.verifyOnWorker(jobs) });
      else {
        kept.jobs.push(...jobs);
        kept.events.push(...jobEvents);
      }
      jobs = [];
      jobEvents = [];
    };
    let current = 0;
    const deferred = new Map<Ed25519Verifier, Ed25519Verifier>();
    const collectingKeys: VerifyKeyLookup = (entity, keyId) => {
      const verifier = keys(entity, keyId);
      if (verifier === undefined) return undefined;
      let collecting = deferred.get(verifier);
      if (collecting === undefined) {
        collecting = {
          publicKey: verifier.publicKey,
          verify: (message, signature) => {
            jobs.push({ verifier, message, signature });
            jobEvents.push(current);
            return true;
          },
        };
        deferred.set(verifier, collecting);
      }
      return collecting;
    };
    const checked: Array<RoomEvent | undefined> = [];
    for (const item of state) {
      current = checked.length;
      const outcome = checkPduIntegrity(item, { rules, keys: collectingKeys, roomId, hubServer });
      if (outcome.action === "drop") logger.warn({ room_id: roomId, reason: outcome.reason }, "send_join: a state event failed its checks and was left out");
      checked.push(outcome.action === "drop" ? undefined : outcome.event);
      if (jobs.length >= VERIFY_BLOCK) flush();
    }
    kept.jobs.push(...jobs);
    kept.events.push(...jobEvents);
    const here = kept.jobs.map((job) => job.verifier.verify(job.message, job.signature));
    const outcomes = [{ events: kept.events, verified: Promise.resolve(here) }, ...handedOver];
    for (const { events, verified } of outcomes) {
      (await verified).forEach((ok, j) => {
        const index = events[j] as number;
        if (ok || checked[index] === undefined) return;
        logger.warn({ room_id: roomId, event_id: checked[index]?.eventId }, "send_join: a state event's signature does not verify; it was left out");
        checked[index] = undefined;
      });
    }
    return checked.filter((event): event is RoomEvent => event !== undefined);
  }

  /**
   * Hub: the LPDUs' own IDs and their senders' signatures, verified on two cores before the
   * pipeline runs (verify-pool.ts). An LPDU's ID and its signature cover the same bytes (the
   * redacted LPDU without `signatures` and `unsigned`), so both come from one encoding. The lookup
   * returned answers acceptLpdu's step 2 from these results for exactly the (key, bytes, signature)
   * verified here, and verifies anything else itself.
   */
  async function preverifyLpdus(lpdus: readonly JsonObject[], rules: RoomVersionRules, keys: VerifyKeyLookup): Promise<{ receivedIds: string[]; keys: VerifyKeyLookup }> {
    const jobs: VerifyJob[] = [];
    const receivedIds = lpdus.map((raw) => {
      let bytes: Uint8Array;
      try {
        bytes = signedBytesOf(redact(raw, rules.redaction), rules.canonicalJsonKeyOrder);
      } catch {
        return "$invalid";
      }
      const server = typeof raw.sender === "string" ? serverNameOf(raw.sender) : undefined;
      const byKey = isJsonObject(raw.signatures) && server !== undefined ? raw.signatures[server] : undefined;
      if (server !== undefined && isJsonObject(byKey)) {
        for (const [keyId, encoded] of Object.entries(byKey)) {
          const verifier = keys(server, keyId);
          const signature = typeof encoded === "string" ? decodeBase64(encoded) : undefined;
          if (verifier !== undefined && signature !== undefined) jobs.push({ verifier, message: bytes, signature });
        }
      }
      return eventIdOfSignedBytes(bytes);
    });
    const verified = await verifyPool.verifyAll(jobs);
    const known = new Map<Ed25519Verifier, Map<string, Uint8Array>>();
    const signatureKey = (signature: Uint8Array): string => Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString("latin1");
    jobs.forEach((job, j) => {
      if (!verified[j]) return;
      let byVerifier = known.get(job.verifier);
      if (!byVerifier) known.set(job.verifier, (byVerifier = new Map()));
      byVerifier.set(signatureKey(job.signature), job.message);
    });
    const memo = new Map<Ed25519Verifier, Ed25519Verifier>();
    const lookup: VerifyKeyLookup = (entity, keyId) => {
      const verifier = keys(entity, keyId);
      const byVerifier = verifier === undefined ? undefined : known.get(verifier);
      if (verifier === undefined || byVerifier === undefined) return verifier;
      let answering = memo.get(verifier);
      if (!answering) {
        answering = {
          publicKey: verifier.publicKey,
          verify: (message, signature) => {
            const seen = byVerifier.get(signatureKey(signature));
            return (seen !== undefined && Buffer.compare(seen, message) === 0) || verifier.verify(message, signature);
          },
        };
        memo.set(verifier, answering);
      }
      return answering;
    };
    return { receivedIds, keys: lookup };
  }

  const federation: RoomFederation = {
    withRoom: (roomId, work) => writer.withRoom(roomId, work),

    async roomInfo(roomId) {
      const head = await writer.head(roomId);
      if (!head) return undefined;
      return { roomVersion: head.rules.id, rules: head.rules, hostedHere: writer.isHostedHere(head), hubServer: head.hubServer, isStub: !hasCreate(head) };
    },

    async acceptLpdus(roomId, origin, lpdus, keys) {
      return writer.withRoom(roomId, async () => {
        const head = await requireHostedHead(roomId);
        const checked = await preverifyLpdus(lpdus, head.rules, keys);
        const results: ReceiveResult[] = checked.receivedIds.map((receivedId) => ({ receivedId }));
        // A retried LPDU (a transaction replayed after a crash, send_join retried) is placed once.
        const pending: number[] = [];
        const completed = await storage.federation.getCompletedLpdus(checked.receivedIds);
        for (let i = 0; i < lpdus.length; i++) {
          const result = results[i] as ReceiveResult;
          const sender = (lpdus[i] as JsonObject).sender;
          if (typeof sender !== "string" || serverNameOf(sender) !== origin) {
            result.error = `sender ${String(sender)} does not belong to the sending server ${origin}`;
            continue;
          }
          if (completed.has(result.receivedId)) continue;
          pending.push(i);
        }
        const { placed, refused } = await writer.appendBuiltLocked(
          head,
          pending.map((i) => ({
            build: (tip) => {
              const outcome = acceptLpdu(lpdus[i], { rules: head.rules, keys: checked.keys, tip, hub: identity, roomId });
              if (outcome.action === "accept") return { ok: true, event: outcome.event };
              const rule = outcome.rule === undefined ? "" : ` (auth rule ${outcome.rule})`;
              return { ok: false, error: new MatrixError(Errcode.FORBIDDEN, 403, `${outcome.reason}${rule}`) };
            },
          })),
          async (tx, placedEvents) => {
            const rows = placedEvents.map((p) => ({ lpduId: (results[pending[p.index] as number] as ReceiveResult).receivedId, eventId: p.event.eventId }));
            await tx.federation.putCompletedLpdus(rows, origin, now());
          },
        );
        for (const p of placed) (results[pending[p.index] as number] as ReceiveResult).placed = p;
        for (const r of refused) (results[pending[r.index] as number] as ReceiveResult).error = r.error.message;
        deps.notifyPlaced(roomId, placed);
        return results;
      });
    },

    async acceptInviteLpdu(roomId, origin, lpdu, keys, countersign) {
      return writer.withRoom(roomId, async () => {
        const head = await requireHostedHead(roomId);
        const sender = lpdu.sender;
        if (typeof sender !== "string" || serverNameOf(sender) !== origin) throw new MatrixError(Errcode.FORBIDDEN, 403, `sender ${String(sender)} does not belong to ${origin}`);
        const tip = { ...writer.stateView(head), lastEvent: head.lastEvent };
        const outcome = acceptLpdu(lpdu, { rules: head.rules, keys, tip, hub: identity, roomId });
        if (outcome.action !== "accept") throw new MatrixError(Errcode.FORBIDDEN, 403, `${outcome.reason}${outcome.rule === undefined ? "" : ` (auth rule ${outcome.rule})`}`);
        // The tip cannot move while the invitee's server signs: the room's lock is held.
        const signed = await countersign(outcome.event);
        const lpduId = receivedIdOf(lpdu, head.rules);
        const { placed } = await writer.appendBuiltLocked(head, [{ build: () => ({ ok: true, event: signed }) }], async (tx, p) => {
          for (const e of p) await tx.federation.putCompletedLpdu(lpduId, e.event.eventId, origin, now());
        });
        deps.notifyPlaced(roomId, placed);
        return signed;
      });
    },

    receivePdus: (roomId, origin, pdus, keys) => writer.withRoom(roomId, () => receiveLocked(roomId, origin, pdus, keys)),
    receivePdusLocked: (roomId, origin, pdus, keys) => receiveLocked(roomId, origin, pdus, keys),

    async membershipTemplate(roomId, userId, change) {
      const head = await requireHostedHead(roomId);
      const content: JsonObject = { membership: change };
      const lpdu: Lpdu = {
        room_id: roomId,
        type: "m.room.member",
        state_key: userId,
        sender: userId,
        content,
        origin_server_ts: now(),
        hub_server: serverName,
        hashes: { lpdu: { sha256: "" } },
        signatures: {},
      } as unknown as Lpdu;
      // Would the rules allow it now? (LM draft "Make and Send Handshake"; send_CHANGE checks again.)
      const tip = { ...writer.stateView(head), lastEvent: head.lastEvent };
      const probe = completeLpdu(lpdu, tip, identity, head.rules);
      const verdict = authorize(probe.pdu, tip, head.rules, { kind: "verified" });
      if (!verdict.ok) throw new MatrixError(Errcode.FORBIDDEN, 403, `${userId} may not ${change} ${roomId}: ${verdict.reason} (auth rule ${verdict.rule})`);
      const event: JsonObject = { room_id: roomId, type: "m.room.member", state_key: userId, sender: userId, content, origin_server_ts: now(), hub_server: serverName };
      return { event, roomVersion: head.rules.id };
    },

    async stateAndAuthChainBefore(roomId, roomSeq) {
      const state = await storage.events.getStateBefore(roomId, roomSeq);
      // The auth chain: the auth events of the state, and theirs, recursively (LM draft "send_join").
      const inState = new Map(state.map((e) => [e.eventId, e.pdu]));
      const chain = new Map<string, Pdu>();
      let wanted = state.flatMap((e) => e.pdu.auth_events ?? []);
      while (wanted.length > 0) {
        // One read per level for what the state does not hold (old memberships' auth events).
        const missing = wanted.filter((id) => !chain.has(id) && !inState.has(id));
        const stored = new Map((missing.length > 0 ? await storage.events.getEvents(missing) : []).map((e) => [e.eventId, e.pdu]));
        const next: string[] = [];
        for (const id of wanted) {
          if (chain.has(id)) continue;
          const pdu = inState.get(id) ?? stored.get(id);
          if (!pdu) continue;
          chain.set(id, pdu);
          next.push(...(pdu.auth_events ?? []));
        }
        wanted = next;
      }
      // In log order: a receiver that replays the state (eigen-server does) finds each event's auth events before it.
      const seqOf = new Map(state.map((e) => [e.eventId, e.roomSeq]));
      const ordered = [...state].sort((x, y) => x.roomSeq - y.roomSeq);
      const authChain = [...chain.entries()].sort(([x], [y]) => (seqOf.get(x) ?? 0) - (seqOf.get(y) ?? 0)).map(([, pdu]) => pdu);
      return { state: ordered.map((e) => e.pdu), authChain };
    },

    async strippedState(roomId) {
      const state = await storage.events.getCurrentState(roomId);
      return state.filter((e) => STRIPPED_TYPES.has(e.pdu.type)).map((e) => ({ type: e.pdu.type, state_key: e.pdu.state_key ?? "", sender: e.pdu.sender, content: e.pdu.content }));
    },

    async applyJoin(roomId, roomVersion, hubServer, state, raw, keys) {
      const rules = getRoomVersion(roomVersion);
      if (!rules || rules.authRules !== "linearized") throw new MatrixError(Errcode.INCOMPATIBLE_ROOM_VERSION, 400, `room version ${roomVersion} is not supported`);
      const checkedState = await checkStateIntegrity(roomId, rules, hubServer, state, keys);
      const byKey = new Map<string, RoomEvent>();
      for (const event of checkedState) if (event.pdu.state_key !== undefined) byKey.set(stateKeyOf(event.pdu.type, event.pdu.state_key), event);
      const stateView: RoomStateView = { get: (type, stateKey) => byKey.get(stateKeyOf(type, stateKey)) };
      const join = receivePdu(raw, { rules, keys, stateBefore: stateView, roomId });
      if (join.action !== "accept" && join.action !== "store-redacted") {
        throw new MatrixError(Errcode.FORBIDDEN, 403, `the hub's join event does not hold: ${join.reason}`);
      }
      // Create first, so the replica's log starts the way every room does.
      const ordered = [...byKey.values()].sort((a, b) => (a.pdu.type === "m.room.create" ? -1 : b.pdu.type === "m.room.create" ? 1 : 0));
      const existing = await writer.head(roomId);
      // Local history starts at the join; the hub holds what came before it (replica_history).
      const before = join.event.pdu.prev_events?.[0] ?? null;
      const recordHistory = async (tx: StorageTx, placedEvents: PlacedEvent[]): Promise<void> => {
        const last = placedEvents[placedEvents.length - 1];
        if (last) await tx.events.setReplicaHistory(roomId, last.roomSeq, before);
      };
      let placed: PlacedEvent[];
      if (existing === undefined) {
        const room = { roomId, roomVersion, creator: byKey.get(stateKeyOf("m.room.create", ""))?.pdu.sender ?? "", hubServer, isPublic: false, createdTs: now() };
        placed = await writer.createReplicaLocked(room, [...ordered, join.event].map((event) => ({ event })), recordHistory);
      } else {
        // Over an invite stub (or a replica this server left): append what it does not hold yet.
        const known = new Set([...existing.state.values()].map((e) => e.eventId));
        const fresh = ordered.filter((e) => !known.has(e.eventId));
        const stored = await Promise.all(fresh.map(async (e) => ((await storage.events.getEvent(e.eventId)) === undefined ? e : undefined)));
        const toAppend = [...stored.filter((e): e is RoomEvent => e !== undefined), join.event];
        ({ placed } = await writer.appendBuiltLocked(existing, toAppend.map((event) => ({ build: () => ({ ok: true, event }) })), recordHistory));
      }
      deps.notifyPlaced(roomId, placed);
      return placed;
    },

    async storeInviteStub(roomVersion, event, strippedState) {
      const rules = getRoomVersion(roomVersion);
      if (!rules) throw new MatrixError(Errcode.INCOMPATIBLE_ROOM_VERSION, 400, `room version ${roomVersion} is not supported`);
      const roomId = event.pdu.room_id;
      await writer.withRoom(roomId, async () => {
        // The stripped state travels with the stored invite (`unsigned`, outside hashes and signatures).
        const pdu = { ...event.pdu, unsigned: { ...(event.pdu.unsigned ?? {}), invite_room_state: strippedState } } as Pdu;
        const stored: RoomEvent = { eventId: event.eventId, pdu };
        const head = await writer.head(roomId);
        let placed: PlacedEvent[];
        if (head === undefined) {
          const hubServer = serverNameOf(roomId) ?? "";
          placed = await writer.createReplicaLocked({ roomId, roomVersion, creator: "", hubServer, isPublic: false, createdTs: now() }, [{ event: stored }]);
        } else {
          if ((await storage.events.getEvent(event.eventId)) !== undefined) return;
          ({ placed } = await writer.appendBuiltLocked(head, [{ build: () => ({ ok: true, event: stored }) }]));
        }
        deps.notifyPlaced(roomId, placed);
      });
    },
  };
  return federation;
}

const STRIPPED_TYPES: ReadonlySet<string> = new Set(["m.room.create", "m.room.name", "m.room.avatar", "m.room.topic", "m.room.join_rules", "m.room.canonical_alias", "m.room.encryption"]);
