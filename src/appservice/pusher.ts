// The transaction pusher of one application service (Application Service API "Pushing events"):
// reads the server-wide event stream after the service's cursor, keeps the events the service is
// interested in, and sends them in order, at most MAX_EVENTS_PER_TXN per transaction, one
// transaction at a time.
//
// 1. Build: read the stream after the cursor (only positions every lower one of which has
//    committed), keep the interesting events. None: move the cursor (lazily). Some: record the
//    transaction (txnId, the exact body, the position it ends at) in the database, then send.
// 2. Send `PUT /transactions/{txnId}`. A 2xx: in one statement the cursor moves to the
//    transaction's end and the transaction is cleared (in the same database transaction, the
//    to-device inboxes it emptied for good are cleared too); then build the next. Anything else:
//    back off with jitter and resend the same txnId with the same body.
// 3. A restart loads the cursor and the transaction in flight, and resends it first.
//
// With `receive_ephemeral`, EDUs ride along (Application Service API "Pushing EDUs"): receipts and
// to-device messages from the stream range the transaction covers, and the rooms' typing as it
// stands when the transaction is built (typing is not kept in the database; a change that no
// transaction carried before a restart is lost, as it is for syncs).
import type { Logger } from "pino";
import type { JsonObject } from "../core/json.js";
import type { ReceiptRow, StoredEvent, Storage, ToDeviceMessage } from "../storage/ports.js";
import { toClientEvent } from "../rooms/client-event.js";
import type { BridgeClient } from "./bridge-client.js";
import { backoffMs, interestIn, type RoomView } from "./interest.js";
import { isServiceAlias, isServiceRoom, isServiceUser } from "./namespaces.js";
import type { AppserviceRegistration } from "./registration.js";

/** Spec "Pushing events" leaves the size open; 100 events keep a transaction small for any bridge. */
export const MAX_EVENTS_PER_TXN = 100;
/** EDUs per transaction, for services with `receive_ephemeral`. */
export const MAX_EPHEMERAL_PER_TXN = 100;
/** To-device messages per transaction (MSC4203). */
export const MAX_TO_DEVICE_PER_TXN = 100;
/** Stream rows read per query while looking for interesting events. */
const STREAM_PAGE = 1000;
/** An idle cursor (events of no interest) is written at most this often. */
const CURSOR_WRITE_INTERVAL_MS = 1000;

export interface PusherSettings {
  backoff: { initialMs: number; maxMs: number; jitter: number };
}

export const DEFAULT_PUSHER_SETTINGS: PusherSettings = { backoff: { initialMs: 1000, maxMs: 5 * 60_000, jitter: 0.2 } };

/** What the pusher needs to know about rooms (the membership index and storage, injected by app/). */
export interface RoomFacts {
  /** Current membership of the room: user -> membership and the roomSeq of its event. */
  members(roomId: string): Promise<ReadonlyMap<string, { membership: string; roomSeq: number }>>;
  /** A user's membership before the event at `roomSeq`, from the state history. */
  membershipBefore(roomId: string, roomSeq: number, userId: string): Promise<string | undefined>;
  /** Local aliases and the canonical alias of the room. */
  aliases(roomId: string): Promise<string[]>;
}

export interface PusherDeps {
  registration: AppserviceRegistration;
  serverName: string;
  storage: Storage;
  rooms: RoomFacts;
  client: BridgeClient;
  /** The highest stream position every lower one of which has committed (StreamTracker.visible). */
  visiblePos: () => number;
  logger: Logger;
  settings: PusherSettings;
  random?: () => number;
  /** Wall clock for `nextRetryTs` (admin API); default Date.now. */
  now?: () => number;
}

/** `delivering`: sending or caught up; `backing_off`: the last send failed and a retry is scheduled. */
export type PusherState = "delivering" | "backing_off";

export interface PusherStatus {
  state: PusherState;
  /** Every stream position up to this one was delivered or was of no interest. */
  streamPos: number;
  inFlight: string | null;
  failures: number;
  lastError: string | null;
  /** When the scheduled retry goes (ms since the epoch), while backing off. */
  nextRetryTs: number | null;
}

export interface Pusher {
  start(): Promise<void>;
  /** New events up to `streamPos` may be of interest. */
  wake(streamPos: number): void;
  /** The service answered (a ping): retry now instead of waiting out the backoff. */
  retryNow(): void;
  /** Who types in the room now (every change); carried by the next transaction when the service is interested in the room. */
  typing(roomId: string, userIds: readonly string[]): void;
  status(): PusherStatus;
  close(): Promise<void>;
}

export function createPusher(deps: PusherDeps): Pusher {
  const { registration, serverName, storage, rooms, client, logger } = deps;
  const random = deps.random ?? Math.random;
  const now = deps.now ?? Date.now;
  const id = registration.id;
  /**
   * MSC4203 has no opt-in of its own; Synapse pushes to-device messages to the services that
   * opted in to EDUs, and registrations may also say so with MSC4203's key.
   */
  const wantsToDevice = registration.receiveEphemeral || registration.receiveToDevice;
  let cursor = 0;
  let storedCursor = 0;
  let lastTxnId = 0;
  let inFlight: { txnId: string; upToPos: number; body: string; count: number } | null = null;
  let failures = 0;
  let lastError: string | null = null;
  let nextRetryTs: number | null = null;
  let state: PusherState = "delivering";
  /** Typing per room not yet put in a transaction: the latest list wins. */
  const pendingTyping = new Map<string, readonly string[]>();
  let wanted = 0;
  let running: Promise<void> | undefined;
  let again = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let cursorTimer: NodeJS.Timeout | undefined;
  let pollTimer: NodeJS.Timeout | undefined;
  let closed = false;
  /** Aborted on close: a transaction in flight is abandoned (it stays recorded and is resent after the restart). */
  const closing = new AbortController();

  type ServiceMembers = Array<[string, { membership: string; roomSeq: number }]>;

  /** Service users joined to the room as of the event at `roomSeq`; `cache` keeps each room's service members for one build. */
  async function joinedServiceUsers(roomId: string, roomSeq: number, cache: Map<string, ServiceMembers>): Promise<string[]> {
    let serviceMembers = cache.get(roomId);
    if (!serviceMembers) {
      serviceMembers = [...(await rooms.members(roomId))].filter(([userId]) => isServiceUser(registration, userId, serverName));
      cache.set(roomId, serviceMembers);
    }
    const joined: string[] = [];
    for (const [userId, member] of serviceMembers) {
      // The current membership event is at or before this event: it was in force then.
      const membership = member.roomSeq <= roomSeq ? member.membership : await rooms.membershipBefore(roomId, roomSeq, userId);
      if (membership === "join") joined.push(userId);
    }
    return joined;
  }

  async function viewOf(event: StoredEvent, aliasCache: Map<string, string[]>, memberCache: Map<string, ServiceMembers>): Promise<RoomView> {
    let aliases: string[] = [];
    if (registration.namespaces.aliases.length > 0) {
      aliases = aliasCache.get(event.roomId) ?? (await rooms.aliases(event.roomId));
      aliasCache.set(event.roomId, aliases);
    }
    return { joinedServiceUsers: await joinedServiceUsers(event.roomId, event.roomSeq, memberCache), aliases };
  }

  /**
   * Whether the service is interested in the room now, for room EDUs (Application Service API
   * "Pushing EDUs": under the same rules as the room's events).
   */
  async function interestedInRoomNow(roomId: string, memberCache: Map<string, ServiceMembers>, aliasCache: Map<string, string[]>): Promise<boolean> {
    if ((await joinedServiceUsers(roomId, Number.MAX_SAFE_INTEGER, memberCache)).length > 0 || isServiceRoom(registration, roomId)) return true;
    if (registration.namespaces.aliases.length === 0) return false;
    const aliases = aliasCache.get(roomId) ?? (await rooms.aliases(roomId));
    aliasCache.set(roomId, aliases);
    return aliases.some((alias) => isServiceAlias(registration, alias));
  }

  /**
   * Receipts as `m.receipt` EDUs for the rooms the service is interested in now (Application
   * Service API "Pushing EDUs"): private receipts only of the service's own users.
   */
  async function receiptEdus(receipts: ReceiptRow[], memberCache: Map<string, ServiceMembers>, aliasCache: Map<string, string[]>): Promise<JsonObject[]> {
    const edus: JsonObject[] = [];
    for (const receipt of receipts) {
      if (receipt.receiptType === "m.read.private" && !isServiceUser(registration, receipt.userId, serverName)) continue;
      if (!(await interestedInRoomNow(receipt.roomId, memberCache, aliasCache))) continue;
      const receiptInfo: JsonObject = { ts: receipt.ts, ...(receipt.threadId !== null ? { thread_id: receipt.threadId } : {}) };
      edus.push({ type: "m.receipt", room_id: receipt.roomId, content: { [receipt.eventId]: { [receipt.receiptType]: { [receipt.userId]: receiptInfo } } } });
    }
    return edus;
  }

  /** The pending typing lists as `m.typing` EDUs (with `room_id`) for the rooms the service is interested in; the pending set is emptied. */
  async function typingEdus(memberCache: Map<string, ServiceMembers>, aliasCache: Map<string, string[]>): Promise<JsonObject[]> {
    const edus: JsonObject[] = [];
    const pending = [...pendingTyping];
    pendingTyping.clear();
    for (const [roomId, userIds] of pending) {
      if (await interestedInRoomNow(roomId, memberCache, aliasCache)) edus.push({ type: "m.typing", room_id: roomId, content: { user_ids: [...userIds] } });
    }
    return edus;
  }

  /**
   * To-device messages for the devices of the service's users (MSC4203): the event as `/sync`
   * gives it plus `to_user_id` and `to_device_id`.
   */
  function toDeviceEvents(messages: ToDeviceMessage[]): JsonObject[] {
    return messages
      .filter((m) => isServiceUser(registration, m.userId, serverName))
      .map((m) => ({ type: m.type, sender: m.sender, content: m.content, to_user_id: m.userId, to_device_id: m.deviceId }));
  }

  /** Step 1. Returns whether a transaction is ready to send. */
  async function build(): Promise<boolean> {
    const until = deps.visiblePos();
    let events: StoredEvent[] = [];
    const aliasCache = new Map<string, string[]>();
    const memberCache = new Map<string, ServiceMembers>();
    let scanned = cursor;
    while (events.length < MAX_EVENTS_PER_TXN && scanned < until) {
      const page = await storage.appservices.readStream(scanned, until, STREAM_PAGE);
      if (page.length === 0) {
        scanned = until;
        break;
      }
      for (const event of page) {
        if (interestIn(registration, serverName, event.pdu, await viewOf(event, aliasCache, memberCache)) !== undefined) events.push(event);
        scanned = event.streamPos;
        if (events.length >= MAX_EVENTS_PER_TXN) break;
      }
      if (page.length < STREAM_PAGE && events.length < MAX_EVENTS_PER_TXN) scanned = until;
    }
    let ephemeral: JsonObject[] = [];
    let toDevice: JsonObject[] = [];
    // wantsToDevice covers receive_ephemeral too: one condition for both reads.
    if (wantsToDevice && scanned > cursor) {
      const receipts = registration.receiveEphemeral ? await storage.appservices.readReceipts(cursor, scanned, MAX_EPHEMERAL_PER_TXN) : [];
      const messages = wantsToDevice ? await storage.appservices.readToDevice(cursor, scanned, MAX_TO_DEVICE_PER_TXN) : [];
      // A full page ends the transaction at its last row: what follows comes in the next one, in order.
      const lastReceipt = receipts.length === MAX_EPHEMERAL_PER_TXN ? receipts[receipts.length - 1] : undefined;
      const lastMessage = messages.length === MAX_TO_DEVICE_PER_TXN ? messages[messages.length - 1] : undefined;
      scanned = Math.min(scanned, lastReceipt?.streamPos ?? scanned, lastMessage?.streamPos ?? scanned);
      events = events.filter((e) => e.streamPos <= scanned);
      ephemeral = await receiptEdus(receipts.filter((r) => r.streamPos <= scanned), memberCache, aliasCache);
      toDevice = toDeviceEvents(messages.filter((m) => m.streamPos <= scanned));
    }
    if (registration.receiveEphemeral && pendingTyping.size > 0) ephemeral = [...ephemeral, ...(await typingEdus(memberCache, aliasCache))];
    if (events.length === 0 && ephemeral.length === 0 && toDevice.length === 0) {
      if (scanned > cursor) {
        cursor = scanned;
        scheduleCursorWrite();
      }
      return false;
    }
    const txnNumber = lastTxnId + 1;
    // EDUs under the spec's `ephemeral` (v1.13) and MSC2409's key, which bridge frameworks still
    // read (matrix-appservice 2.0.0 reads only that one); to-device messages under MSC4203's
    // unstable key (its stable `to_device` is not in the spec yet).
    const body = JSON.stringify({
      events: events.map((e) => toClientEvent(e)),
      ...(ephemeral.length > 0 ? { ephemeral, "de.sorunome.msc2409.ephemeral": ephemeral } : {}),
      ...(toDevice.length > 0 ? { "de.sorunome.msc2409.to_device": toDevice } : {}),
    });
    const txn = { txnId: String(txnNumber), upToPos: scanned, body };
    await storage.transaction((tx) => tx.appservices.putInFlight(id, txnNumber, txn));
    lastTxnId = txnNumber;
    inFlight = { ...txn, count: events.length + ephemeral.length + toDevice.length };
    return true;
  }

  function scheduleCursorWrite(): void {
    if (cursorTimer || closed) return;
    cursorTimer = setTimeout(() => {
      cursorTimer = undefined;
      void writeCursor();
    }, CURSOR_WRITE_INTERVAL_MS);
    cursorTimer.unref();
  }

  async function writeCursor(): Promise<void> {
    if (cursor <= storedCursor) return;
    const target = cursor;
    try {
      await storage.transaction((tx) => tx.appservices.advanceCursor(id, target));
      storedCursor = Math.max(storedCursor, target);
    } catch (error) {
      logger.warn({ err: error }, "could not store the application service's cursor");
    }
  }

  /**
   * The inboxes whose messages the acknowledged transaction handed over for good: devices of
   * users in the service's exclusive namespaces (or its sender), who do not sync and would keep
   * them forever (MSC4203 "when to delete a to-device message", its suggested approach). Users of
   * non-exclusive namespaces get theirs through `/sync` as well and acknowledge them there.
   */
  function deliveredInboxes(body: string): Array<[string, string]> {
    if (!body.includes('"de.sorunome.msc2409.to_device"')) return [];
    const messages = (JSON.parse(body) as { "de.sorunome.msc2409.to_device"?: Array<{ to_user_id: string; to_device_id: string }> })["de.sorunome.msc2409.to_device"] ?? [];
    const inboxes = new Map<string, [string, string]>();
    for (const m of messages) {
      if (isServiceUser(registration, m.to_user_id, serverName, true)) inboxes.set(JSON.stringify([m.to_user_id, m.to_device_id]), [m.to_user_id, m.to_device_id]);
    }
    return [...inboxes.values()];
  }

  /** Step 2. Returns whether the service acknowledged. */
  async function send(txn: NonNullable<typeof inFlight>): Promise<boolean> {
    const answer = await client.putTransaction(registration, txn.txnId, txn.body, closing.signal);
    if (answer.kind === "status" && answer.status >= 200 && answer.status < 300) {
      const delivered = deliveredInboxes(txn.body);
      await storage.transaction(async (tx) => {
        await tx.appservices.completeInFlight(id, txn.txnId);
        for (const [userId, deviceId] of delivered) await tx.toDevice.deleteUpTo(userId, deviceId, txn.upToPos);
      });
      cursor = Math.max(cursor, txn.upToPos);
      storedCursor = Math.max(storedCursor, txn.upToPos);
      if (failures > 0) logger.info({ txn_id: txn.txnId, failures }, "application service reachable again");
      failures = 0;
      lastError = null;
      enter("delivering", { txn_id: txn.txnId });
      return true;
    }
    if (closed) return false;
    lastError = answer.kind === "status" ? `HTTP ${answer.status}` : answer.kind === "timeout" ? "timeout" : answer.reason;
    const delay = scheduleRetry();
    logger.warn({ txn_id: txn.txnId, events: txn.count, failures, retry_in_ms: delay, error: lastError }, "application service transaction failed; retrying");
    enter("backing_off", { txn_id: txn.txnId, failures, retry_in_ms: delay, error: lastError });
    return false;
  }

  /** Counts a failure and schedules the retry after its backoff; returns the delay. */
  function scheduleRetry(): number {
    failures += 1;
    const delay = backoffMs(failures, deps.settings.backoff, random());
    clearTimeout(retryTimer);
    nextRetryTs = now() + delay;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      nextRetryTs = null;
      kick();
    }, delay);
    retryTimer.unref();
    return delay;
  }

  /** Operators follow the queue in the log: one info line per change of state. */
  function enter(next: PusherState, context: Record<string, unknown>): void {
    if (state === next) return;
    logger.info({ ...context, state: next, previous_state: state, stream_pos: cursor, behind: Math.max(0, deps.visiblePos() - cursor) }, `application service ${next === "delivering" ? "delivering" : "backing off"}`);
    state = next;
  }

  async function loop(): Promise<void> {
    do {
      again = false;
      for (;;) {
        if (closed || retryTimer) return;
        if (!inFlight && !(await build())) break;
        if (!(await send(inFlight as NonNullable<typeof inFlight>))) return;
        inFlight = null;
      }
      // Woken for a position not yet visible (its commit is still settling): look again shortly.
      if (!again && wanted > deps.visiblePos() && !closed) {
        await new Promise((resolve) => setTimeout(resolve, 2));
        again = true;
      }
    } while (again);
  }

  function kick(): void {
    if (closed || registration.url === null) return;
    if (running) {
      again = true;
      return;
    }
    running = loop()
      .catch((error: unknown) => {
        if (closed) return;
        // A database error: back off like a failed send, the state in the database is intact.
        lastError = (error as Error).message;
        logger.error({ err: error }, "application service pusher failed");
        if (!retryTimer) enter("backing_off", { failures, retry_in_ms: scheduleRetry(), error: lastError });
      })
      .finally(() => {
        running = undefined;
        if (again && !retryTimer) kick();
      });
  }

  return {
    async start() {
      await storage.transaction((tx) => tx.appservices.initState(id, deps.visiblePos()));
      const state = await storage.appservices.getState(id);
      if (!state) throw new Error(`application service ${id}: its delivery state was not created`);
      cursor = storedCursor = state.streamPos;
      lastTxnId = state.lastTxnId;
      inFlight = state.inFlight ? { ...state.inFlight, count: (JSON.parse(state.inFlight.body) as { events: unknown[] }).events.length } : null;
      if (inFlight) logger.info({ txn_id: inFlight.txnId }, "resending the application service transaction in flight");
      // A safety net for wake-ups that raced a commit: look at the stream once a second.
      pollTimer = setInterval(() => {
        if (deps.visiblePos() > cursor || inFlight) kick();
      }, 1000);
      pollTimer.unref();
      kick();
    },

    wake(streamPos) {
      if (streamPos > wanted) wanted = streamPos;
      kick();
    },

    retryNow() {
      if (!retryTimer) return;
      clearTimeout(retryTimer);
      retryTimer = undefined;
      nextRetryTs = null;
      kick();
    },

    typing(roomId, userIds) {
      if (!registration.receiveEphemeral) return;
      pendingTyping.set(roomId, userIds);
      kick();
    },

    status: () => ({ state, streamPos: cursor, inFlight: inFlight?.txnId ?? null, failures, lastError, nextRetryTs }),

    async close() {
      closed = true;
      clearTimeout(retryTimer);
      clearTimeout(cursorTimer);
      clearInterval(pollTimer);
      retryTimer = undefined;
      closing.abort();
      await running;
      await writeCursor();
    },
  };
}
