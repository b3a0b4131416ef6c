// Interfaces between the Client-Server API's areas and the services beneath them, so that each
// area can be built and tested on its own and app/ wires the implementations together.
import type { Logger } from "pino";
import type { JsonObject, JsonValue } from "../core/json.js";
import type { SigningKey } from "../core/signing.js";
import type { Storage } from "../storage/ports.js";
import type { StreamTracker } from "../storage/stream-tracker.js";
import type { RateLimiter, TokenAuthenticator } from "./http.js";

/**
 * What changed at a stream position, by the entity a sync asks about: a room (`room_events`,
 * `receipts`) or a user (the rest; `device_lists` is the user whose devices changed).
 */
export type ChangeStream = "room_events" | "receipts" | "membership" | "to_device" | "account_data" | "device_lists";

/** Wakes long-polling syncs and tells them what changed. Implemented by the sync engine (sync/). */
export interface SyncNotifier {
  /** New per-user data at `streamPos` (to-device, account data, device lists, invites). */
  notifyUsers(userIds: Iterable<string>, streamPos: number): void;
  /** New events (or typing, receipts) in a room at `streamPos`. */
  notifyRoom(roomId: string, streamPos: number): void;
  /**
   * Records that `entities` change in `stream` at `streamPos`. Call it as soon as the position is
   * allocated, before the change commits (inside `StreamTracker.withPositions`): incremental syncs
   * skip the reads of whatever has no recorded change since their token, so a change recorded
   * only after its position became visible could be missed for good.
   */
  recordChange(stream: ChangeStream, entities: Iterable<string>, streamPos: number): void;
  /** A device's one-time or fallback keys changed (uploaded or claimed): its cached counts are stale. */
  oneTimeKeysChanged(userId: string, deviceId: string): void;
}

/** Profile changes update the user's membership events in every joined room (rooms service). */
export interface ProfilePropagator {
  profileChanged(userId: string, profile: { displayname: string | null; avatarUrl: string | null }): Promise<void>;
  /** A deactivated account leaves every room it is in, and its invites are rejected. */
  leaveAllRooms(userId: string): Promise<void>;
}

/** Profiles of users on other servers, asked over federation (implemented by federation/queries.ts). */
export interface RemoteProfiles {
  /** Throws MatrixError M_NOT_FOUND when the user or their server has no answer. */
  queryProfile(userId: string): Promise<{ displayname?: string; avatar_url?: string }>;
}

/** Room aliases of other servers, asked over federation (implemented by federation/queries.ts). */
export interface RemoteDirectory {
  /** Throws MatrixError M_NOT_FOUND when the alias or its server has no answer. */
  queryAlias(alias: string): Promise<{ room_id: string; servers: string[] }>;
}

/**
 * Ephemeral data for users on other servers (DESIGN.md "Room EDUs": typing and receipts go through
 * the room's hub, to-device messages and device-list updates straight to the users' servers).
 * Implemented by federation/edus-out.ts; each call queues EDUs durably and returns.
 */
export interface RemoteEdus {
  /** A local user's typing notification in a room shared with other servers. */
  typing(roomId: string, userId: string, typing: boolean, timeoutMs: number): Promise<void>;
  /** A local user's public read receipt (`m.read`). */
  receipt(roomId: string, userId: string, receipt: { receiptType: string; eventId: string; ts: number; threadId: string | null }): Promise<void>;
  /** To-device messages from a local user to users of other servers: user -> device (or `*`) -> content. */
  toDevice(sender: string, eventType: string, messages: Map<string, Map<string, JsonObject>>): Promise<void>;
  /** A local user's device got new keys or was deleted. */
  deviceListChanged(userId: string, deviceId: string, change: { deleted: boolean; keys?: JsonObject }): Promise<void>;
}

/**
 * End-to-end keys of users on other servers, asked of the users' own server (Server-Server API
 * "End-to-End Encryption"; LM draft "One Time Key Claiming"). Implemented by
 * federation/remote-keys.ts. Each call throws when `server` gives no usable answer within
 * `timeoutMs`; the answer keeps only the users and devices that were asked for.
 */
export interface RemoteKeys {
  /** `device_keys`: user -> device IDs (empty: every device) -> user -> device -> device keys. */
  query(server: string, deviceKeys: Record<string, string[]>, timeoutMs: number): Promise<Record<string, Record<string, JsonObject>>>;
  /** `one_time_keys`: user -> device -> algorithm -> user -> device -> `<algorithm>:<key id>` -> key. */
  claim(server: string, oneTimeKeys: Record<string, Record<string, string>>, timeoutMs: number): Promise<Record<string, Record<string, Record<string, JsonValue>>>>;
}

/** Everything a Client-Server API route factory may need; app/ builds it once. */
export interface ClientApiContext {
  readonly serverName: string;
  readonly storage: Storage;
  readonly streams: StreamTracker;
  readonly notifier: SyncNotifier;
  readonly authenticator: TokenAuthenticator;
  readonly rateLimiter: RateLimiter;
  readonly logger: Logger;
  readonly signingKey: SigningKey;
  /** Milliseconds since the epoch; injected so tests can control time. */
  readonly now: () => number;
  /** EDUs for other servers; absent when the server does not federate. */
  readonly remoteEdus?: RemoteEdus;
}
