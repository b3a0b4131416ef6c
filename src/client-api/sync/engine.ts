// The sync engine and its notifier. STUB: being implemented (issue 3).
import type { Logger } from "pino";
import type { Storage } from "../../storage/ports.js";
import type { StreamTracker } from "../../storage/stream-tracker.js";
import type { SyncNotifier } from "../contracts.js";

export interface SyncEngine {
  readonly notifier: SyncNotifier;
  /** Ends every waiting long-poll (graceful shutdown). */
  close(): void;
}

export function createSyncEngine(_deps: { storage: Storage; streams: StreamTracker; logger: Logger; now: () => number }): SyncEngine {
  return { notifier: { notifyUsers: () => undefined, notifyRoom: () => undefined }, close: () => undefined };
}
