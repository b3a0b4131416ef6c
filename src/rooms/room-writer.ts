// The single writer of the rooms hosted here (DESIGN.md "Hub pipeline" steps 4–7): under the
// room's lock it places each event after the current tip (buildHubEvent), checks its size and the
// auth rules against the current state, persists the events, their state and whatever else the
// request changes in one transaction with fresh stream positions, then updates its cached head of
// the room. The cache is coherent because nothing else appends to a room; it is loaded lazily
// from storage and can be dropped at any time.
//
// Pipelining: an append's events are placed (the head advances in memory) and their transaction
// queued under the lock; `appendPipelined` lets the caller release the lock there and await the
// commit outside it, so the room's next events are built while these commit, and on SQLite share
// their group commit (storage/knex/group-commit.ts runs transactions in call order). Each room's
// queued transactions form a chain, committed in room order. Crash safety is unchanged: callers
// acknowledge only once `committed` resolved, and the positions become visible to syncs only
// then. When a transaction of the chain fails, every later one fails too (it was placed after the
// failed events: a later event must never be appended over the hole), and the cached head is
// dropped; it is reloaded from storage once the chain's transactions have all settled.
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { authorize, powerLevelsFrom } from "../auth-rules/index.js";
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
import type { FederationFanout } from "./fanout.js";
import { applyMembership, destinationsOf, type FanoutEvent } from "./fanout.js";
import { KeyedLock } from "./keyed-lock.js";
import type { MembershipIndex } from "./membership-index.js";
import type { RecentEvents } from "./recent-events.js";

/** The key of a state event in a head's state map. */
export const stateKeyOf = (type: string, stateKey: string): string => `${type}\u0000${stateKey}`;

/** The cached tip of one room: what the next event is placed after and authorized against. */
export interface RoomHead {
  readonly roomId: string;
  readonly rules: RoomVersionRules;
  readonly hubServer: string;
  state: Map<string, RoomEvent>;
  lastEvent: RoomEvent | undefined;
  lastSeq: number;
  /** Servers with joined users and how many each (the hub's fan-out destinations). */
  joinedServers: Map<string, number>;
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
  /**
   * Another server's signature the event needs before it is appended: an invite of a user on a
   * server not in the room goes to that server first (LM draft "Invites"), which signs it or
   * refuses (throw a MatrixError). Runs after the checks, holding the room's lock.
   */
  countersign?: (event: RoomEvent) => Promise<RoomEvent>;
}

/**
 * An event that arrives already built: an LPDU this hub completes, or a PDU a participant receives
 * from its hub. `build` runs in order under the room's lock against the state the event is placed
 * on (previous events of the batch applied); the pipeline (room-dag/pipeline.ts) has done the
 * checks, so the writer neither authorizes it again nor builds it. A refusal skips only this
 * event; the others of the batch are still placed.
 */
export interface BuiltRequest {
  build: (tip: RoomTip) => BuiltOutcome;
}

export type BuiltOutcome = { ok: true; event: RoomEvent; softFailed?: boolean } | { ok: false; error: MatrixError };

/**
 * Room policy beyond the auth rules that needs its own records (the MLS overlay's commit and
 * message checks; receive pipeline step 5). One batch per append, under the room's lock: `check`
 * sees every event after the auth rules allowed it, in order, against the state before it. A
 * refusal refuses a local event or a hub's LPDU and soft-fails a PDU a replica receives. `persist`
 * runs in the append's transaction, `committed` once it committed.
 */
export interface RoomEventPolicy {
  begin(roomId: string, hostedHere: boolean): RoomPolicyBatch;
  /**
   * Whether `check` of this event may read what an earlier append's `committed` publishes (an MLS
   * epoch): the writer then waits for the room's appends still committing before checking it.
   * Without this method, every event waits, which turns pipelining off for the rooms it checks.
   */
  needsCommittedPolicy?(event: RoomEvent, stateBefore: RoomStateView): boolean;
}

export interface RoomPolicyBatch {
  check(event: RoomEvent, stateBefore: RoomStateView): Promise<MatrixError | undefined>;
  persist(tx: StorageTx): Promise<void>;
  committed(): void;
}

export interface PlacedEvent {
  event: RoomEvent;
  roomSeq: number;
  streamPos: number;
  /** Kept in the log but out of state and timelines (receive step 5, or a hub breaking the rules). */
  softFailed?: boolean;
  /** The index of the request it came from. */
  index: number;
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
  /** Wakes the outbound federation queues once a hub event's queue rows committed. */
  fanout?: FederationFanout;
  /** Checks beyond the auth rules (the MLS overlay); see RoomEventPolicy. */
  policy?: RoomEventPolicy;
}

/** Heads kept in memory; beyond this the least recently used are dropped (reloaded on demand). */
const MAX_CACHED_HEADS = 10_000;

/** The transactions of one head's appends, queued in room order (module comment "Pipelining"). */
interface CommitChain {
  /** Set once one of them failed: every later one fails without writing. */
  failed: boolean;
  /** Settles (never rejects) once every transaction queued so far has settled. */
  tail: Promise<void>;
}

/** What a failure earlier in a room's commit chain does to the appends placed after it. */
export class EarlierAppendFailed extends MatrixError {
  constructor(roomId: string) {
    super(Errcode.UNKNOWN, 500, `an earlier event of ${roomId} could not be stored, so this one was not either; retry`);
  }
}

export class RoomWriter {
  private readonly lock = new KeyedLock();
  private readonly heads = new Map<string, RoomHead>();
  private readonly chains = new WeakMap<RoomHead, CommitChain>();
  /** Per room, the tail of the last chain with transactions in flight; removed once it settled. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly identity: ServerIdentity;
  /**
   * Whether transactions run in the order `storage.transaction` is called: SQLite's group commit
   * queues them (group-commit.ts); PostgreSQL runs them in parallel on its pool, so a room's next
   * transaction starts only once the previous one committed.
   */
  private readonly ordered: boolean;

  constructor(private readonly deps: WriterDeps) {
    this.identity = { serverName: deps.serverName, key: deps.signingKey };
    this.ordered = deps.storage.engine === "sqlite";
  }

  newRoomId(): string {
    return `!${randomBytes(12).toString("base64url").replace(/[^A-Za-z0-9]/g, "x")}:${this.deps.serverName}`;
  }

  /** The room's head, loaded from storage when not cached; undefined for an unknown room. */
  async head(roomId: string): Promise<RoomHead | undefined> {
    const cached = this.cached(roomId);
    if (cached) return cached;
    // A head dropped while its appends commit (a failed chain, the LRU) is read back only once
    // they all settled: storage then holds exactly what committed.
    for (let pending = this.inFlight.get(roomId); pending !== undefined; pending = this.inFlight.get(roomId)) {
      await pending;
      const loaded = this.cached(roomId);
      if (loaded) return loaded;
    }
    const { storage } = this.deps;
    const room = await storage.events.getRoom(roomId);
    if (!room) return undefined;
    const rules = getRoomVersion(room.roomVersion);
    if (!rules) throw new Error(`room ${roomId} has unknown version ${room.roomVersion}`);
    const [current, last] = await Promise.all([storage.events.getCurrentState(roomId), storage.events.getLastEvent(roomId)]);
    const state = new Map<string, RoomEvent>();
    for (const event of current) state.set(stateKeyOf(event.pdu.type, event.pdu.state_key ?? ""), { eventId: event.eventId, pdu: event.pdu });
    const joinedServers = new Map<string, number>();
    for (const event of current) {
      if (event.pdu.type === "m.room.member" && event.pdu.state_key !== undefined) applyMembership(joinedServers, event.pdu.state_key, undefined, event.pdu.content.membership);
    }
    const head: RoomHead = {
      roomId,
      rules,
      hubServer: room.hubServer,
      state,
      lastEvent: last ? { eventId: last.eventId, pdu: last.pdu } : undefined,
      lastSeq: last ? last.roomSeq : -1,
      joinedServers,
    };
    // Another caller loaded it meanwhile and may have appended to it already: that one is current.
    const raced = this.cached(roomId);
    if (raced) return raced;
    this.remember(head);
    return head;
  }

  private cached(roomId: string): RoomHead | undefined {
    const cached = this.heads.get(roomId);
    if (cached) {
      // Refresh the LRU order.
      this.heads.delete(roomId);
      this.heads.set(roomId, cached);
    }
    return cached;
  }

  /** Settles once every append of the room queued so far has committed or failed. */
  async settled(roomId: string): Promise<void> {
    for (let pending = this.inFlight.get(roomId); pending !== undefined; pending = this.inFlight.get(roomId)) await pending;
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
    const head: RoomHead = { roomId: room.roomId, rules, hubServer: this.deps.serverName, state: new Map(), lastEvent: undefined, lastSeq: -1, joinedServers: new Map() };
    const all: EventRequest[] = [{ type: "m.room.create", stateKey: "", content: createContent, sender: room.creator }, ...requests];
    return this.lock.run(room.roomId, async () => {
      const { committed } = await this.place(head, all, (tx) => persistExtra(tx), undefined, (error) => new MatrixError(Errcode.INVALID_ROOM_STATE, 400, `the requested initial state is not allowed: ${error.message}`), { ...room, hubServer: this.deps.serverName });
      const placed = await committed;
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
    return (await this.place(head, requests, persistExtra, afterCommit)).committed;
  }

  /**
   * appendLocked that returns once the events are placed and their transaction queued (module
   * comment "Pipelining"): the caller may release the room's lock, then must await `committed`
   * before acknowledging anything. A refusal still throws here; a failure to store rejects
   * `committed`, and that of every append placed after it. Only for requests whose effects
   * beyond the events (persistExtra, afterCommit) later appends do not depend on: a redaction,
   * which changes the head in afterCommit, must use appendLocked.
   */
  async appendPipelined(
    head: RoomHead,
    requests: EventRequest[],
    persistExtra?: (tx: StorageTx, placed: PlacedEvent[]) => Promise<void>,
    afterCommit?: (placed: PlacedEvent[]) => void,
  ): Promise<{ committed: Promise<PlacedEvent[]> }> {
    return this.place(head, requests, persistExtra, afterCommit);
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
    this.deps.fanout?.redacted(eventId, redactedPdu);
  }

  redactedCopy(head: RoomHead, event: RoomEvent): RoomEvent["pdu"] {
    return redact(event.pdu as unknown as JsonObject, head.rules.redaction) as unknown as RoomEvent["pdu"];
  }

  /**
   * Appends events that arrive built (BuiltRequest) to a room, hosted here or a replica, with
   * `persistExtra` in the same transaction. Refused ones are skipped and returned with their
   * index. Must be called holding the room's lock (withRoom).
   */
  async appendBuiltLocked(
    head: RoomHead,
    requests: BuiltRequest[],
    persistExtra?: (tx: StorageTx, placed: PlacedEvent[]) => Promise<void>,
    afterCommit?: (placed: PlacedEvent[]) => void,
  ): Promise<{ placed: PlacedEvent[]; refused: Array<{ index: number; error: MatrixError }> }> {
    const refused: Array<{ index: number; error: MatrixError }> = [];
    const placed = await (await this.place(head, requests, persistExtra, afterCommit, (error) => error, undefined, refused)).committed;
    return { placed, refused };
  }

  /**
   * Creates the replica of a room hosted elsewhere from what the hub's `send_join` answered: the
   * room row and `events` (the state the join was placed on, then the join itself) in one
   * transaction. Must be called holding the room's lock; the room must not exist here yet.
   */
  async createReplicaLocked(room: RoomRow, events: Array<{ event: RoomEvent; softFailed?: boolean }>, persistExtra?: (tx: StorageTx, placed: PlacedEvent[]) => Promise<void>): Promise<PlacedEvent[]> {
    const rules = getRoomVersion(room.roomVersion);
    if (!rules) throw new MatrixError(Errcode.INCOMPATIBLE_ROOM_VERSION, 400, `room version ${room.roomVersion} is not supported`);
    const head: RoomHead = { roomId: room.roomId, rules, hubServer: room.hubServer, state: new Map(), lastEvent: undefined, lastSeq: -1, joinedServers: new Map() };
    const requests: BuiltRequest[] = events.map(({ event, softFailed }) => ({ build: () => ({ ok: true, event, ...(softFailed ? { softFailed } : {}) }) }));
    const placed = await (await this.place(head, requests, persistExtra, undefined, (error) => error, room)).committed;
    this.remember(head);
    return placed;
  }

  /** Drops the cached head (a replica that was replaced, or after a failure). */
  forget(roomId: string): void {
    this.heads.delete(roomId);
  }

  /** The commit chain of `head`'s appends; its failure drops the cached head. */
  private chainOf(head: RoomHead): CommitChain {
    let chain = this.chains.get(head);
    if (!chain) {
      chain = { failed: false, tail: Promise.resolve() };
      this.chains.set(head, chain);
    }
    return chain;
  }

  private breakChain(head: RoomHead, chain: CommitChain): void {
    chain.failed = true;
    if (this.heads.get(head.roomId) === head) this.heads.delete(head.roomId);
  }

  /**
   * Steps 4–5 (build, authorize, check) on a working copy of the head, then places the events:
   * the head advances and their transaction (step 6) is queued on the room's commit chain.
   * `committed` resolves once it committed, after the caches took the events and before their
   * positions become visible to syncs.
   */
  private async place(
    head: RoomHead,
    requests: Array<EventRequest | BuiltRequest>,
    persistExtra: ((tx: StorageTx, placed: PlacedEvent[]) => Promise<void>) | undefined,
    afterCommit: ((placed: PlacedEvent[]) => void) | undefined,
    refusal: (error: MatrixError) => MatrixError = (error) => error,
    roomRow?: RoomRow,
    refusedOut?: Array<{ index: number; error: MatrixError }>,
  ): Promise<{ committed: Promise<PlacedEvent[]> }> {
    const { storage, streams, notifier, memberships, recentEvents, serverName, fanout } = this.deps;
    const chain = this.chainOf(head);
    if (chain.failed) throw new EarlierAppendFailed(head.roomId);
    // A policy check that reads what earlier appends publish on commit waits for them.
    const policyCheck = async (event: RoomEvent): Promise<MatrixError | undefined> => {
      if (!policy) return undefined;
      if (this.deps.policy?.needsCommittedPolicy?.(event, tip) !== false) {
        await chain.tail;
        if (chain.failed) throw new EarlierAppendFailed(head.roomId);
      }
      return policy.check(event, tip);
    };
    // Steps 4–5 on a working copy of the head, so a refusal leaves the cache untouched. Copied
    // on the first state event only: a message (most appends) changes no state, and copying a
    // large room's state map for each one costs in proportion to its members.
    let state = head.state;
    let joinedServers = head.joinedServers;
    const hostedHere = head.hubServer === serverName;
    let lastEvent = head.lastEvent;
    const tip: RoomTip = {
      get: (type, stateKey) => state.get(stateKeyOf(type, stateKey)),
      get lastEvent() {
        return lastEvent;
      },
    };
    const built: Array<{ event: RoomEvent; softFailed: boolean; index: number; destinations: string[] }> = [];
    // Redactions that arrived built (a participant's, or the hub's fan-out) take effect here; a
    // local client's redaction is applied by the room service's own request.
    const redactions: Array<{ targetId: string; redactionId: string; redactedPdu: RoomEvent["pdu"] }> = [];
    const policy = this.deps.policy?.begin(head.roomId, hostedHere);
    for (let index = 0; index < requests.length; index++) {
      const request = requests[index] as EventRequest | BuiltRequest;
      let event: RoomEvent;
      let softFailed = false;
      if ("build" in request) {
        const outcome = request.build(tip);
        if (!outcome.ok) {
          if (!refusedOut) throw refusal(outcome.error);
          refusedOut.push({ index, error: outcome.error });
          continue;
        }
        event = outcome.event;
        softFailed = outcome.softFailed === true;
        const refused = softFailed ? undefined : await policyCheck(event);
        if (refused && hostedHere) {
          if (!refusedOut) throw refusal(refused);
          refusedOut.push({ index, error: refused });
          continue;
        }
        // A replica keeps what its hub appended, out of state (receive step 5).
        if (refused) softFailed = true;
        if (!softFailed && event.pdu.type === "m.room.redaction") {
          const redaction = await this.redactionOf(head, event, tip, built.map((b) => b.event));
          if (redaction) redactions.push(redaction);
        }
      } else {
        event = await this.buildLocal(head, request, tip, refusal);
        const refused = await policyCheck(event);
        if (refused) throw refusal(refused);
      }
      if (!softFailed && event.pdu.state_key !== undefined) {
        const key = stateKeyOf(event.pdu.type, event.pdu.state_key);
        if (state === head.state) state = new Map(state);
        if (event.pdu.type === "m.room.member") {
          if (joinedServers === head.joinedServers) joinedServers = new Map(joinedServers);
          applyMembership(joinedServers, event.pdu.state_key, state.get(key)?.pdu.content.membership, event.pdu.content.membership);
        }
        state.set(key, event);
      }
      lastEvent = event;
      const destinations = hostedHere && fanout !== undefined && !softFailed ? destinationsOf(event, joinedServers, serverName) : [];
      built.push({ event, softFailed, index, destinations });
    }
    if (built.length === 0) return { committed: Promise.resolve([]) };
    // Checks may have awaited (countersign, policy): the chain may have failed meanwhile.
    if (chain.failed) throw new EarlierAppendFailed(head.roomId);
    // Step 6, queued: positions allocated in order so the stream follows the room order.
    const positions = built.map(() => streams.allocate());
    const placed: PlacedEvent[] = built.map(({ event, softFailed, index }, i) => ({ event, roomSeq: head.lastSeq + 1 + i, streamPos: positions[i] as number, index, ...(softFailed ? { softFailed } : {}) }));
    // Recorded while the positions are in flight (SyncNotifier.recordChange).
    notifier.recordChange("room_events", [head.roomId], positions[positions.length - 1] as number);
    for (const { event, streamPos, softFailed } of placed) {
      if (!softFailed && event.pdu.type === "m.room.member" && event.pdu.state_key !== undefined) notifier.recordChange("membership", [event.pdu.state_key], streamPos);
    }
    const fanned: FanoutEvent[] = [];
    built.forEach(({ event, destinations }, i) => {
      if (destinations.length > 0) fanned.push({ streamPos: positions[i] as number, eventId: event.eventId, pdu: event.pdu, destinations: new Set(destinations) });
    });
    const write = (tx: StorageTx): Promise<void> => {
      if (chain.failed) return Promise.reject(new EarlierAppendFailed(head.roomId));
      return (async () => {
        if (roomRow) await tx.events.createRoom(roomRow);
        // One multi-row write for the batch (a replica's send_join state is thousands of events).
        await tx.events.appendEvents(placed.map(({ event, roomSeq, streamPos, softFailed }) => ({ eventId: event.eventId, pdu: event.pdu, roomSeq, streamPos, ...(softFailed ? { softFailed } : {}) })));
        const outbox = built.flatMap(({ event, destinations }, i) => destinations.map((destination) => ({ destination, streamPos: positions[i] as number, eventId: event.eventId })));
        if (outbox.length > 0) await tx.federation.enqueuePdus(outbox);
        for (const r of redactions) await tx.events.redactEvent(r.targetId, r.redactionId, r.redactedPdu);
        await policy?.persist(tx);
        await persistExtra?.(tx, placed);
      })().catch((error: unknown) => {
        // Before the next transaction of the batch runs (group commit runs them one by one).
        this.breakChain(head, chain);
        throw error;
      });
    };
    // The head advances now: the room's next append is placed after these events.
    head.state = state;
    head.joinedServers = joinedServers;
    head.lastEvent = lastEvent;
    head.lastSeq += built.length;
    const transaction = this.ordered ? storage.transaction(write) : chain.tail.then(() => storage.transaction(write));
    const committed = transaction.then(
      () => {
        try {
          // Before the positions are released: a sync that can read these events finds them applied.
          policy?.committed();
          for (const { event, roomSeq, streamPos, softFailed } of placed) {
            recentEvents.append({ eventId: event.eventId, roomId: head.roomId, roomSeq, streamPos, pdu: event.pdu, redactedBy: null, softFailed: softFailed === true });
            if (!softFailed && event.pdu.state_key !== undefined) memberships.applyStateEvent(head.roomId, roomSeq, { type: event.pdu.type, stateKey: event.pdu.state_key, content: event.pdu.content });
          }
          for (const r of redactions) this.applyRedaction(head, r.targetId, r.redactionId, r.redactedPdu);
          afterCommit?.(placed);
        } finally {
          for (const pos of positions) streams.release(pos);
        }
        if (fanned.length > 0) fanout?.queued(fanned);
        return placed;
      },
      (error: unknown) => {
        // Also when the batch's COMMIT failed after this work succeeded.
        this.breakChain(head, chain);
        for (const pos of positions) streams.release(pos);
        throw error;
      },
    );
    const tail = committed.then(
      () => undefined,
      () => undefined,
    );
    chain.tail = tail;
    this.inFlight.set(head.roomId, tail);
    void tail.then(() => {
      if (this.inFlight.get(head.roomId) === tail) this.inFlight.delete(head.roomId);
    });
    return { committed };
  }

  /**
   * What a received redaction does: the target (in this room, stored or earlier in the batch) is
   * redacted when the redaction's sender sent it or has the power to redact others' events
   * (Client-Server API "Redactions"; the auth rules admit every redaction event).
   */
  private async redactionOf(head: RoomHead, redaction: RoomEvent, state: RoomStateView, batch: RoomEvent[]): Promise<{ targetId: string; redactionId: string; redactedPdu: RoomEvent["pdu"] } | undefined> {
    const targetId = redaction.pdu.content.redacts ?? (redaction.pdu as { redacts?: unknown }).redacts;
    if (typeof targetId !== "string") return undefined;
    const target = batch.find((e) => e.eventId === targetId) ?? (await this.deps.storage.events.getEvent(targetId));
    if (!target || target.pdu.room_id !== head.roomId || target.pdu.type === "m.room.create") return undefined;
    if (target.pdu.sender !== redaction.pdu.sender) {
      const levels = powerLevelsFrom(state);
      if (levels.userLevel(redaction.pdu.sender) < levels.actionLevel("redact")) return undefined;
    }
    return { targetId, redactionId: redaction.eventId, redactedPdu: this.redactedCopy(head, { eventId: targetId, pdu: target.pdu }) };
  }

  /** Builds a local user's event on the hub (steps 4–5): placed after the tip, size-checked, authorized. */
  private async buildLocal(head: RoomHead, request: EventRequest, tip: RoomTip, refusal: (error: MatrixError) => MatrixError): Promise<RoomEvent> {
    const draft: EventDraft = { room_id: head.roomId, type: request.type, sender: request.sender, content: request.content, origin_server_ts: this.deps.now() };
    if (request.stateKey !== undefined) draft.state_key = request.stateKey;
    let event = buildHubEvent(draft, tip, this.identity, head.rules);
    const size = Buffer.byteLength(encodeCanonicalJson(event.pdu as unknown as JsonObject, head.rules.canonicalJsonKeyOrder));
    if (size > head.rules.maxEventBytes) {
      throw new MatrixError(Errcode.TOO_LARGE, 413, `event is ${size} bytes, over the limit of ${head.rules.maxEventBytes}`);
    }
    const verdict = authorize(event.pdu, tip, head.rules, { kind: "verified" });
    if (!verdict.ok) throw refusal(new MatrixError(Errcode.FORBIDDEN, 403, `${verdict.reason} (auth rule ${verdict.rule})`));
    const checked = await request.check?.(tip, event);
    if (checked) throw refusal(checked);
    if (request.countersign) event = await request.countersign(event);
    return event;
  }

  /** Whether the room's hub (LM draft "Hub Selection") is this server. */
  isHostedHere(head: RoomHead): boolean {
    return (hubServerOf({ get: (type, stateKey) => head.state.get(stateKeyOf(type, stateKey)) }) ?? head.hubServer) === this.deps.serverName;
  }

  stateView(head: RoomHead): RoomStateView {
    return { get: (type, stateKey) => head.state.get(stateKeyOf(type, stateKey)) };
  }
}
