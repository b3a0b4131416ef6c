// Bobbin's MLS client endpoints (MLS wire contract section 5; DESIGN.md "Welcome and GroupInfo
// are stapled to the commit"): one request submits a commit with its GroupInfo and Welcome. The
// commit is checked here first (a clear error before anything leaves, and the Welcome's
// KeyPackageRefs mapped to the added devices), sent as the requester's `m.mls.commit` event
// (through the hub when the room is hosted elsewhere; the room writer checks it again under the
// room's lock), and only once the hub has accepted it is the Welcome delivered, by to-device
// message, to each new device — local or on another server. A refused commit delivers nothing.
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { encodeBase64 } from "../../core/base64.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { RoomEvent, RoomStateView } from "../../core/events.js";
import type { JsonObject } from "../../core/json.js";
import { isEncryptedRoom, mlsError, mlsErrorFromMessage, type MlsOverlay } from "../../mls-overlay/mls-overlay.js";
import type { MlsLoader } from "../../mls-overlay/ts-mls-adapter.js";
import { departedDevices, welcomeTargets } from "../../mls-overlay/validate.js";
import { COMMIT_EVENT_TYPE, ENCRYPTED_EVENT_TYPE, WELCOME_ALGORITHM } from "../../mls-overlay/wire.js";
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

  return {
    async submitCommit(requester, roomId, request, log) {
      const { state, hostedHere } = await encryptedRoom(requester, roomId);
      // The same commit sent again (a retried request) is the same event, not a conflict with itself.
      const txnId = `org.bobbin.mls.commit:${createHash("sha256").update(request.commit).digest("hex")}`;
      const sent = await storage.clientTxns.get(requester.userId, requester.deviceId, txnId);
      if (sent !== undefined) return { event_id: sent, epoch: (await overlay.record(roomId, hostedHere)).epoch ?? 0 };
      const content: JsonObject = { message: request.commit, public_group_state: request.groupInfo };
      if (request.prevCommitEventId !== undefined) content.prev_commit_event_id = request.prevCommitEventId;
      // Checked here first: the error comes before anything is sent, and the Welcome's targets are known.
      const verdict = await overlay.checkCommit(roomId, hostedHere, content, requester.userId, state);
      if (!verdict.ok) throw mlsError(verdict);
      let targets: Array<{ userId: string; deviceId: string }> = [];
      if (request.welcome !== undefined) {
        const mapped = welcomeTargets(await loader.load(), request.welcome, verdict.adds);
        if (!mapped.ok) throw new MatrixError(Errcode.INVALID_PARAM, 400, mapped.reason);
        targets = mapped.devices;
      }
      let eventId: string;
      try {
        ({ eventId } = await rooms.sendEvent({ userId: requester.userId, deviceId: requester.deviceId }, roomId, { type: COMMIT_EVENT_TYPE, content }, txnId));
      } catch (error) {
        // A remote hub's refusal arrives as its failed_pdus reason: give it back its kind.
        throw error instanceof MatrixError ? (mlsErrorFromMessage(error.message) ?? error) : error;
      }
      if (targets.length > 0) {
        // Only now: the hub accepted the commit, so the Welcome names the final event ID.
        const messages = new Map<string, Map<string, JsonObject>>();
        for (const { userId, deviceId } of targets) {
          let devices = messages.get(userId);
          if (!devices) messages.set(userId, (devices = new Map()));
          devices.set(deviceId, { algorithm: WELCOME_ALGORITHM, ciphertext: request.welcome as string, commit_event_id: eventId });
        }
        await toDevice.send(requester, ENCRYPTED_EVENT_TYPE, `org.bobbin.mls.welcome:${eventId}`, messages, log);
      }
      return { event_id: eventId, epoch: verdict.epoch };
    },

    async groupInfo(requester, roomId) {
      const { hostedHere } = await encryptedRoom(requester, roomId);
      const record = await overlay.record(roomId, hostedHere);
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
