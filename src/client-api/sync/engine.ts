// The sync engine (Client-Server API GET /sync): long-polls that wake within milliseconds of a
// relevant change, and the typing tracker whose changes are part of sync.
//
// A request computes the response for (since, visible]; when it is empty and `timeout` allows, it
// waits on the user's key and the keys of the rooms they are in (notifier.ts), then computes
// again. The waiter is registered before computing, so a change that commits meanwhile still
// wakes it. A long-poll whose token is already current (the usual case: the client just got the
// last answer) waits without computing, unless typing or left-over to-device messages say otherwise.
import type { Logger } from "pino";
import { EventDecorator } from "../../rooms/event-decorator.js";
import type { MembershipIndex } from "../../rooms/membership-index.js";
import { RecentEvents } from "../../rooms/recent-events.js";
import { TransactionEchoes } from "../../rooms/transaction-echoes.js";
import type { Storage } from "../../storage/ports.js";
import type { StreamTracker } from "../../storage/stream-tracker.js";
import type { SyncNotifier } from "../contracts.js";
import { buildSyncResponse, nothingNewSince, type SyncReaders, type SyncRequest } from "./build-response.js";
import { StreamChangeCache } from "./change-cache.js";
import { KeyCountsCache } from "./key-counts.js";
import { roomKey, SyncWaiters, userKey } from "./notifier.js";
import { TypingTracker } from "./typing.js";
import type { JsonObject } from "../../core/json.js";

/**
 * The client end of one /sync request. A long-poll whose client has gone stops waiting. Only a
 * sync that is about to wait asks to hear of it, so an answer given at once costs no listener.
 */
export interface SyncClient {
  /** Whether the client has closed the connection before the answer was written. */
  gone(): boolean;
  /** Calls `listener` once if the client goes later (at most one call per request). */
  onGone(listener: () => void): void;
}

/** Longest a sync is held, whatever `timeout` the client asks for. */
export const MAX_SYNC_TIMEOUT_MS = 60_000;

export interface SyncEngine {
  readonly notifier: SyncNotifier;
  readonly typing: TypingTracker;
  /** Shared with the room service: the sending device sees `transaction_id` on its events. */
  readonly transactions: TransactionEchoes;
  readonly decorator: EventDecorator;
  /** Shared with the room service, whose writer keeps it current: timelines are read from it. */
  readonly recentEvents: RecentEvents;
  /** One /sync: returns at once when there is something new, else waits up to `timeoutMs`. */
  sync(request: SyncRequest, timeoutMs: number, client: SyncClient): Promise<JsonObject>;
  /** Ends every waiting long-poll (graceful shutdown). */
  close(): void;
  /** /sync requests being answered or waiting now (metrics). */
  inProgress(): number;
}

export function createSyncEngine(deps: {
  storage: Storage;
  streams: StreamTracker;
  memberships: MembershipIndex;
  logger: Logger;
  now: () => number;
  /** The cache of recent events, when the caller wants one that also counts them (admin/metrics.ts). */
  recentEvents?: RecentEvents;
}): SyncEngine {
  const { storage, streams, memberships, now } = deps;
  const waiters = new SyncWaiters(streams);
  const typing = new TypingTracker(now, (roomId) => waiters.wakeKeys([roomKey(roomId)]));
  const transactions = new TransactionEchoes();
  const decorator = new EventDecorator(storage, transactions, now);
  // Everything committed before start-up is below the floor: older tokens get full answers.
  const changes = new StreamChangeCache(streams.visible);
  const keyCounts = new KeyCountsCache(storage.keys);
  const recentEvents = deps.recentEvents ?? new RecentEvents();
  const readers: SyncReaders = { storage, decorator, typing, changes, memberships, recentEvents, keyCounts, toDeviceBacklog: new Set() };
  let closed = false;
  let inProgress = 0;
  // The keys a user's long-poll waits on, per version of their memberships (the index replaces a
  // user's map whenever it changes, so a map seen before has the same rooms).
  const waitKeysByMemberships = new WeakMap<ReadonlyMap<string, string>, string[]>();
  const waitKeysOf = (userId: string, rooms: ReadonlyMap<string, string>): string[] => {
    let keys = waitKeysByMemberships.get(rooms);
    if (keys === undefined) {
      keys = [userKey(userId)];
      for (const roomId of rooms.keys()) keys.push(roomKey(roomId));
      waitKeysByMemberships.set(rooms, keys);
    }
    return keys;
  };

  const notifier: SyncNotifier = {
    notifyUsers: (userIds, streamPos) => waiters.notifyUsers(userIds, streamPos),
    notifyRoom: (roomId, streamPos) => waiters.notifyRoom(roomId, streamPos),
    recordChange(stream, entities, streamPos) {
      changes.record(stream, entities, streamPos);
      // Devices deleted or re-created: their key counts go with them.
      if (stream === "device_lists") for (const userId of entities) keyCounts.invalidateUser(userId);
    },
    oneTimeKeysChanged: (userId, deviceId) => keyCounts.invalidateDevice(userId, deviceId),
  };

  return {
    notifier,
    typing,
    transactions,
    decorator,
    recentEvents,
    async sync(request, timeoutMs, client) {
      const deadline = now() + Math.min(timeoutMs, MAX_SYNC_TIMEOUT_MS);
      let cancelWait: (() => void) | undefined;
      let watching = false;
      // One last look, so a change that woke us at the deadline (or as the client left) is not lost.
      const lastLook = async (): Promise<JsonObject> => (await buildSyncResponse(readers, request, streams.visible, typing.currentSerial)).body;
      inProgress += 1;
      try {
        for (;;) {
          const rooms = await memberships.membershipsOf(request.userId);
          const remaining = deadline - now();
          // Registered before computing: a change committed while computing still wakes it.
          const waiting = remaining > 0 && !closed ? waiters.wait(waitKeysOf(request.userId, rooms), remaining) : undefined;
          try {
            const toPos = streams.visible;
            const typingSerial = typing.currentSerial;
            // A long-poll that arrives with the current token (the usual case) waits at once.
            if (waiting === undefined || !nothingNewSince(readers, request, rooms, toPos, typingSerial)) {
              const { body, empty } = await buildSyncResponse(readers, request, toPos, typingSerial);
              if (!empty || waiting === undefined || closed) return body;
            }
            if (!watching) {
              watching = true;
              client.onGone(() => cancelWait?.());
            }
            if (client.gone()) return await lastLook();
            cancelWait = waiting.cancel;
            await waiting.woken;
            if (client.gone() || closed || now() >= deadline) return await lastLook();
          } finally {
            waiting?.cancel();
            cancelWait = undefined;
          }
        }
      } finally {
        inProgress -= 1;
      }
    },
    inProgress: () => inProgress,
    close() {
      closed = true;
      waiters.close();
      typing.close();
    },
  };
}
