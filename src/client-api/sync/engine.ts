// The sync engine (Client-Server API GET /sync): long-polls that wake within milliseconds of a
// relevant change, and the typing tracker whose changes are part of sync.
//
// A request computes the response for (since, visible]; when it is empty and `timeout` allows, it
// waits on the user's key and the keys of the rooms they are in (notifier.ts), then computes
// again. The waiter is registered before computing, so a change that commits meanwhile still
// wakes it.
import type { Logger } from "pino";
import { EventDecorator } from "../../rooms/event-decorator.js";
import type { MembershipIndex } from "../../rooms/membership-index.js";
import { RecentEvents } from "../../rooms/recent-events.js";
import { TransactionEchoes } from "../../rooms/transaction-echoes.js";
import type { Storage } from "../../storage/ports.js";
import type { StreamTracker } from "../../storage/stream-tracker.js";
import type { SyncNotifier } from "../contracts.js";
import { buildSyncResponse, type SyncReaders, type SyncRequest } from "./build-response.js";
import { StreamChangeCache } from "./change-cache.js";
import { KeyCountsCache } from "./key-counts.js";
import { roomKey, SyncWaiters, userKey } from "./notifier.js";
import { TypingTracker } from "./typing.js";
import type { JsonObject } from "../../core/json.js";

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
  sync(request: SyncRequest, timeoutMs: number, signal: AbortSignal): Promise<JsonObject>;
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
    async sync(request, timeoutMs, signal) {
      const deadline = now() + Math.min(timeoutMs, MAX_SYNC_TIMEOUT_MS);
      let cancelWait: (() => void) | undefined;
      const onAbort = (): void => cancelWait?.();
      signal.addEventListener("abort", onAbort, { once: true });
      inProgress += 1;
      try {
        for (;;) {
          const rooms = await memberships.membershipsOf(request.userId);
          const keys = [userKey(request.userId), ...[...rooms.keys()].map(roomKey)];
          const remaining = deadline - now();
          // Registered before computing: a change committed while computing still wakes it.
          const waiting = remaining > 0 && !closed && !signal.aborted ? waiters.wait(keys, remaining) : undefined;
          cancelWait = waiting?.cancel;
          try {
            const toPos = streams.visible;
            const typingSerial = typing.currentSerial;
            const { body, empty } = await buildSyncResponse(readers, request, toPos, typingSerial);
            if (!empty || waiting === undefined || signal.aborted || closed) return body;
            await waiting.woken;
            if (signal.aborted || closed || now() >= deadline) {
              // One last look, so a change that woke us at the deadline is not lost.
              return (await buildSyncResponse(readers, request, streams.visible, typing.currentSerial)).body;
            }
          } finally {
            waiting?.cancel();
            cancelWait = undefined;
          }
        }
      } finally {
        inProgress -= 1;
        signal.removeEventListener("abort", onAbort);
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
