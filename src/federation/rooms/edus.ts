// EDUs received in a transaction (LM draft "Ephemeral Data Units"; Server-Server API "Typing
// Notifications", "Receipts", "Send-to-device messaging", "Device Management"), handed to the
// same machinery local clients feed: the typing tracker, receipts and the to-device inbox with a
// stream position, device-list changes, each followed by the sync notifier.
//
// Who may send what (DESIGN.md "Room EDUs"): typing and receipts come from the user's own server
// to the room's hub, which applies and forwards them, or from the hub to the other servers; the
// user must be joined. To-device messages and device-list updates come from the sender's server.
// Anything else is dropped with a debug line: an EDU has no answer to carry a refusal.
//
// Both wire shapes are read: classic Matrix's `edu_type` and the draft's `type` (with `sender` /
// `sender_id`, and the draft's own `m.direct_to_device` and `m.device_list_update` contents).
import type { Logger } from "pino";
import type { SyncNotifier } from "../../client-api/contracts.js";
import { isValidEventId, isValidRoomId, isValidUserId, serverNameOf } from "../../core/identifiers.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../../core/json.js";
import { checkDeviceObject } from "../../mls-overlay/validate.js";
import type { MembershipIndex } from "../../rooms/membership-index.js";
import type { ReceiptRow, Storage, ToDeviceMessage } from "../../storage/ports.js";
import type { StreamTracker } from "../../storage/stream-tracker.js";
import { receiptEdu, typingEdu } from "../edus-out.js";
import type { EduReceiver } from "./inbound-send.js";

/**
 * `m.typing` carries no timeout: a remote user counts as typing this long unless their server
 * says otherwise or repeats it (senders repeat while the user keeps typing).
 */
export const REMOTE_TYPING_TIMEOUT_MS = 30_000;

/** The sync engine's typing state (client-api/sync/typing.ts), as far as EDUs need it. */
export interface TypingState {
  setTyping(roomId: string, userId: string, typing: boolean, timeoutMs: number, fromRemote: boolean): void;
}

export interface EduReceiverDeps {
  storage: Storage;
  serverName: string;
  streams: StreamTracker;
  notifier: SyncNotifier;
  typing: TypingState;
  memberships: MembershipIndex;
  roomInfo: (roomId: string) => Promise<{ hostedHere: boolean; hubServer: string; isStub: boolean } | undefined>;
  /** Hub: sends a participant's room EDU on to the room's other servers (edus-out.ts). */
  forwardRoomEdu: (roomId: string, edu: JsonObject, origin: string) => Promise<void>;
  logger: Logger;
  now: () => number;
}

type Handler = (origin: string, edu: JsonObject, content: JsonObject, log: Logger) => Promise<void>;

export function createEduReceiver(deps: EduReceiverDeps): EduReceiver {
  const { storage, streams, notifier, memberships, serverName } = deps;

  /**
   * Whether `origin` may speak for `userId` in `roomId`: the user is joined, and either `origin`
   * is the user's server or (in a room hosted elsewhere) the room's hub passing it on. `forward`:
   * this server is the hub and must pass it on to the room's other servers.
   */
  async function roomAuthority(origin: string, roomId: string, userId: string): Promise<{ forward: boolean } | undefined> {
    if (!isValidRoomId(roomId) || !isValidUserId(userId)) return undefined;
    const userServer = serverNameOf(userId);
    // Local users' typing and receipts are only ever set by their own clients.
    if (userServer === serverName) return undefined;
    const info = await deps.roomInfo(roomId);
    if (info === undefined || info.isStub) return undefined;
    const fromOwnServer = userServer === origin;
    if (!fromOwnServer && (info.hostedHere || origin !== info.hubServer)) return undefined;
    if ((await memberships.room(roomId)).members.get(userId)?.membership !== "join") return undefined;
    return { forward: info.hostedHere };
  }

  const typing: Handler = async (origin, _edu, content, log) => {
    const { room_id: roomId, user_id: userId, typing: isTyping } = content;
    if (typeof roomId !== "string" || typeof userId !== "string" || typeof isTyping !== "boolean") return log.debug("malformed m.typing dropped");
    const authority = await roomAuthority(origin, roomId, userId);
    if (!authority) return log.debug({ room_id: roomId, user_id: userId }, "m.typing from a server that may not send it dropped");
    deps.typing.setTyping(roomId, userId, isTyping, REMOTE_TYPING_TIMEOUT_MS, true);
    if (authority.forward) await deps.forwardRoomEdu(roomId, typingEdu(roomId, userId, isTyping), origin);
  };

  const receipt: Handler = async (origin, _edu, content, log) => {
    const rows: Array<Omit<ReceiptRow, "streamPos">> = [];
    const forwards: Array<{ roomId: string; edu: JsonObject }> = [];
    for (const [roomId, byType] of Object.entries(content)) {
      // Only public read receipts travel between servers.
      const read = isJsonObject(byType) ? byType["m.read"] : undefined;
      if (!isJsonObject(read)) continue;
      for (const [userId, receipt] of Object.entries(read)) {
        if (!isJsonObject(receipt) || !Array.isArray(receipt.event_ids)) continue;
        // `event_ids` lists what the user has read up to; the last one is the receipt's event.
        const eventIds = receipt.event_ids.filter((id): id is string => typeof id === "string" && isValidEventId(id));
        const eventId = eventIds[eventIds.length - 1];
        if (eventId === undefined) continue;
        const authority = await roomAuthority(origin, roomId, userId);
        if (!authority) {
          log.debug({ room_id: roomId, user_id: userId }, "m.receipt from a server that may not send it dropped");
          continue;
        }
        const data = isJsonObject(receipt.data) ? receipt.data : {};
        const ts = typeof data.ts === "number" && Number.isSafeInteger(data.ts) ? data.ts : deps.now();
        const threadId = typeof data.thread_id === "string" ? data.thread_id : null;
        rows.push({ roomId, userId, receiptType: "m.read", threadId, eventId, ts });
        if (authority.forward) forwards.push({ roomId, edu: receiptEdu(roomId, userId, [eventId], ts, threadId) });
      }
    }
    if (rows.length === 0) return;
    const lastPos = await streams.withPositions(rows.length, async (positions) => {
      rows.forEach((row, i) => notifier.recordChange("receipts", [row.roomId], positions[i]!));
      await storage.transaction(async (tx) => {
        for (const [i, row] of rows.entries()) await tx.receipts.put({ ...row, streamPos: positions[i]! });
      });
      return positions[positions.length - 1]!;
    });
    for (const roomId of new Set(rows.map((r) => r.roomId))) notifier.notifyRoom(roomId, lastPos);
    for (const { roomId, edu } of forwards) await deps.forwardRoomEdu(roomId, edu, origin);
  };

  const directToDevice: Handler = async (origin, edu, content, log) => {
    const message = toDeviceMessageOf(edu, content);
    if (message === undefined) return log.debug("malformed m.direct_to_device dropped");
    if (serverNameOf(message.sender) !== origin) return log.debug({ sender: message.sender }, "m.direct_to_device for a sender of another server dropped");
    const targets: Array<Omit<ToDeviceMessage, "streamPos">> = [];
    for (const [userId, devices] of Object.entries(message.messages)) {
      // Only this server's users; unknown users and devices are dropped (LM draft "To-Device Messaging").
      if (serverNameOf(userId) !== serverName || !isJsonObject(devices)) continue;
      const known = new Set((await storage.accounts.listDevices(userId)).map((d) => d.deviceId));
      for (const [deviceId, body] of Object.entries(devices)) {
        if (!isJsonObject(body)) continue;
        const ids = deviceId === "*" ? [...known] : known.has(deviceId) ? [deviceId] : [];
        for (const id of ids) targets.push({ userId, deviceId: id, sender: message.sender, type: message.type, content: body });
      }
    }
    if (targets.length === 0) return;
    const lastPos = await streams.withPositions(targets.length, async (positions) => {
      targets.forEach((t, i) => notifier.recordChange("to_device", [t.userId], positions[i]!));
      await storage.transaction((tx) => tx.toDevice.add(targets.map((t, i) => ({ ...t, streamPos: positions[i]! }))));
      return positions[positions.length - 1]!;
    });
    notifier.notifyUsers(new Set(targets.map((t) => t.userId)), lastPos);
  };

  const deviceListUpdate: Handler = async (origin, edu, content, log) => {
    // Matrix: `content.user_id`; the draft: the EDU's `sender_id`.
    const userId = [content.user_id, edu.sender_id, edu.sender].find((id): id is string => typeof id === "string");
    if (userId === undefined || !isValidUserId(userId) || serverNameOf(userId) !== origin) return log.debug({ user_id: userId }, "m.device_list_update for a user of another server dropped");
    // The device objects it carries (LM draft "Device Info Publishing"; MLS wire contract section
    // 2): an MLS credential must name this user and device and sign the object, or none is believed.
    const refused = refusedDeviceObject(userId, content);
    if (refused !== undefined) return log.info({ user_id: userId, reason: refused }, "m.device_list_update with an invalid device object refused");
    const watchers = await localUsersSharingRoomsWith(userId);
    if (watchers.size === 0) return log.debug({ user_id: userId }, "m.device_list_update for a user no local user shares a room with dropped");
    const pos = await streams.withPositions(1, async ([streamPos]) => {
      notifier.recordChange("device_lists", [userId], streamPos!);
      await storage.transaction((tx) => tx.keys.markDeviceListChanged(userId, streamPos!));
      return streamPos!;
    });
    notifier.notifyUsers(watchers, pos);
  };

  async function localUsersSharingRoomsWith(userId: string): Promise<Set<string>> {
    const users = new Set<string>();
    for (const [roomId, membership] of await memberships.membershipsOf(userId)) {
      if (membership !== "join") continue;
      for (const member of await memberships.joinedMembers(roomId)) if (serverNameOf(member) === serverName) users.add(member);
    }
    return users;
  }

  const handlers: Record<string, Handler> = {
    "m.typing": typing,
    "m.receipt": receipt,
    "m.direct_to_device": directToDevice,
    "m.device_list_update": deviceListUpdate,
  };

  return async (origin: string, edus: JsonObject[]) => {
    for (const edu of edus) {
      const type = edu.edu_type ?? edu.type;
      const log = deps.logger.child({ origin, edu_type: type });
      const handler = typeof type === "string" ? handlers[type] : undefined;
      if (handler === undefined || !isJsonObject(edu.content)) {
        log.debug("EDU of an unknown type, or without content, dropped");
        continue;
      }
      // One EDU failing (a database error) must not lose the others of the transaction.
      try {
        await handler(origin, edu, edu.content, log);
      } catch (error) {
        log.warn({ err: error }, "EDU not applied");
      }
    }
  };
}

/**
 * Why a device-list update's device objects are not to be believed, or undefined: Matrix's
 * `content.keys` (for `content.device_id`) and the draft's `content.changed` list, each naming
 * `userId` and its device, with a valid MLS credential signature when it has an MLS credential.
 */
function refusedDeviceObject(userId: string, content: JsonObject): string | undefined {
  const objects: Array<{ deviceKeys: JsonValue; deviceId: JsonValue | undefined }> = [];
  if (content.keys !== undefined) objects.push({ deviceKeys: content.keys, deviceId: content.device_id });
  if (Array.isArray(content.changed)) for (const changed of content.changed) objects.push({ deviceKeys: changed, deviceId: isJsonObject(changed) ? changed.device_id : undefined });
  for (const { deviceKeys, deviceId } of objects) {
    if (!isJsonObject(deviceKeys) || typeof deviceId !== "string") return "a device object without its device ID";
    if (deviceKeys.user_id !== userId || deviceKeys.device_id !== deviceId) return `a device object names ${String(deviceKeys.user_id)} ${String(deviceKeys.device_id)}, not ${userId} ${deviceId}`;
    const checked = checkDeviceObject(deviceKeys, { userId, deviceId });
    if (!checked.ok) return checked.reason;
  }
  return undefined;
}

/** `m.direct_to_device` in Matrix's shape, or the draft's one-device shape turned into it. */
function toDeviceMessageOf(edu: JsonObject, content: JsonObject): { sender: string; type: string; messages: JsonObject } | undefined {
  if (typeof content.sender === "string" && typeof content.type === "string" && isJsonObject(content.messages)) {
    return { sender: content.sender, type: content.type, messages: content.messages };
  }
  // LM draft "To-Device Messaging": {target, target_device, message_type, message}, sender on the EDU.
  const { target, target_device: targetDevice, message_type: messageType, message } = content;
  if (typeof edu.sender === "string" && typeof target === "string" && typeof targetDevice === "string" && typeof messageType === "string" && isJsonObject(message)) {
    return { sender: edu.sender, type: messageType, messages: { [target]: { [targetDevice]: message } } };
  }
  return undefined;
}
