// The MLS overlay's service (DESIGN.md "One commit per MLS epoch"; MLS wire contract section 4):
// keeps each encrypted room's group record and checks commits and encrypted messages as the room
// writer places them (its RoomEventPolicy), on the hub and on every replica alike. The record moves
// to the next epoch in the same transaction as the commit event that starts it, so a crash can
// never leave the two apart. ts-mls is loaded on the first event of an encrypted room.
import type { Logger } from "pino";
import { decodeBase64, encodeBase64 } from "../core/base64.js";
import { Errcode, MatrixError } from "../core/errors.js";
import type { RoomEvent, RoomStateView } from "../core/events.js";
import { isJsonObject, type JsonObject } from "../core/json.js";
import type { Storage, StorageTx } from "../storage/ports.js";
import type { MlsLoader } from "./ts-mls-adapter.js";
import { checkCommit, checkEncryptedMessage, decodeGroupRecord, identityOfLeaf, type CommitVerdict, type FailureKind, type GroupRecord, type RoomMembershipView } from "./validate.js";
import { COMMIT_EVENT_TYPE, ENCRYPTED_EVENT_TYPE, EPOCH_CONFLICT_ERRCODE, ROOM_ALGORITHM } from "./wire.js";

export interface MlsOverlayDeps {
  storage: Storage;
  loader: MlsLoader;
  logger: Logger;
  now: () => number;
  /** Told of every commit this server checks (a Prometheus counter, wired by app/). */
  onCommitVerdict?: (verdict: "accepted" | "rejected", kind?: FailureKind) => void;
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

  constructor(private readonly deps: MlsOverlayDeps) {}

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

  /** RoomEventPolicy.begin: the checks of one append to one room (module comment). */
  begin(roomId: string, hostedHere: boolean): MlsPolicyBatch {
    const { loader, onCommitVerdict, logger, now } = this.deps;
    let working: GroupRecord | undefined;
    let accepted: { record: GroupRecord; devices: Array<{ userId: string; deviceId: string }> } | undefined;
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
        const verdict = await checkCommit(mls, event.pdu.content, working, membershipViewOf(stateBefore), event.pdu.sender);
        onCommitVerdict?.(verdict.ok ? "accepted" : "rejected", verdict.ok ? undefined : verdict.kind);
        if (!verdict.ok) return refuse(verdict);
        working = { ...verdict.next, commitEventId: event.eventId };
        const tree = decodeGroupRecord(mls, working)?.tree ?? [];
        const devices = mls.leaves(tree).flatMap(({ leaf }) => {
          const identity = identityOfLeaf(leaf);
          return identity ? [{ userId: identity.userId, deviceId: identity.deviceId }] : [];
        });
        accepted = { record: working, devices };
        return undefined;
      },
      persist: async (tx) => {
        if (accepted) {
          const { record, devices } = accepted;
          await tx.mls.putGroup({ roomId, epoch: record.epoch as number, groupInfo: encodeBase64(record.groupInfo as Uint8Array), commitEventId: record.commitEventId as string, devices });
        }
        for (const v of violations) await tx.federation.addHubViolation({ roomId, eventId: v.eventId, hubServer: v.hubServer, reason: v.reason, detectedTs: now() });
      },
      committed: () => {
        if (accepted) this.remember(accepted.record);
        for (const v of violations) logger.warn({ room_id: roomId, event_id: v.eventId, hub: v.hubServer, reason: v.reason }, "the hub appended an MLS event the overlay's rules forbid; soft-failed");
      },
    };
  }
}
