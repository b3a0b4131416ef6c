// The reference MLS client: one Matrix device taking part in Bobbin's encrypted rooms (issue 5 "A
// reference MLS client"; contract sections 1-5). It ties together the device's keys (MlsDevice),
// the Client-Server API (ClientServerApi) and its rooms' groups (EncryptedRooms, fed by /sync),
// and carries out the operations: create a room, add users, commit (rebuilt after a lost epoch),
// remove departed devices, join externally, send. Operations of one client run one at a time.
//
// Not kept: state across restarts (groups live in memory), more than one process per device.
import { loadCiphersuite, ROOM_ALGORITHM, EPOCH_CONFLICT_ERRCODE, KEY_PACKAGE_ALGORITHM, ENCRYPTED_EVENT_TYPE } from "./algorithms.js";
import { ClientServerApi, MatrixApiError, type Session } from "./client-server-api.js";
import { readClaimedKeyPackages, resolveIntent, type ClaimedKeyPackage, type CommitIntent, type DeviceRef } from "./commit-intent.js";
import { MlsDevice, DEFAULT_KEY_PACKAGE_TARGETS, type KeyPackageTargets } from "./device.js";
import { verifyDeviceObject } from "./device-object.js";
import { buildCommitRequest, buildEncryptedContent, decodeMlsBase64, type DecryptedEvent } from "./event-content.js";
import { deviceKey, type DeviceIdentity } from "./identity.js";
import { RoomGroup, type PendingCommit } from "./room-group.js";
import { EncryptedRooms, emptySyncResult, mergeSyncResults, type SyncResult } from "./encrypted-rooms.js";
import { readSync, SYNC_FILTER } from "./sync-reading.js";

export interface CommitOutcome {
  eventId: string;
  /** The new epoch. */
  epoch: number;
  /** 1 + the number of times the commit lost its epoch and was rebuilt. */
  attempts: number;
  added: DeviceRef[];
  removed: DeviceRef[];
}

export interface MlsClientOptions {
  keyPackageTargets?: KeyPackageTargets;
  /** Lost-epoch retries before giving up. */
  maxCommitAttempts?: number;
  /** How long to wait for the commit that won an epoch to show up in /sync. */
  catchUpTimeoutMs?: number;
  fetchImpl?: typeof fetch;
}

export class MlsClient {
  private readonly rooms: EncryptedRooms;
  /** What syncs run inside other operations (catching up after a lost epoch) received. */
  private inbox = emptySyncResult();
  private since: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly api: ClientServerApi,
    readonly device: MlsDevice,
    private readonly options: Required<Omit<MlsClientOptions, "fetchImpl" | "keyPackageTargets">>,
  ) {
    this.rooms = new EncryptedRooms(device, (roomId, from, limit) => api.messagesBefore(roomId, from, limit));
  }

  /** A client for an existing session (access token pair); publishes a fresh MLS identity for the device. */
  static async fromSession(baseUrl: string, session: Session, options: MlsClientOptions = {}): Promise<MlsClient> {
    const cs = await loadCiphersuite();
    const api = new ClientServerApi(baseUrl, session, options.fetchImpl);
    const device = await MlsDevice.generate(session.userId, session.deviceId, cs, options.keyPackageTargets ?? DEFAULT_KEY_PACKAGE_TARGETS);
    await device.publish(api);
    return new MlsClient(api, device, { maxCommitAttempts: options.maxCommitAttempts ?? 5, catchUpTimeoutMs: options.catchUpTimeoutMs ?? 20_000 });
  }

  /** A client from an access token alone (`whoami` names the user and device). */
  static async fromAccessToken(baseUrl: string, accessToken: string, options: MlsClientOptions = {}): Promise<MlsClient> {
    return MlsClient.fromSession(baseUrl, await ClientServerApi.whoami(baseUrl, accessToken, options.fetchImpl), options);
  }

  /** Logs in with a password (a new device) and publishes its MLS identity. */
  static async login(baseUrl: string, user: string, password: string, options: MlsClientOptions = {}): Promise<MlsClient> {
    return MlsClient.fromSession(baseUrl, await ClientServerApi.login(baseUrl, user, password, { fetchImpl: options.fetchImpl }), options);
  }

  get userId(): string {
    return this.api.session.userId;
  }

  get deviceId(): string {
    return this.api.session.deviceId;
  }

  /** The group of a room this device is in. */
  group(roomId: string): RoomGroup | undefined {
    return this.rooms.group(roomId);
  }

  private exclusive<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.queue.then(operation, operation);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Creates a room encrypted with MLS (contract section 1) and its group, and makes the first
   * commit (adding this user's other devices, if any have KeyPackages) so that messages can be
   * sent at once. Invited users are added once they have joined (`addUsers`).
   */
  createEncryptedRoom(options: { invite?: string[]; name?: string; preset?: string } = {}): Promise<{ roomId: string; commit: CommitOutcome }> {
    return this.exclusive(async () => {
      const roomId = await this.api.createRoom({
        preset: options.preset ?? "private_chat",
        creation_content: { encryption: { algorithm: ROOM_ALGORITHM } },
        ...(options.invite ? { invite: options.invite } : {}),
        ...(options.name ? { name: options.name } : {}),
      });
      const own = await this.device.privateKeyPackage();
      this.device.keyPackages.consume(own);
      this.rooms.add(await RoomGroup.create(roomId, own, this.device.cs));
      const { claimed } = await this.claimFor(roomId, [this.userId]);
      const commit = await this.commitIntent(roomId, { add: claimed, remove: [] });
      if (!commit) throw new Error("the first commit made no change");
      return { roomId, commit };
    });
  }

  /**
   * Claims KeyPackages for every MLS device of `userIds` not yet in the room's group (one
   * keys/query and one keys/claim request for all of them).
   */
  claimKeyPackages(roomId: string, userIds: string[]): Promise<{ claimed: ClaimedKeyPackage[]; missing: Array<DeviceRef & { reason: string }> }> {
    return this.exclusive(() => this.claimFor(roomId, userIds));
  }

  private async claimFor(roomId: string, userIds: string[]): Promise<{ claimed: ClaimedKeyPackage[]; missing: Array<DeviceRef & { reason: string }> }> {
    const group = this.requireGroup(roomId);
    const published = new Map<string, DeviceIdentity>();
    const asked: DeviceRef[] = [];
    const missing: Array<DeviceRef & { reason: string }> = [];
    const devices = await this.api.queryKeys(userIds);
    for (const [userId, byDevice] of Object.entries(devices)) {
      for (const [deviceId, object] of Object.entries(byDevice)) {
        if (!object.algorithms?.includes(ROOM_ALGORITHM) || group.hasDevice(userId, deviceId)) continue;
        if (userId === this.userId && deviceId === this.deviceId) continue;
        const identity = await verifyDeviceObject(object, userId, deviceId, this.device.cs);
        if (!identity) {
          missing.push({ userId, deviceId, reason: "its device object does not verify" });
          continue;
        }
        published.set(deviceKey(userId, deviceId), identity);
        asked.push({ userId, deviceId });
      }
    }
    if (asked.length === 0) return { claimed: [], missing };
    const claims: Record<string, Record<string, string>> = {};
    for (const { userId, deviceId } of asked) (claims[userId] ??= {})[deviceId] = KEY_PACKAGE_ALGORITHM;
    const reading = readClaimedKeyPackages(asked, await this.api.claimKeys(claims), published);
    return { claimed: reading.claimed, missing: [...missing, ...reading.missing] };
  }

  /** Adds every MLS device of `userIds` (who must have joined the room) in one commit. */
  addUsers(roomId: string, userIds: string[]): Promise<{ commit: CommitOutcome | undefined; missing: Array<DeviceRef & { reason: string }> }> {
    return this.exclusive(async () => {
      const { claimed, missing } = await this.claimFor(roomId, userIds);
      const commit = claimed.length > 0 ? await this.commitIntent(roomId, { add: claimed, remove: [] }) : undefined;
      return { commit, missing };
    });
  }

  /**
   * Commits `intent`; an empty intent is a key update. When another commit took the epoch (409
   * ORG.BOBBIN.MLS_EPOCH_CONFLICT), processes the timeline up to the epoch the hub names and
   * builds the commit again on it. Undefined when nothing was left to do.
   */
  commit(roomId: string, intent: CommitIntent = { add: [], remove: [] }): Promise<CommitOutcome | undefined> {
    return this.exclusive(() => this.commitIntent(roomId, intent));
  }

  private async commitIntent(roomId: string, intent: CommitIntent): Promise<CommitOutcome | undefined> {
    for (let attempt = 1; ; attempt++) {
      const group = this.requireGroup(roomId);
      const resolved = resolveIntent(intent, group.members());
      if (resolved.nothingLeft) return undefined;
      const pending = await group.prepareCommit(resolved.proposals);
      try {
        const accepted = await this.submit(roomId, pending, group.currentCommitEventId);
        group.applyOwnCommit(pending, accepted.event_id);
        return { eventId: accepted.event_id, epoch: accepted.epoch, attempts: attempt, added: resolved.added, removed: resolved.removed };
      } catch (error) {
        const currentEpoch = epochConflictOf(error);
        if (currentEpoch === undefined || attempt >= this.options.maxCommitAttempts) throw error;
        await this.catchUp(roomId, currentEpoch);
      }
    }
  }

  private submit(roomId: string, pending: PendingCommit, prevCommitEventId: string | undefined) {
    return this.api.submitCommit(roomId, buildCommitRequest(pending.commit, pending.groupInfo, pending.welcome, prevCommitEventId));
  }

  /** Syncs until the room's group reaches `epoch` (the winning commit is in the timeline by then). */
  private async catchUp(roomId: string, epoch: bigint): Promise<void> {
    const deadline = Date.now() + this.options.catchUpTimeoutMs;
    while (this.requireGroup(roomId).epoch < epoch) {
      if (Date.now() > deadline) throw new Error(`${roomId}: epoch ${epoch} did not arrive in /sync`);
      mergeSyncResults(this.inbox, await this.syncOnce(1_000));
    }
  }

  /**
   * Removes from the group the devices of users who left or were removed from the room (the
   * server lists them: contract section 5, `GET .../devices`).
   */
  removeDepartedDevices(roomId: string): Promise<CommitOutcome | undefined> {
    return this.exclusive(async () => {
      const { departed } = await this.api.departedDevices(roomId);
      const remove = Object.entries(departed).flatMap(([userId, deviceIds]) => deviceIds.map((deviceId) => ({ userId, deviceId })));
      return remove.length === 0 ? undefined : this.commitIntent(roomId, { add: [], remove });
    });
  }

  /**
   * Joins a room's group with an external commit from the GroupInfo the server stores (contract
   * section 5, `GET .../group_info`); the user must have joined the room. Retries on a lost epoch
   * with the newer GroupInfo.
   */
  joinExternally(roomId: string): Promise<CommitOutcome> {
    return this.exclusive(async () => {
      for (let attempt = 1; ; attempt++) {
        const stored = await this.api.groupInfo(roomId);
        const groupInfo = decodeMlsBase64(stored.group_info, "mls_group_info");
        if (!groupInfo) throw new Error(`${roomId}: the stored GroupInfo does not decode`);
        const own = await this.device.privateKeyPackage();
        this.device.keyPackages.consume(own);
        const pending = await RoomGroup.prepareExternalJoin(groupInfo.groupInfo, own, this.device.cs);
        try {
          const accepted = await this.submit(roomId, pending, stored.commit_event_id);
          this.rooms.add(RoomGroup.fromExternalJoin(roomId, pending, accepted.event_id, this.device.cs));
          return { eventId: accepted.event_id, epoch: accepted.epoch, attempts: attempt, added: [{ userId: this.userId, deviceId: this.deviceId }], removed: [] };
        } catch (error) {
          if (epochConflictOf(error) === undefined || attempt >= this.options.maxCommitAttempts) throw error;
        }
      }
    });
  }

  /** Encrypts `content` for the room's group and sends it as `m.room.encrypted`; returns the event ID. */
  sendMessage(roomId: string, content: Record<string, unknown>, type = "m.room.message"): Promise<string> {
    return this.exclusive(async () => {
      const group = this.requireGroup(roomId);
      const commitEventId = group.currentCommitEventId;
      if (commitEventId === undefined) throw new Error(`${roomId}: no commit yet; messages need epoch 1 or later`);
      const event: DecryptedEvent = { type, content };
      const eventId = await this.api.sendEvent(roomId, ENCRYPTED_EVENT_TYPE, buildEncryptedContent(await group.encrypt(event), commitEventId));
      this.rooms.sent(eventId, event);
      return eventId;
    });
  }

  /**
   * One /sync: joins from Welcomes, applies commits and decrypts messages in timeline order, tops
   * up KeyPackages. Returns what happened, including what syncs inside other operations saw.
   */
  sync(timeoutMs = 0): Promise<SyncResult> {
    return this.exclusive(async () => {
      const result = this.inbox;
      this.inbox = emptySyncResult();
      mergeSyncResults(result, await this.syncOnce(timeoutMs));
      return result;
    });
  }

  private async syncOnce(timeoutMs: number): Promise<SyncResult> {
    const reading = readSync(await this.api.sync(this.since, timeoutMs, SYNC_FILTER));
    const result = await this.rooms.apply(reading);
    this.since = reading.nextBatch;
    await this.device.topUp(this.api, reading.keyCounts);
    return result;
  }

  private requireGroup(roomId: string): RoomGroup {
    const group = this.rooms.group(roomId);
    if (!group) throw new Error(`${this.deviceId} is not in the MLS group of ${roomId}`);
    return group;
  }
}

/** The `current_epoch` of a 409 epoch conflict, or undefined for any other error. */
export function epochConflictOf(error: unknown): bigint | undefined {
  if (!(error instanceof MatrixApiError) || error.status !== 409 || error.errcode !== EPOCH_CONFLICT_ERRCODE) return undefined;
  const current = error.body.current_epoch;
  return typeof current === "number" && Number.isSafeInteger(current) ? BigInt(current) : undefined;
}
