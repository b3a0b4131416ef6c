// Storage ports: the narrow interfaces the services use. Only src/storage/knex/ implements them
// (one implementation for SQLite and PostgreSQL); nothing outside src/storage imports knex.
//
// Conventions
// - Every write a request makes happens inside one `storage.transaction(...)`; the `StorageTx`
//   handed to the callback has the same repositories as `Storage`, bound to the transaction.
// - Stream positions: one server-wide, strictly increasing sequence numbers every change a sync
//   must report (events, receipts, account data, to-device messages, device-list changes). The
//   caller allocates them from the StreamTracker (src/storage/stream-tracker.ts) inside the
//   transaction, so syncs never see a position before everything below it has committed.
// - JSON columns hold the canonical wire JSON; repositories parse and return objects.
// - Timestamps are milliseconds since the epoch, passed in by the caller (services own the clock).
import type { Pdu } from "../core/events.js";
import type { JsonObject, JsonValue } from "../core/json.js";

// ---------------------------------------------------------------------------------------------
// Accounts: users, devices, access tokens, profiles.

export interface UserRow {
  userId: string;
  localpart: string;
  /** scrypt hash in PHC-like string form; null for accounts that cannot log in with a password. */
  passwordHash: string | null;
  isAdmin: boolean;
  isGuest: boolean;
  deactivated: boolean;
  displayname: string | null;
  avatarUrl: string | null;
  createdTs: number;
  /** Application service that registered the user, if any. */
  appserviceId: string | null;
}

export interface DeviceRow {
  userId: string;
  deviceId: string;
  displayName: string | null;
  lastSeenTs: number | null;
  lastSeenIp: string | null;
  createdTs: number;
}

export interface AccessTokenRow {
  /** SHA-256 of the token, hex: tokens are never stored in clear. */
  tokenHash: string;
  userId: string;
  deviceId: string;
  createdTs: number;
  /** Null: does not expire. */
  expiresTs: number | null;
}

export interface AccountsRepo {
  createUser(user: UserRow): Promise<void>;
  getUser(userId: string): Promise<UserRow | undefined>;
  /** Case-sensitive lookup; callers fold case before. */
  getUserByLocalpart(localpart: string): Promise<UserRow | undefined>;
  updateUser(userId: string, changes: Partial<Omit<UserRow, "userId" | "localpart" | "createdTs">>): Promise<void>;
  /** `nameContains`: in the user ID or display name; `userIdContains`: in the user ID (both case-insensitive). */
  listUsers(options: { from?: number; limit: number; nameContains?: string; userIdContains?: string; includeGuests?: boolean; includeDeactivated?: boolean }): Promise<{ users: UserRow[]; total: number }>;
  /** Users whose ID or display name contains `term` (case-insensitive), for the user directory. */
  searchUsers(term: string, limit: number): Promise<UserRow[]>;

  upsertDevice(device: DeviceRow): Promise<void>;
  getDevice(userId: string, deviceId: string): Promise<DeviceRow | undefined>;
  listDevices(userId: string): Promise<DeviceRow[]>;
  updateDevice(userId: string, deviceId: string, changes: Partial<Pick<DeviceRow, "displayName" | "lastSeenTs" | "lastSeenIp">>): Promise<void>;
  /** Deletes the devices, their access tokens, device keys, one-time keys and to-device inbox. */
  deleteDevices(userId: string, deviceIds: string[]): Promise<void>;

  createAccessToken(token: AccessTokenRow): Promise<void>;
  getAccessToken(tokenHash: string): Promise<AccessTokenRow | undefined>;
  deleteAccessToken(tokenHash: string): Promise<void>;
  deleteAccessTokensOfUser(userId: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Rooms and the linear event log (DESIGN.md "Storage").

export interface RoomRow {
  roomId: string;
  roomVersion: string;
  creator: string;
  /** The room's hub (LM draft "Hub Selection"); this server for rooms created here. */
  hubServer: string;
  /** Published in the public room directory. */
  isPublic: boolean;
  createdTs: number;
}

/** A room as the admin room list shows it (EventsRepo.listRoomSummaries). */
export interface RoomSummary {
  room: RoomRow;
  joinedMembers: number;
  joinedLocalMembers: number;
  /** Number of current state entries. */
  stateEvents: number;
  /** Event type -> content of the room's current state event of that type with state key "". */
  state: Record<string, JsonObject>;
}

/** An event as stored: its place in the room (`roomSeq`, 0 = create) and in the server-wide stream. */
export interface StoredEvent {
  eventId: string;
  roomId: string;
  roomSeq: number;
  streamPos: number;
  pdu: Pdu;
  /** Event ID of the redaction that applies to this event, if any; `pdu` is then the redacted copy. */
  redactedBy: string | null;
  /** Soft-failed events are stored but are not part of state or timelines. */
  softFailed: boolean;
}

export interface AppendEvent {
  eventId: string;
  pdu: Pdu;
  roomSeq: number;
  streamPos: number;
  softFailed?: boolean;
}

export interface EventsRepo {
  createRoom(room: RoomRow): Promise<void>;
  getRoom(roomId: string): Promise<RoomRow | undefined>;
  setRoomPublic(roomId: string, isPublic: boolean): Promise<void>;
  /** Published rooms ordered by room ID; `since` is the room ID of the previous page's last room. */
  listPublicRooms(options: { limit: number; since?: string }): Promise<RoomRow[]>;

  /**
   * Appends one event to its room's log: the events row, and for a state event (not soft-failed)
   * the state-history row and the current-state row. Refuses (throws) a `roomSeq` that is not
   * the room's next one: the room service is the single writer of each room.
   */
  appendEvent(event: AppendEvent): Promise<void>;
  /**
   * appendEvent for consecutive events of one room, in order, in a few multi-row statements (a
   * replica created from a send_join answer holds thousands). All or nothing; the same refusals.
   */
  appendEvents(events: readonly AppendEvent[]): Promise<void>;
  getEvent(eventId: string): Promise<StoredEvent | undefined>;
  /** getEvent for many IDs at once (an auth chain): the events found, in no particular order. */
  getEvents(eventIds: readonly string[]): Promise<StoredEvent[]>;
  /** The last event of a room (highest roomSeq), if any. */
  getLastEvent(roomId: string): Promise<StoredEvent | undefined>;
  /**
   * Events of a room with afterSeq < roomSeq < beforeSeq (both bounds exclusive, each optional),
   * ascending for "forward", descending for "backward", at most `limit`. This is the log itself:
   * soft-failed events are included (flagged `softFailed`); timelines must skip them.
   */
  getRoomEvents(roomId: string, options: { afterSeq?: number; beforeSeq?: number; direction: "forward" | "backward"; limit: number }): Promise<StoredEvent[]>;
  /**
   * Events of the given rooms with fromPos < streamPos <= toPos, ascending: the latest
   * `limitPerRoom` of each room (a sync timeline), soft-failed events excluded.
   */
  getEventsInStreamRange(roomIds: string[], fromPos: number, toPos: number, limitPerRoom: number): Promise<StoredEvent[]>;
  /** Marks `eventId` redacted by `redactionId` and stores its redacted copy. */
  redactEvent(eventId: string, redactionId: string, redactedPdu: Pdu): Promise<void>;

  /** Current state of a room, as stored events. */
  getCurrentState(roomId: string): Promise<StoredEvent[]>;
  getCurrentStateEvent(roomId: string, type: string, stateKey: string): Promise<StoredEvent | undefined>;
  /** State before the event at `roomSeq` (state history rows with seq < roomSeq). */
  getStateBefore(roomId: string, roomSeq: number): Promise<StoredEvent[]>;
  getStateEventBefore(roomId: string, roomSeq: number, type: string, stateKey: string): Promise<StoredEvent | undefined>;

  /** Marks a room forgotten by a user who left it (POST /forget); a later join, invite or knock
   *  appended for that user clears the mark (appendEvent does it in the same transaction). */
  forgetRoom(userId: string, roomId: string): Promise<void>;
  isRoomForgotten(userId: string, roomId: string): Promise<boolean>;

  /**
   * A participant's replica of a room hosted elsewhere: local history starts at `firstSeq` (the
   * join; what precedes it is the state send_join answered), older history is the hub's, before
   * `beforeEventId`. Set once, when the replica is created; undefined for rooms hosted here.
   */
  setReplicaHistory(roomId: string, firstSeq: number, beforeEventId: string | null): Promise<void>;
  getReplicaHistory(roomId: string): Promise<{ firstSeq: number; beforeEventId: string | null } | undefined>;

  /** Current memberships of a user: room ID -> membership ("join", "invite", "leave", "ban", "knock"). */
  getMembershipsOfUser(userId: string): Promise<Map<string, string>>;
  /** User IDs with the given current membership in a room. */
  getMembers(roomId: string, membership?: string): Promise<string[]>;
  /**
   * Every room with its counts and the content of its current `stateTypes` events (state key ""),
   * for the admin room list; local members are those whose user ID ends in `:<localServer>`.
   */
  listRoomSummaries(options: { localServer: string; stateTypes: string[] }): Promise<RoomSummary[]>;
  /**
   * Rooms where a user's membership changed with fromPos < streamPos <= toPos: every change
   * (a room may appear several times), ascending by streamPos; soft-failed events excluded.
   */
  getMembershipChanges(userId: string, fromPos: number, toPos: number): Promise<Array<{ roomId: string; membership: string; streamPos: number; eventId: string }>>;
}

// ---------------------------------------------------------------------------------------------
// Client transaction IDs (idempotent sends), aliases, filters.

export interface ClientTxnsRepo {
  /** The event ID recorded for this (user, device, txnId), if the send already happened. */
  get(userId: string, deviceId: string, txnId: string): Promise<string | undefined>;
  put(userId: string, deviceId: string, txnId: string, eventId: string, ts: number): Promise<void>;
}

export interface AliasesRepo {
  create(alias: string, roomId: string, creator: string): Promise<boolean>;
  get(alias: string): Promise<{ roomId: string; creator: string } | undefined>;
  delete(alias: string): Promise<boolean>;
  listForRoom(roomId: string): Promise<string[]>;
}

export interface FiltersRepo {
  create(userId: string, filter: JsonObject): Promise<string>;
  get(userId: string, filterId: string): Promise<JsonObject | undefined>;
}

// ---------------------------------------------------------------------------------------------
// Per-user streams: account data, receipts, to-device.

export interface AccountDataRepo {
  /** `roomId` null for global account data. */
  put(userId: string, roomId: string | null, type: string, content: JsonObject, streamPos: number): Promise<void>;
  get(userId: string, roomId: string | null, type: string): Promise<JsonObject | undefined>;
  /** Entries changed with fromPos < streamPos <= toPos (all when fromPos is 0). */
  getChanged(userId: string, fromPos: number, toPos: number): Promise<Array<{ roomId: string | null; type: string; content: JsonObject }>>;
}

export interface ReceiptRow {
  roomId: string;
  userId: string;
  receiptType: string;
  threadId: string | null;
  eventId: string;
  ts: number;
  streamPos: number;
}

export interface ReceiptsRepo {
  /** Replaces the user's receipt of that type (and thread) in the room. */
  put(receipt: ReceiptRow): Promise<void>;
  getChanged(roomIds: string[], fromPos: number, toPos: number): Promise<ReceiptRow[]>;
}

export interface ToDeviceMessage {
  streamPos: number;
  userId: string;
  deviceId: string;
  sender: string;
  type: string;
  content: JsonObject;
}

export interface ToDeviceRepo {
  add(messages: ToDeviceMessage[]): Promise<void>;
  /**
   * Messages for the device with streamPos <= toPos, ascending, at most `limit`. Give each
   * message its own position: `deleteUpTo` the last one returned must not drop unreturned ones.
   */
  getPending(userId: string, deviceId: string, toPos: number, limit: number): Promise<ToDeviceMessage[]>;
  /** Deletes messages the device has acknowledged by syncing past them. */
  deleteUpTo(userId: string, deviceId: string, streamPos: number): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// End-to-end keys (generic: any algorithm; MLS specifics come with the MLS overlay).

export interface OneTimeKeyRow {
  userId: string;
  deviceId: string;
  /** `<algorithm>:<key id>` */
  keyId: string;
  algorithm: string;
  key: JsonValue;
  /** Fallback (last-resort) keys are reused when no one-time key is left. */
  fallback: boolean;
  /** Never handed out at or after this time (an MLS KeyPackage's lifetime); absent/null: no expiry. */
  expiresTs?: number | null;
}

export interface KeysRepo {
  putDeviceKeys(userId: string, deviceId: string, keys: JsonObject, streamPos: number): Promise<void>;
  getDeviceKeys(userIds: string[]): Promise<Array<{ userId: string; deviceId: string; keys: JsonObject }>>;
  /** Keys whose ID the device already uploaded are ignored (the first upload is kept). */
  addOneTimeKeys(keys: OneTimeKeyRow[]): Promise<void>;
  /** Replaces the device's fallback key for that algorithm. */
  setFallbackKey(key: OneTimeKeyRow): Promise<void>;
  /** Counts of unclaimed one-time keys per algorithm. */
  countOneTimeKeys(userId: string, deviceId: string): Promise<Record<string, number>>;
  /** Algorithms that have an unused fallback key. */
  unusedFallbackAlgorithms(userId: string, deviceId: string): Promise<string[]>;
  /**
   * Claims one key of `algorithm` for the device: a one-time key (deleted, never handed out
   * twice, also under concurrent claims) or, when none is left, the fallback key (kept, marked used).
   * With `nowMs`, keys whose `expiresTs` is not after it are never returned (expired one-time keys
   * of that algorithm are deleted on the way).
   */
  claimKey(userId: string, deviceId: string, algorithm: string, nowMs?: number): Promise<OneTimeKeyRow | undefined>;
  /** Users whose device keys changed with fromPos < streamPos <= toPos. */
  getDeviceListChanges(userIds: string[], fromPos: number, toPos: number): Promise<string[]>;
  /**
   * Records a device-list change of the user at `streamPos` without new keys (devices deleted
   * or logged out), so that getDeviceListChanges reports it (Client-Server API `/keys/changes`:
   * removed devices count as changes).
   */
  markDeviceListChanged(userId: string, streamPos: number): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Remote servers' signing keys, as the federation key ring verified them (LM draft "Retrieving
// Server Keys"). Rows are never deleted: keys that signed stored events must stay verifiable.

export interface ServerKeyRow {
  serverName: string;
  /** `ed25519:<version>` */
  keyId: string;
  /** Unpadded base64 Ed25519 public key. */
  key: string;
  /** The response's `valid_until_ts`, capped at `fetchedTs` + 7 days ("Validity"). */
  validUntilTs: number;
  /** Set when the server lists the key under `old_verify_keys`. */
  expiredTs: number | null;
  fetchedTs: number;
  /** The whole signed key response the key came from, with every signature it carried. */
  response: JsonObject;
}

export interface ServerKeysRepo {
  /** Inserts or replaces rows by (serverName, keyId). */
  putServerKeys(rows: ServerKeyRow[]): Promise<void>;
  getServerKeys(serverName: string): Promise<ServerKeyRow[]>;
}

// ---------------------------------------------------------------------------------------------
// Federation: the outbound queues (one per destination server), the retry state of each
// destination, inbound transaction IDs (idempotent `PUT /send/{txnId}`), the LPDUs a hub has
// completed, and what a participant found wrong with its hub (LM draft "Sending Events",
// "Receiving Events/PDUs"; DESIGN.md "Hub pipeline" step 6).

/** One PDU queued for one destination; the PDU itself is read from `events` by its event ID. */
export interface OutboxPduRow {
  destination: string;
  /** The event's stream position: the queue's order. */
  streamPos: number;
  eventId: string;
}

/** A queued PDU as the sender reads it: the row and the stored event (redacted copy if redacted). */
export interface OutboxPdu {
  streamPos: number;
  eventId: string;
  pdu: Pdu;
}

export interface OutboxEdu {
  /** Assigned by the database, ascending in insertion order. */
  id: number;
  destination: string;
  edu: JsonObject;
}

/** How sending to one destination is going (for backoff, restarts and the admin API). */
export interface DestinationRow {
  destination: string;
  /** Consecutive failed transactions since the last success. */
  failures: number;
  /** No transaction before this (backoff); null: send whenever there is something. */
  retryAtTs: number | null;
  lastError: string | null;
  lastSuccessTs: number | null;
}

export interface InboundTxnRow {
  origin: string;
  txnId: string;
  /** The exact 200 response body, replayed for a repeated (origin, txnId). */
  response: JsonObject;
  receivedTs: number;
}

export interface HubViolationRow {
  roomId: string;
  eventId: string;
  hubServer: string;
  reason: string;
  detectedTs: number;
}

export interface FederationRepo {
  /**
   * Queues PDUs; a (destination, streamPos) already queued is ignored. The rows of one event share
   * its streamPos and eventId: the event is stored once, with its set of destinations, so fanning
   * it out to a room's servers costs about one row.
   */
  enqueuePdus(rows: OutboxPduRow[]): Promise<void>;
  /**
   * The destination's queued PDUs, ascending by stream position, at most `limit`. An event's PDU
   * object may be the one an earlier call returned (for another destination): read-only. With
   * `afterPos`, only those after it (the sender's own cursor, ahead of the stored one between writes).
   */
  peekPdus(destination: string, limit: number, afterPos?: number): Promise<OutboxPdu[]>;
  /**
   * Removes the destination's queued PDUs with streamPos <= upToPos (acknowledged); never moves
   * its queue backwards.
   */
  ackPdus(destination: string, upToPos: number): Promise<void>;
  /**
   * Deletes the stored events every destination they were queued for has acknowledged; returns
   * how many. The outbound queues call it now and then; sending does not depend on it.
   */
  pruneOutbox(): Promise<number>;
  enqueueEdus(edus: Array<{ destination: string; edu: JsonObject }>): Promise<void>;
  /** The destination's queued EDUs, ascending by id, at most `limit`. */
  peekEdus(destination: string, limit: number): Promise<OutboxEdu[]>;
  /** Removes the destination's EDUs with id <= upToId. */
  ackEdus(destination: string, upToId: number): Promise<void>;
  /** Destinations with anything queued (PDUs or EDUs): what a restart resumes. */
  destinationsWithBacklog(): Promise<string[]>;
  /** Queued PDUs per destination (metrics, admin API). */
  countQueuedPdus(destination: string): Promise<number>;

  getDestination(destination: string): Promise<DestinationRow | undefined>;
  listDestinations(options: { from?: string; limit: number }): Promise<DestinationRow[]>;
  /** Inserts or replaces the destination's row. */
  putDestination(row: DestinationRow): Promise<void>;

  getInboundTxn(origin: string, txnId: string): Promise<InboundTxnRow | undefined>;
  putInboundTxn(row: InboundTxnRow): Promise<void>;
  /** Forgets transactions received before `beforeTs` (kept for a day). */
  pruneInboundTxns(beforeTs: number): Promise<number>;

  /** Hub side: the LPDU (by the event ID computed over the LPDU as received) became `eventId`. */
  putCompletedLpdu(lpduId: string, eventId: string, origin: string, ts: number): Promise<void>;
  getCompletedLpdu(lpduId: string): Promise<string | undefined>;
  /** putCompletedLpdu for many LPDUs in one statement (a hub's `/send` batch). */
  putCompletedLpdus(rows: ReadonlyArray<{ lpduId: string; eventId: string }>, origin: string, ts: number): Promise<void>;
  /** getCompletedLpdu for many LPDUs: LPDU ID -> event ID, for those completed already. */
  getCompletedLpdus(lpduIds: readonly string[]): Promise<Map<string, string>>;

  /** Participant side: the hub appended an event the rules forbid. */
  addHubViolation(row: HubViolationRow): Promise<void>;
  listHubViolations(roomId?: string): Promise<HubViolationRow[]>;
}

// ---------------------------------------------------------------------------------------------

/** A room a server admin blocked (admin API `DELETE /v1/rooms/{roomId}` with `block`, `PUT .../block`). */
export interface BlockedRoomRow {
  roomId: string;
  /** The admin who blocked it. */
  blockedBy: string;
  blockedTs: number;
}

export interface BlockedRoomsRepo {
  /** Blocks the room; blocking it again keeps the first record. */
  block(roomId: string, blockedBy: string, ts: number): Promise<void>;
  /** false when it was not blocked. */
  unblock(roomId: string): Promise<boolean>;
  get(roomId: string): Promise<BlockedRoomRow | undefined>;
}

// ---------------------------------------------------------------------------------------------
// Application services (Application Service API "Pushing events"): per service, a cursor over the
// server-wide event stream and the one transaction in flight, stored so that a restart resends the
// same txnId with the same body and the queue is never reordered or dropped.

export interface AppserviceTxn {
  txnId: string;
  /** The stream position of the last event the transaction covers: the cursor once it is acknowledged. */
  upToPos: number;
  /** The exact request body (JSON text), resent as is. */
  body: string;
}

export interface AppserviceStateRow {
  appserviceId: string;
  /** Every event with streamPos <= this has been delivered (or was of no interest). */
  streamPos: number;
  /** The last transaction ID used; the next is this + 1. */
  lastTxnId: number;
  inFlight: AppserviceTxn | null;
}

export interface AppserviceRepo {
  getState(appserviceId: string): Promise<AppserviceStateRow | undefined>;
  /** Creates the service's row at `streamPos` unless it exists (a new service starts at "now"). */
  initState(appserviceId: string, streamPos: number): Promise<void>;
  /** Moves the cursor forward past events of no interest; never backwards. */
  advanceCursor(appserviceId: string, streamPos: number): Promise<void>;
  /** Records the transaction about to be sent (its ID becomes lastTxnId). */
  putInFlight(appserviceId: string, txnId: number, txn: AppserviceTxn): Promise<void>;
  /** The service acknowledged `txnId`: the cursor moves to its upToPos and nothing is in flight. */
  completeInFlight(appserviceId: string, txnId: string): Promise<void>;
  /** Events of every room with fromPos < streamPos <= toPos, ascending, at most `limit`; soft-failed excluded. */
  readStream(fromPos: number, toPos: number, limit: number): Promise<StoredEvent[]>;
  /** Receipts of every room with fromPos < streamPos <= toPos, ascending, at most `limit` (services that receive EDUs). */
  readReceipts(fromPos: number, toPos: number, limit: number): Promise<ReceiptRow[]>;
  /** To-device messages of every device with fromPos < streamPos <= toPos, ascending, at most `limit` (MSC4203). */
  readToDevice(fromPos: number, toPos: number, limit: number): Promise<ToDeviceMessage[]>;
}

/** What a room purge removed: the room's events and the rows deleted per table. */
export interface RoomPurge {
  roomId: string;
  events: number;
  rows: Record<string, number>;
}

export interface PurgeRepo {
  /**
   * Deletes everything stored about the room — events, state, memberships, receipts, room account
   * data, aliases, queued federation sends, the room itself — in one transaction. Its block record
   * stays. Stream positions it held are never reused.
   */
  purgeRoom(roomId: string): Promise<RoomPurge>;
}

/** The connection pool right now (metrics): connections in use, idle, and requests waiting for one. */
export interface PoolStats {
  used: number;
  free: number;
  pending: number;
}

// ---------------------------------------------------------------------------------------------
// MLS overlay (LM draft "MLS Considerations"; Bobbin's MLS wire contract section 4): one group
// record per encrypted room, written in the transaction that appends the commit event.

export interface MlsGroupRow {
  roomId: string;
  /** The group's current epoch (the commit's epoch + 1). */
  epoch: number;
  /** Unpadded base64 MLSMessage(GroupInfo) of `epoch`, with its ratchet_tree extension. */
  groupInfo: string;
  /** The `m.mls.commit` event that started `epoch`. */
  commitEventId: string;
  /** The devices in the group's ratchet tree, from their credentials. */
  devices: Array<{ userId: string; deviceId: string }>;
}

/**
 * A Welcome waiting to be delivered (the stapled `/commit` request): recorded before its commit
 * event is sent, bound to the event when the event is appended, deleted once delivered.
 */
export interface MlsPendingWelcomeRow {
  roomId: string;
  /** SHA-256 hex of the commit's `message`. */
  commitHash: string;
  /** The epoch the commit was built on. */
  epoch: number;
  senderUser: string;
  senderDevice: string;
  /** Unpadded base64 MLSMessage(Welcome). */
  welcome: string;
  targets: Array<{ userId: string; deviceId: string }>;
  /** The commit event, once appended (accepted by the hub). */
  eventId: string | null;
  createdTs: number;
}

export interface MlsRepo {
  getGroup(roomId: string): Promise<MlsGroupRow | undefined>;
  /** Inserts or replaces the room's record, and records which event started its epoch. */
  putGroup(row: MlsGroupRow): Promise<void>;
  /** The `m.mls.commit` event that started `epoch` of the room's group (putGroup records each). */
  getEpochCommit(roomId: string, epoch: number): Promise<string | undefined>;
  /** Records a pending Welcome; a second one for the same commit is ignored. */
  addPendingWelcome(row: MlsPendingWelcomeRow): Promise<void>;
  /** Binds the room's pending Welcome of the commit to its event; whether there was one to bind. */
  bindPendingWelcome(roomId: string, commitHash: string, eventId: string): Promise<boolean>;
  getPendingWelcome(roomId: string, commitHash: string): Promise<MlsPendingWelcomeRow | undefined>;
  /** Every pending Welcome, bound or not, oldest first (at most `limit`). */
  listPendingWelcomes(limit: number): Promise<MlsPendingWelcomeRow[]>;
  deletePendingWelcome(roomId: string, commitHash: string): Promise<void>;
}

export interface StorageRepos {
  readonly accounts: AccountsRepo;
  readonly events: EventsRepo;
  readonly clientTxns: ClientTxnsRepo;
  readonly aliases: AliasesRepo;
  readonly filters: FiltersRepo;
  readonly accountData: AccountDataRepo;
  readonly receipts: ReceiptsRepo;
  readonly toDevice: ToDeviceRepo;
  readonly keys: KeysRepo;
  readonly serverKeys: ServerKeysRepo;
  readonly federation: FederationRepo;
  readonly blockedRooms: BlockedRoomsRepo;
  readonly appservices: AppserviceRepo;
  readonly mls: MlsRepo;
  readonly purge: PurgeRepo;
}

export type StorageTx = StorageRepos;

/**
 * A write that may take access away: an access token deleted (`tokenHash`), or a user's tokens or
 * devices deleted, or their admin, guest or deactivated flag changed (`userId`).
 */
export type AccessRevocation = { userId: string } | { tokenHash: string };

export interface Storage extends StorageRepos {
  readonly engine: "sqlite" | "postgres";
  /**
   * Runs `work` in one database transaction: all of it commits, or none of it. `work` must use
   * only the `tx` it is given: on SQLite the pool has one connection, which the transaction holds,
   * so a query on `Storage` itself would wait for it (until knex's acquire timeout).
   */
  transaction<T>(work: (tx: StorageTx) => Promise<T>): Promise<T>;
  /** The highest stream position stored in any stream table (0 for an empty database). */
  maxStreamPos(): Promise<number>;
  /**
   * Why this Storage refuses every write from now on, if it does: on SQLite, a failed sync of the
   * WAL (group-commit.ts). Undefined while writes work. `/health` reports it.
   */
  writeFailure(): Error | undefined;
  /**
   * Calls `listener` for every AccessRevocation this Storage writes, once the write has settled:
   * after the commit of its transaction, or after the statement outside one. It is also called when
   * the transaction failed (a needless call is harmless), so that a cache of token lookups (the auth
   * service's) can never keep serving access that was revoked.
   */
  onAccessRevoked(listener: (revocation: AccessRevocation) => void): void;
  /** The connection pool's use now; read when Prometheus scrapes. */
  poolStats(): PoolStats;
  close(): Promise<void>;
}
