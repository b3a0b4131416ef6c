// The MLS overlay's service (DESIGN.md "One commit per MLS epoch"; MLS wire contract section 4):
// keeps each encrypted room's group record and checks commits and encrypted messages as the room
// writer places them (its RoomEventPolicy), on the hub and on every replica alike. The record moves
// to the next epoch in the same transaction as the commit event that starts it, so a crash can
// never leave the two apart. ts-mls is loaded on the first event of an encrypted room.
//
// A replica without a record (it joined after commits it never saw) asks its hub for the GroupInfo
// of the epoch the next commit builds on (group-info-federation.ts) and checks the commit against
// it like any other; only when the hub cannot answer does it check the commit on its own.
// The same transaction binds a pending Welcome to its commit event (welcome-outbox.ts).
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { decodeBase64, encodeBase64 } from "../core/base64.js";
import { Errcode, MatrixError } from "../core/errors.js";
import type { RoomEvent, RoomStateView } from "../core/events.js";
import { isJsonObject, type JsonObject } from "../core/json.js";
import type { Storage, StorageTx } from "../storage/ports.js";
import type { MlsLib, MlsLoader } from "./ts-mls-adapter.js";
import { checkCommit, checkEncryptedMessage, decodeGroupRecord, identityOfLeaf, type CommitVerdict, type FailureKind, type GroupRecord, type RoomMembershipView } from "./validate.js";
import { WelcomeOutbox, type SendWelcome } from "./welcome-outbox.js";
import { bytesEqual, COMMIT_EVENT_TYPE, ENCRYPTED_EVENT_TYPE, EPOCH_CONFLICT_ERRCODE, groupIdOf, ROOM_ALGORITHM } from "../core/mls-wire.js";

/** A GroupInfo another server keeps for a room: of `epoch`, or its current one when `epoch` is undefined. */
export type GroupInfoFetcher = (server: string, roomId: string, epoch: number | undefined) => Promise<{ groupInfo: Uint8Array; epoch: number; commitEventId: string } | undefined>;

export interface MlsOverlayDeps {
  storage: Storage;
  loader: MlsLoader;
  logger: Logger;
  now: () => number;
  /** Told of every commit this server checks (a Prometheus counter, wired by app/). */
  onCommitVerdict?: (verdict: "accepted" | "rejected", kind?: FailureKind) => void;
  /** Delivers Welcomes by to-device message (wired by app/); without it they wait for a `/commit` retry. */
  sendWelcome?: SendWelcome;
  /** Asks a room's hub for a GroupInfo (federation); without it a replica without a record checks the next commit on its own. */
  fetchGroupInfo?: GroupInfoFetcher;
}

/** The key of a commit's pending Welcome: SHA-256 hex of its `message` as sent. */
export function commitHashOf(message: string): string {
  return createHash("sha256").update(message).digest("hex");
}

/** The shape room-writer.ts declares (RoomEventPolicy / RoomPolicyBatch); app/ hands this object to the room service. */
export interface MlsPolicyBatch {
  check(event: RoomEvent, stateBefore: RoomStateView): Promise<MatrixError | undefined>;
  persist(tx: StorageTx): Promise<void>;
  committed(): void;
}

/** Group records kept decoded in memory (each holds its ratchet tree); others are reloaded on demand. */
const MAX_CACHED_RECORDS = 256;

/** Whether the room was created encrypted (contract section 1: only at creation, never switched off). */
export function isEncryptedRoom(state: RoomStateView): boolean {
  const encryption = state.get("m.room.create", "")?.pdu.content.encryption;
  return isJsonObject(encryption) && encryption.algorithm === ROOM_ALGORITHM;
}

/** Membership as the commit rules read it (LM draft: joined users, or anyone in a world_readable room). */
export function membershipViewOf(state: RoomStateView): RoomMembershipView {
  return {
    membershipOf: (userId) => {
      const membership = state.get("m.room.member", userId)?.pdu.content.membership;
      return typeof membership === "string" ? membership : undefined;
    },
    worldReadable: state.get("m.room.history_visibility", "")?.pdu.content.history_visibility === "world_readable",
  };
}

/**
 * A refused commit or message as the MatrixError a client sees (contract section 5). The message
 * starts with `MLS <kind>` so that a participant can tell the kinds apart in a hub's `failed_pdus`.
 */
export function mlsError(failure: { kind: FailureKind; reason: string; currentEpoch?: number | null }): MatrixError {
  switch (failure.kind) {
    case "epoch_conflict":
      // Bobbin's own errcode (contract section 5), outside the spec's Errcode list.
      return new MatrixError(EPOCH_CONFLICT_ERRCODE as Errcode, 409, `MLS epoch_conflict (current epoch ${failure.currentEpoch ?? "unknown"}): ${failure.reason}`, { current_epoch: failure.currentEpoch ?? null });
    case "policy":
      return new MatrixError(Errcode.FORBIDDEN, 403, `MLS policy: ${failure.reason}`);
    case "malformed":
      return new MatrixError(Errcode.BAD_JSON, 400, `MLS malformed: ${failure.reason}`);
  }
}

/** The MLS refusal inside another server's error message (a hub's `failed_pdus` reason), as the MatrixError of mlsError. */
export function mlsErrorFromMessage(message: string): MatrixError | undefined {
  const match = /MLS (epoch_conflict|policy|malformed)(?: \(current epoch (\d+|unknown)\))?: (.*)$/s.exec(message);
  if (!match) return undefined;
  const currentEpoch = match[2] === undefined || match[2] === "unknown" ? null : Number(match[2]);
  return mlsError({ kind: match[1] as FailureKind, reason: match[3] as string, currentEpoch });
}

export class MlsOverlay {
  private readonly records = new Map<string, GroupRecord>();
  /** Welcomes waiting for their commit's acceptance and delivery. */
  readonly welcomes: WelcomeOutbox;

  constructor(private readonly deps: MlsOverlayDeps) {
    this.welcomes = new WelcomeOutbox({ storage: deps.storage, logger: deps.logger, now: deps.now, ...(deps.sendWelcome ? { send: deps.sendWelcome } : {}) });
  }

  /**
   * The group record of `epoch` from the room's hub, for a replica that has none: checked to be
   * a GroupInfo of this room's group at that epoch. Undefined when the hub cannot say.
   */
  async recordFromHub(roomId: string, epoch: number | undefined): Promise<GroupRecord | undefined> {
    const { fetchGroupInfo, storage, loader, logger } = this.deps;
    if (epoch === 0) return { roomId, epoch: 0 };
    const hub = (await storage.events.getRoom(roomId))?.hubServer;
    if (!fetchGroupInfo || hub === undefined) return undefined;
    try {
      const answer = await fetchGroupInfo(hub, roomId, epoch);
      if (!answer) return undefined;
      const message = (await loader.load()).decodeMessage(answer.groupInfo);
      const context = message?.wireformat === "mls_group_info" ? message.groupInfo.groupContext : undefined;
      if (!context || !bytesEqual(context.groupId, groupIdOf(roomId)) || context.epoch !== BigInt(answer.epoch) || (epoch !== undefined && answer.epoch !== epoch)) {
        logger.warn({ room_id: roomId, hub, epoch }, "the hub's GroupInfo is not of this room's group at the epoch asked");
        return undefined;
      }
      return { roomId, epoch: answer.epoch, groupInfo: answer.groupInfo, commitEventId: answer.commitEventId };
    } catch (error) {
      logger.warn({ err: error, room_id: roomId, hub, epoch }, "the hub's GroupInfo could not be fetched");
      return undefined;
    }
  }

  /**
   * The room's group record: stored, or for a room without one, epoch 0 on its hub (the creator's
   * fresh group) and unknown on a replica (it may have joined after commits it never saw).
   */
  async record(roomId: string, hostedHere: boolean): Promise<GroupRecord> {
    const cached = this.records.get(roomId);
    if (cached) return cached;
    const row = await this.deps.storage.mls.getGroup(roomId);
    const groupInfo = row ? decodeBase64(row.groupInfo) : undefined;
    const record: GroupRecord = row && groupInfo ? { roomId, epoch: row.epoch, groupInfo, commitEventId: row.commitEventId } : { roomId, epoch: hostedHere ? 0 : null };
    this.remember(record);
    return record;
  }

  private remember(record: GroupRecord): void {
    this.records.delete(record.roomId);
    this.records.set(record.roomId, record);
    if (this.records.size > MAX_CACHED_RECORDS) {
      const oldest = this.records.keys().next().value;
      if (oldest !== undefined) this.records.delete(oldest);
    }
  }

  /** checkCommit against the room's current record, e.g. before a client's commit is sent to a remote hub. */
  async checkCommit(roomId: string, hostedHere: boolean, content: JsonObject, sender: string, state: RoomStateView): Promise<CommitVerdict> {
    const mls = await this.deps.loader.load();
    return checkCommit(mls, content, await this.record(roomId, hostedHere), membershipViewOf(state), sender);
  }

  /**
   * RoomEventPolicy.needsCommittedPolicy: only commits and encrypted messages of encrypted rooms
   * read the group record, which moves when an earlier commit of the room has committed. Every other
   * event passes `check` without it, so the writer may check it while earlier appends still commit.
   */
  needsCommittedPolicy(event: RoomEvent, stateBefore: RoomStateView): boolean {
    const { type } = event.pdu;
    return (type === COMMIT_EVENT_TYPE || type === ENCRYPTED_EVENT_TYPE) && isEncryptedRoom(stateBefore);
  }

  /** RoomEventPolicy.begin: the checks of one append to one room (module comment). */
  begin(roomId: string, hostedHere: boolean): MlsPolicyBatch {
    const { loader, onCommitVerdict, logger, now } = this.deps;
    let working: GroupRecord | undefined;
    /** Every commit accepted in this batch, in order (each binds its pending Welcome, if any). */
    const accepted: Array<{ record: GroupRecord; devices: Array<{ userId: string; deviceId: string }>; commitHash: string }> = [];
    const bound: string[] = [];
    const violations: Array<{ eventId: string; reason: string; hubServer: string }> = [];
    return {
      check: async (event, stateBefore) => {
        const { type } = event.pdu;
        if ((type !== COMMIT_EVENT_TYPE && type !== ENCRYPTED_EVENT_TYPE) || !isEncryptedRoom(stateBefore)) return undefined;
        const mls = await loader.load();
        working ??= await this.record(roomId, hostedHere);
        const refuse = (failure: { kind: FailureKind; reason: string; currentEpoch?: number | null }): MatrixError => {
          const error = mlsError(failure);
          if (!hostedHere) violations.push({ eventId: event.eventId, reason: error.message, hubServer: event.pdu.hub_server ?? "" });
          return error;
        };
        if (type === ENCRYPTED_EVENT_TYPE) {
          const verdict = checkEncryptedMessage(mls, event.pdu.content, working);
          return verdict.ok ? undefined : refuse(verdict);
        }
        if (working.epoch === null && !hostedHere) {
          // A replica that never saw the group: the hub's GroupInfo of the epoch this commit builds on.
          const builtOn = commitEpochOf(mls, event.pdu.content);
          if (builtOn !== undefined) working = (await this.recordFromHub(roomId, builtOn)) ?? working;
          if (working.epoch === null) logger.warn({ room_id: roomId, event_id: event.eventId }, "no group state for this room from its hub: the commit is checked on its own");
        }
        const verdict = await checkCommit(mls, event.pdu.content, working, membershipViewOf(stateBefore), event.pdu.sender);
        onCommitVerdict?.(verdict.ok ? "accepted" : "rejected", verdict.ok ? undefined : verdict.kind);
        if (!verdict.ok) return refuse(verdict);
        working = { ...verdict.next, commitEventId: event.eventId };
        const tree = decodeGroupRecord(mls, working)?.tree ?? [];
        const devices = mls.leaves(tree).flatMap(({ leaf }) => {
          const identity = identityOfLeaf(leaf);
          return identity ? [{ userId: identity.userId, deviceId: identity.deviceId }] : [];
        });
        accepted.push({ record: working, devices, commitHash: commitHashOf(event.pdu.content.message as string) });
        return undefined;
      },
      persist: async (tx) => {
        bound.length = 0;
        for (const { record, devices, commitHash } of accepted) {
          await tx.mls.putGroup({ roomId, epoch: record.epoch as number, groupInfo: encodeBase64(record.groupInfo as Uint8Array), commitEventId: record.commitEventId as string, devices });
          if (await tx.mls.bindPendingWelcome(roomId, commitHash, record.commitEventId as string)) bound.push(commitHash);
        }
        for (const v of violations) await tx.federation.addHubViolation({ roomId, eventId: v.eventId, hubServer: v.hubServer, reason: v.reason, detectedTs: now() });
      },
      committed: () => {
        const last = accepted[accepted.length - 1];
        if (last) this.remember(last.record);
        for (const commitHash of bound) this.welcomes.deliverLater(roomId, commitHash);
        for (const v of violations) logger.warn({ room_id: roomId, event_id: v.eventId, hub: v.hubServer, reason: v.reason }, "the hub appended an MLS event the overlay's rules forbid; soft-failed");
      },
    };
  }
}

/** The epoch a commit's `message` was built on, when it decodes as a PublicMessage (checkCommit says the rest). */
export function commitEpochOf(mls: MlsLib, content: JsonObject): number | undefined {
  const bytes = typeof content.message === "string" ? decodeBase64(content.message) : undefined;
  const message = bytes ? mls.decodeMessage(bytes) : undefined;
  return message?.wireformat === "mls_public_message" ? Number(message.publicMessage.content.epoch) : undefined;
}
