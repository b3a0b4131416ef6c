// Bobbin's MLS client endpoints (MLS wire contract section 5; DESIGN.md "Welcome and GroupInfo
// are stapled to the commit"): one request submits a commit with its GroupInfo and Welcome. The
// commit is checked here first (a clear error before anything leaves, and the Welcome's
// KeyPackageRefs mapped to the added devices), sent as the requester's `m.mls.commit` event
// (through the hub when the room is hosted elsewhere; the room writer checks it again under the
// room's lock), and only once the hub has accepted it is the Welcome delivered, by to-device
// message, to each new device — local or on another server. A refused commit delivers nothing.
// The Welcome is recorded before the commit is sent and delivered from that record
// (mls-overlay/welcome-outbox.ts): a retried request completes a delivery a crash interrupted
// and repeats none.
import type { Logger } from "pino";
import { encodeBase64 } from "../../core/base64.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { RoomEvent, RoomStateView } from "../../core/events.js";
import type { JsonObject } from "../../core/json.js";
import { commitEpochOf, commitHashOf, isEncryptedRoom, mlsError, mlsErrorFromMessage, type MlsOverlay } from "../../mls-overlay/mls-overlay.js";
import type { SendWelcome } from "../../mls-overlay/welcome-outbox.js";
import type { MlsLoader } from "../../mls-overlay/ts-mls-adapter.js";
import { departedDevices, welcomeTargets } from "../../mls-overlay/validate.js";
import { COMMIT_EVENT_TYPE, ENCRYPTED_EVENT_TYPE } from "../../core/mls-wire.js";
import type { RoomService } from "../../rooms/room-service.js";
import type { ClientApiContext } from "../contracts.js";
import type { Requester } from "../http.js";
import type { ToDevice } from "../accounts/to-device.js";

export interface CommitRequest {
  commit: string;
  groupInfo: string;
  welcome?: string;
  prevCommitEventId?: string;
}

export interface MlsCommits {
  submitCommit(requester: Requester, roomId: string, request: CommitRequest, log: Logger): Promise<{ event_id: string; epoch: number }>;
  groupInfo(requester: Requester, roomId: string): Promise<{ group_info: string; epoch: number; commit_event_id: string }>;
  devices(requester: Requester, roomId: string): Promise<{ epoch: number; departed: Record<string, string[]> }>;
}

export interface MlsCommitsDeps {
  ctx: ClientApiContext;
  rooms: RoomService;
  overlay: MlsOverlay;
  loader: MlsLoader;
  toDevice: ToDevice;
}

export function createMlsCommits(deps: MlsCommitsDeps): MlsCommits {
  const { ctx, rooms, overlay, loader, toDevice } = deps;
  const { storage } = ctx;

  /** The room's current state, whether it is hosted here, and that it is encrypted and the requester joined. */
  async function encryptedRoom(requester: Requester, roomId: string): Promise<{ state: RoomStateView; hostedHere: boolean }> {
    const room = await storage.events.getRoom(roomId);
    if (!room) throw new MatrixError(Errcode.NOT_FOUND, 404, `Unknown room ${roomId}`);
    const current = await storage.events.getCurrentState(roomId);
    const byKey = new Map<string, RoomEvent>(current.map((e) => [`${e.pdu.type}\u0000${e.pdu.state_key ?? ""}`, { eventId: e.eventId, pdu: e.pdu }]));
    const state: RoomStateView = { get: (type, stateKey) => byKey.get(`${type}\u0000${stateKey}`) };
    if (state.get("m.room.member", requester.userId)?.pdu.content.membership !== "join") throw new MatrixError(Errcode.FORBIDDEN, 403, `${requester.userId} is not joined to room ${roomId}`);
    if (!isEncryptedRoom(state)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `Room ${roomId} is not an MLS-encrypted room`);
    return { state, hostedHere: room.hubServer === ctx.serverName };
  }

  /**
   * The hub accepted the commit as `eventId`: its pending Welcome (if any) is bound to the event and
   * delivered now unless that happened already (only then: the Welcome names the final event ID).
   */
  async function finish(roomId: string, commit: string, commitHash: string, eventId: string, sendWelcome: SendWelcome): Promise<{ event_id: string; epoch: number }> {
    await storage.mls.bindPendingWelcome(roomId, commitHash, eventId);
    await overlay.welcomes.deliver(roomId, commitHash, sendWelcome);
    const builtOn = commitEpochOf(await loader.load(), { message: commit });
    return { event_id: eventId, epoch: builtOn === undefined ? 0 : builtOn + 1 };
  }

  /** The event of this exact commit by the requester, when the room already took it for its epoch. */
  async function acceptedEarlier(requester: Requester, roomId: string, commit: string): Promise<string | undefined> {
    const builtOn = commitEpochOf(await loader.load(), { message: commit });
    const eventId = builtOn === undefined ? undefined : await storage.mls.getEpochCommit(roomId, builtOn + 1);
    const event = eventId === undefined ? undefined : await storage.events.getEvent(eventId);
    return event && event.pdu.sender === requester.userId && event.pdu.content.message === commit ? event.eventId : undefined;
  }

  return {
    async submitCommit(requester, roomId, request, log) {
      const { state, hostedHere } = await encryptedRoom(requester, roomId);
      const commitHash = commitHashOf(request.commit);
      const sendWelcome: SendWelcome = (sender, txnId, messages) => toDevice.send({ ...requester, ...sender }, ENCRYPTED_EVENT_TYPE, txnId, messages, log);
      // The same commit sent again (a retried request) is the same event, not a conflict with itself.
      const txnId = `org.bobbin.mls.commit:${commitHash}`;
      const sent = await storage.clientTxns.get(requester.userId, requester.deviceId, txnId);
      if (sent !== undefined) return finish(roomId, request.commit, commitHash, sent, sendWelcome);
      const content: JsonObject = { message: request.commit, public_group_state: request.groupInfo };
      if (request.prevCommitEventId !== undefined) content.prev_commit_event_id = request.prevCommitEventId;
      // Checked here first: the error comes before anything is sent, and the Welcome's targets are known.
      const verdict = await overlay.checkCommit(roomId, hostedHere, content, requester.userId, state);
      if (!verdict.ok) {
        // A retry of a commit the hub accepted before this server recorded the request's transaction.
        const earlier = verdict.kind === "epoch_conflict" ? await acceptedEarlier(requester, roomId, request.commit) : undefined;
        if (earlier !== undefined) return finish(roomId, request.commit, commitHash, earlier, sendWelcome);
        throw mlsError(verdict);
      }
      if (request.welcome !== undefined) {
        const mapped = welcomeTargets(await loader.load(), request.welcome, verdict.adds);
        if (!mapped.ok) throw new MatrixError(Errcode.INVALID_PARAM, 400, mapped.reason);
        const targets = mapped.devices.map(({ userId, deviceId }) => ({ userId, deviceId }));
        // Recorded before anything is sent: whoever appends the accepted commit binds it to the event.
        if (targets.length > 0) {
          await overlay.welcomes.stage({ roomId, commitHash, epoch: verdict.epoch - 1, senderUser: requester.userId, senderDevice: requester.deviceId, welcome: request.welcome, targets, createdTs: ctx.now() });
        }
      }
      let eventId: string;
      try {
        ({ eventId } = await rooms.sendEvent({ userId: requester.userId, deviceId: requester.deviceId }, roomId, { type: COMMIT_EVENT_TYPE, content }, txnId));
      } catch (error) {
        // A remote hub's refusal arrives as its failed_pdus reason: give it back its kind.
        const refusal = error instanceof MatrixError ? (mlsErrorFromMessage(error.message) ?? error) : error;
        // A refused commit delivers nothing. After a lost answer the record stays: if the hub did
        // accept the commit, appending its event binds and delivers the Welcome.
        if (refusal instanceof MatrixError && refusal.httpStatus < 500) await overlay.welcomes.discard(roomId, commitHash);
        throw refusal;
      }
      return { ...(await finish(roomId, request.commit, commitHash, eventId, sendWelcome)), epoch: verdict.epoch };
    },

    async groupInfo(requester, roomId) {
      const { hostedHere } = await encryptedRoom(requester, roomId);
      let record = await overlay.record(roomId, hostedHere);
      // A replica that joined after the last commit has no record yet: its hub's current one.
      if (!record.groupInfo && !hostedHere) record = (await overlay.recordFromHub(roomId, undefined)) ?? record;
      if (!record.groupInfo || record.epoch === null || record.commitEventId === undefined) throw new MatrixError(Errcode.NOT_FOUND, 404, `Room ${roomId}'s group has no commit yet`);
      return { group_info: encodeBase64(record.groupInfo), epoch: record.epoch, commit_event_id: record.commitEventId };
    },

    async devices(requester, roomId) {
      const { state, hostedHere } = await encryptedRoom(requester, roomId);
      const row = await storage.mls.getGroup(roomId);
      const epoch = row?.epoch ?? (await overlay.record(roomId, hostedHere)).epoch ?? 0;
      const departed = departedDevices(row?.devices ?? [], (userId) => state.get("m.room.member", userId)?.pdu.content.membership === "join");
      return { epoch, departed };
    },
  };
}
