// EDUs this server sends (LM draft "Ephemeral Data Units"; Server-Server API "Typing
// Notifications", "Receipts", "Send-to-device messaging", "Device Management"). Routing follows
// DESIGN.md "Room EDUs": typing and receipts go participant → hub → every other server in the
// room, like PDUs; to-device messages and device-list updates go straight to the servers of the
// users concerned. Every EDU is queued durably and leaves in its destination's next transaction.
//
// Wire shape: classic Matrix's `edu_type` + `content`, plus the draft's `sender` (the user the
// EDU speaks for) so LM peers that read the draft's fields find it too.
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { RemoteEdus } from "../client-api/contracts.js";
import { serverNameOf } from "../core/identifiers.js";
import type { JsonObject } from "../core/json.js";
import type { MembershipIndex } from "../rooms/membership-index.js";

/** Public receipts only: `m.read.private` never leaves this server (Client-Server API "Private read receipts"). */
const FEDERATED_RECEIPT_TYPE = "m.read";

export interface EdusOutDeps {
  serverName: string;
  /** Joined members of rooms, as the room writer keeps them (hub and replica rooms alike). */
  memberships: MembershipIndex;
  /** Whether this server is the room's hub, and which server is; undefined for an unknown room. */
  roomInfo: (roomId: string) => Promise<{ hostedHere: boolean; hubServer: string; isStub: boolean } | undefined>;
  queueEdus: (edus: Array<{ destination: string; edu: JsonObject }>) => Promise<void>;
  logger: Logger;
  now: () => number;
}

export interface EdusOut extends RemoteEdus {
  /**
   * Hub: a participant's typing or receipt EDU, already applied here, goes on to every other
   * server with a joined user (never back to `origin`).
   */
  forwardRoomEdu(roomId: string, edu: JsonObject, origin: string): Promise<void>;
}

export function typingEdu(roomId: string, userId: string, typing: boolean): JsonObject {
  return { edu_type: "m.typing", sender: userId, content: { room_id: roomId, user_id: userId, typing } };
}

export function receiptEdu(roomId: string, userId: string, eventIds: string[], ts: number, threadId: string | null): JsonObject {
  const data: JsonObject = threadId === null ? { ts } : { ts, thread_id: threadId };
  return { edu_type: "m.receipt", sender: userId, content: { [roomId]: { [FEDERATED_RECEIPT_TYPE]: { [userId]: { event_ids: eventIds, data } } } } };
}

export function createEdusOut(deps: EdusOutDeps): EdusOut {
  const { serverName, memberships, logger } = deps;
  /** Last `stream_id` sent per local user (Server-Server API "Device Management": `prev_id`). */
  const lastDeviceStreamId = new Map<string, number>();

  async function joinedServers(roomId: string): Promise<Set<string>> {
    const servers = new Set<string>();
    for (const userId of await memberships.joinedMembers(roomId)) {
      const server = serverNameOf(userId);
      if (server !== undefined) servers.add(server);
    }
    servers.delete(serverName);
    return servers;
  }

  /** Where a local user's room EDU goes: the hub from a participant; every other joined server from the hub. */
  async function roomDestinations(roomId: string): Promise<string[]> {
    const info = await deps.roomInfo(roomId);
    if (info === undefined || info.isStub) return [];
    if (!info.hostedHere) return [info.hubServer];
    return [...(await joinedServers(roomId))];
  }

  /** Servers with a user who shares a joined room with `userId`. */
  async function serversSharingRoomsWith(userId: string): Promise<Set<string>> {
    const servers = new Set<string>();
    for (const [roomId, membership] of await memberships.membershipsOf(userId)) {
      if (membership !== "join") continue;
      for (const server of await joinedServers(roomId)) servers.add(server);
    }
    return servers;
  }

  async function queue(destinations: Iterable<string>, edu: JsonObject): Promise<void> {
    await deps.queueEdus([...destinations].map((destination) => ({ destination, edu })));
  }

  /** Typing and receipts are best effort: a failure to queue is logged, the client's request succeeds. */
  async function queueRoomEdu(roomId: string, edu: JsonObject): Promise<void> {
    try {
      await queue(await roomDestinations(roomId), edu);
    } catch (error) {
      logger.warn({ err: error, room_id: roomId, edu_type: edu.edu_type }, "room EDU not queued");
    }
  }

  return {
    async typing(roomId, userId, typing) {
      await queueRoomEdu(roomId, typingEdu(roomId, userId, typing));
    },

    async receipt(roomId, userId, { receiptType, eventId, ts, threadId }) {
      if (receiptType !== FEDERATED_RECEIPT_TYPE) return;
      await queueRoomEdu(roomId, receiptEdu(roomId, userId, [eventId], ts, threadId));
    },

    async toDevice(sender, eventType, messages) {
      // One EDU per destination server with every message for its users (Server-Server API
      // `m.direct_to_device`); `message_id` lets a receiver recognise a repeat.
      const byServer = new Map<string, JsonObject>();
      for (const [userId, devices] of messages) {
        const server = serverNameOf(userId);
        if (server === undefined || server === serverName) continue;
        let perUser = byServer.get(server);
        if (!perUser) byServer.set(server, (perUser = {}));
        perUser[userId] = Object.fromEntries(devices);
      }
      await deps.queueEdus(
        [...byServer].map(([destination, perUser]) => ({
          destination,
          edu: { edu_type: "m.direct_to_device", sender, content: { sender, type: eventType, message_id: randomUUID(), messages: perUser } },
        })),
      );
    },

    async deviceListChanged(userId, deviceId, { deleted, keys }) {
      try {
        const destinations = await serversSharingRoomsWith(userId);
        // stream_id increases per user, also across restarts (the clock); prev_id names the update
        // before it when this process sent one, so a receiver can tell it missed none.
        const prev = lastDeviceStreamId.get(userId);
        const streamId = Math.max((prev ?? 0) + 1, deps.now());
        lastDeviceStreamId.set(userId, streamId);
        if (destinations.size === 0) return;
        const content: JsonObject = { user_id: userId, device_id: deviceId, stream_id: streamId, prev_id: prev === undefined ? [] : [prev], deleted };
        if (keys !== undefined && !deleted) content.keys = keys;
        await queue(destinations, { edu_type: "m.device_list_update", sender: userId, content });
      } catch (error) {
        logger.warn({ err: error, user_id: userId, device_id: deviceId }, "device-list update not queued");
      }
    },

    async forwardRoomEdu(roomId, edu, origin) {
      const destinations = await joinedServers(roomId);
      destinations.delete(origin);
      await queue(destinations, edu);
    },
  };
}
