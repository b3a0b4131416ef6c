// The single writer of the rooms hosted here (DESIGN.md "Hub pipeline" steps 4–7): under the
// room's lock it places each event after the current tip (buildHubEvent), checks its size and the
// auth rules against the current state, persists the events, their state and whatever else the
// request changes in one transaction with fresh stream positions, then updates its cached head of
// the room. The cache is coherent because nothing else appends to a room; it is loaded lazily
// from storage and can be dropped at any time.
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { authorize } from "../auth-rules/index.js";
import { encodeCanonicalJson } from "../core/canonical-json.js";
import { Errcode, MatrixError } from "../core/errors.js";
import type { RoomEvent, RoomStateView } from "../core/events.js";
import type { JsonObject } from "../core/json.js";
import { redact } from "../core/redaction.js";
import { getRoomVersion, type RoomVersionRules } from "../core/room-versions.js";
import type { SigningKey } from "../core/signing.js";
import { buildHubEvent, hubServerOf, type EventDraft, type RoomTip, type ServerIdentity } from "../room-dag/index.js";
import type { RoomRow, Storage, StorageTx } from "../storage/ports.js";
import type { StreamTracker } from "../storage/stream-tracker.js";
import type { SyncNotifier } from "../client-api/contracts.js";
import { KeyedLock } from "./keyed-lock.js";
import type { MembershipIndex } from "./membership-index.js";
import type { RecentEvents } from "./recent-events.js";

const stateKeyOf = (type: string, stateKey: string): string => `${type}\u0000${stateKey}`;

/** The cached tip of one room: what the next event is placed after and authorized against. */
export interface RoomHead {
  readonly roomId: string;
  readonly rules: RoomVersionRules;
  readonly hubServer: string;
  state: Map<string, RoomEvent>;
  lastEvent: RoomEvent | undefined;
  lastSeq: number;
}

/** One event a request asks for, before it is placed. */
export interface EventRequest {
  type: string;
  stateKey?: string;
  content: JsonObject;
  sender: string;
  /**
   * Extra checks against the state the event is placed on (e.g. redaction permissions); return a
   * MatrixError to refuse.
   */
  check?: (state: RoomStateView, event: RoomEvent) => Promise<MatrixError | undefined> | MatrixError | undefined;
}

export interface PlacedEvent {
  event: RoomEvent;
  roomSeq: number;
  streamPos: number;
}

export interface WriterDeps {
  serverName: string;
  signingKey: SigningKey;
  storage: Storage;
  streams: StreamTracker;
  logger: Logger;
  now: () => number;
  /** Told what each append changes, before its positions can become visible to syncs. */
  notifier: SyncNotifier;
  /** Kept up to date with every committed state event. */
  memberships: MembershipIndex;
  /** Given every committed event and redaction. */
  recentEvents: RecentEvents;
}

/** Heads kept in memory; beyond this the least recently used are dropped (reloaded on demand). */
const MAX_CACHED_HEADS = 10_000;

export class RoomWriter {
  private readonly lock = new KeyedLock();
  private readonly heads = new Map<string, RoomHead>();
  private readonly identity: ServerIdentity;

  constructor(private readonly deps: WriterDeps) {
    this.identity = { serverName: deps.serverName, key: deps.signingKey };
  }

  newRoomId(): string {
    return `!${randomBytes(12).toString("base64url").replace(/[^A-Za-z0-9]/g, "x")}:${this.deps.serverName}`;
  }

  /** The room's head, loaded from storage when not cached; undefined for an unknown room. */
  async head(roomId: string): Promise<RoomHead | undefined> {
    const cached = this.heads.get(roomId);
    if (cached) {
      // Refresh the LRU order.
      this.heads.delete(roomId);
      this.heads.set(roomId, cached);
      return cached;
    }
    const { storage } = this.deps;
    const room = await storage.events.getRoom(roomId);
    if (!room) return undefined;
    const rules = getRoomVersion(room.roomVersion);
    if (!rules) throw new Error(`room ${roomId} has unknown version ${room.roomVersion}`);
    const [current, last] = await Promise.all([storage.events.getCurrentState(roomId), storage.events.getLastEvent(roomId)]);
    const state = new Map<string, RoomEvent>();
    for (const event of current) state.set(stateKeyOf(event.pdu.type, event.pdu.state_key ?? ""), { eventId: event.eventId, pdu: event.pdu });
    const head: RoomHead = {
      roomId,
      rules,
      hubServer: room.hubServer,
      state,
      lastEvent: last ? { eventId: last.eventId, pdu: last.pdu } : undefined,
      lastSeq: last ? last.roomSeq : -1,
    };
    this.remember(head);
    return head;
  }

  private remember(head: RoomHead): void {
    this.heads.set(head.roomId, head);
    if (this.heads.size > MAX_CACHED_HEADS) {
      const oldest = this.heads.keys().next().value;
      if (oldest !== undefined) this.heads.delete(oldest);
    }
  }

  /** Runs `work` holding the room's lock. */
  withRoom<T>(roomId: string, work: () => Promise<T>): Promise<T> {
    return this.lock.run(roomId, work);
  }

  /**
   * Creates a room: its row, `m.room.create` and `requests`, all in one transaction. Any event
   * the rules refuse aborts the creation with M_INVALID_ROOM_STATE.
   */
  async createRoom(
    room: Omit<RoomRow, "hubServer">,
    createContent: JsonObject,
    requests: EventRequest[],
    persistExtra: (tx: StorageTx) => Promise<void>,
  ): Promise<PlacedEvent[]> {
    const rules = getRoomVersion(room.roomVersion);
    if (!rules) throw new MatrixError(Errcode.UNSUPPORTED_ROOM_VERSION, 400, `room version ${room.roomVersion} is not supported`);
    const head: RoomHead = { roomId: room.roomId, rules, hubServer: this.deps.serverName, state: new Map(), lastEvent: undefined, lastSeq: -1 };
    const all: EventRequest[] = [{ type: "m.room.create", stateKey: "", content: createContent, sender: room.creator }, ...requests];
    return this.lock.run(room.roomId, async () => {
      const placed = await this.placeAndPersist(head, all, (tx) => persistExtra(tx), undefined, (error) => new MatrixError(Errcode.INVALID_ROOM_STATE, 400, `the requested initial state is not allowed: ${error.message}`), { ...room, hubServer: this.deps.serverName });
      this.remember(head);
      return placed;
    });
  }

  /**
   * Appends `requests` to an existing room hosted here, with `persistExtra` in the same
   * transaction; `afterCommit` runs once it committed, before its positions become visible to
   * syncs. Must be called holding the room's lock (withRoom).
   */
  async appendLocked(
    head: RoomHead,
    requests: EventRequest[],
    persistExtra?: (tx: StorageTx, placed: PlacedEvent[]) => Promise<void>,
    afterCommit?: (placed: PlacedEvent[]) => void,
  ): Promise<PlacedEvent[]> {
    return this.placeAndPersist(head, requests, persistExtra, afterCommit);
  }

  /**
   * `eventId` was redacted by `redactedBy` in the transaction just committed: the cached head
   * (whose rules then see the redacted content) and the recent events take its redacted copy.
   * Call before the redaction's position becomes visible (appendLocked's `afterCommit`).
   */
  applyRedaction(head: RoomHead, eventId: string, redactedBy: string, redactedPdu: RoomEvent["pdu"]): void {
    for (const [key, event] of head.state) {
      if (event.eventId === eventId) head.state.set(key, { eventId, pdu: redactedPdu });
    }
    this.deps.recentEvents.redact(head.roomId, eventId, redactedBy, redactedPdu);
  }

  redactedCopy(head: RoomHead, event: RoomEvent): RoomEvent["pdu"] {
    return redact(event.pdu as unknown as JsonObject, head.rules.redaction) as unknown as RoomEvent["pdu"];
  }

  private async placeAndPersist(
    head: RoomHead,
    requests: EventRequest[],
    persistExtra: ((tx: StorageTx, placed: PlacedEvent[]) => Promise<void>) | undefined,
    afterCommit: ((placed: PlacedEvent[]) => void) | undefined,
    refusal: (error: MatrixError) => MatrixError = (error) => error,
    roomRow?: RoomRow,
  ): Promise<PlacedEvent[]> {
    const { storage, streams, now, notifier, memberships, recentEvents } = this.deps;
    // Steps 4–5 on a working copy of the head, so a refusal leaves the cache untouched.
    const state = new Map(head.state);
    let lastEvent = head.lastEvent;
    const tip: RoomTip = { get: (type, stateKey) => state.get(stateKeyOf(type, stateKey)), lastEvent: undefined };
    const built: RoomEvent[] = [];
    for (const request of requests) {
      const draft: EventDraft = { room_id: head.roomId, type: request.type, sender: request.sender, content: request.content, origin_server_ts: now() };
      if (request.stateKey !== undefined) draft.state_key = request.stateKey;
      const event = buildHubEvent(draft, { get: tip.get, lastEvent }, this.identity, head.rules);
      const size = Buffer.byteLength(encodeCanonicalJson(event.pdu as unknown as JsonObject, head.rules.canonicalJsonKeyOrder));
      if (size > head.rules.maxEventBytes) {
        throw new MatrixError(Errcode.TOO_LARGE, 413, `event is ${size} bytes, over the limit of ${head.rules.maxEventBytes}`);
      }
      const verdict = authorize(event.pdu, tip, head.rules, { kind: "verified" });
      if (!verdict.ok) throw refusal(new MatrixError(Errcode.FORBIDDEN, 403, `${verdict.reason} (auth rule ${verdict.rule})`));
      const checked = await request.check?.(tip, event);
      if (checked) throw refusal(checked);
      if (event.pdu.state_key !== undefined) state.set(stateKeyOf(event.pdu.type, event.pdu.state_key), event);
      lastEvent = event;
      built.push(event);
    }
    // Step 6: one transaction, positions allocated in order so the stream follows the room order.
    const placed = await streams.withPositions(built.length, async (positions) => {
      const placed = built.map((event, i) => ({ event, roomSeq: head.lastSeq + 1 + i, streamPos: positions[i] as number }));
      // Recorded while the positions are in flight (SyncNotifier.recordChange).
      notifier.recordChange("room_events", [head.roomId], positions[positions.length - 1] as number);
      for (const { event, streamPos } of placed) {
        if (event.pdu.type === "m.room.member" && event.pdu.state_key !== undefined) notifier.recordChange("membership", [event.pdu.state_key], streamPos);
      }
      await storage.transaction(async (tx) => {
        if (roomRow) await tx.events.createRoom(roomRow);
        for (const { event, roomSeq, streamPos } of placed) await tx.events.appendEvent({ eventId: event.eventId, pdu: event.pdu, roomSeq, streamPos });
        await persistExtra?.(tx, placed);
      });
      // Before the positions are released: a sync that can read these events finds them applied.
      head.state = state;
      head.lastEvent = lastEvent;
      head.lastSeq += built.length;
      for (const { event, roomSeq, streamPos } of placed) {
        recentEvents.append({ eventId: event.eventId, roomId: head.roomId, roomSeq, streamPos, pdu: event.pdu, redactedBy: null, softFailed: false });
        if (event.pdu.state_key !== undefined) memberships.applyStateEvent(head.roomId, roomSeq, { type: event.pdu.type, stateKey: event.pdu.state_key, content: event.pdu.content });
      }
      afterCommit?.(placed);
      return placed;
    });
    return placed;
  }

  /** Whether the room's hub (LM draft "Hub Selection") is this server. */
  isHostedHere(head: RoomHead): boolean {
    return (hubServerOf({ get: (type, stateKey) => head.state.get(stateKeyOf(type, stateKey)) }) ?? head.hubServer) === this.deps.serverName;
  }

  stateView(head: RoomHead): RoomStateView {
    return { get: (type, stateKey) => head.state.get(stateKeyOf(type, stateKey)) };
  }
}
