// The room service: the single writer of every room hosted here. STUB: being implemented (issue 3).
import type { Logger } from "pino";
import type { SigningKey } from "../core/signing.js";
import type { Storage } from "../storage/ports.js";
import type { StreamTracker } from "../storage/stream-tracker.js";
import type { ProfilePropagator, SyncNotifier } from "../client-api/contracts.js";

export interface RoomServiceDeps {
  serverName: string;
  signingKey: SigningKey;
  storage: Storage;
  streams: StreamTracker;
  notifier: SyncNotifier;
  logger: Logger;
  now: () => number;
}

export interface RoomService extends ProfilePropagator {}

export function createRoomService(_deps: RoomServiceDeps): RoomService {
  return { profileChanged: async () => undefined };
}
