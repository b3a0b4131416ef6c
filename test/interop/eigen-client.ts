// A driver for eigen's own client protocol: a websocket at `/client?preferredLocalpart=…` that
// carries JSON "packets" with a numeric `type` (eigen src/server/client_server_api/packets.ts).
// The server says Login{userId} on connect; the client sends CreateRoom, Invite, Join, Send; the
// server pushes RoomJoined/RoomInvited for membership events (without event IDs), Event for every
// other event of a room the user is joined to, and Error{message, originalPacket}.
// `GET /dump/:roomId` returns a hub room's ordered events (eigen answers 500 for a room it only
// participates in); for those the pushed packets and the federation event endpoint are all there is.
import { createRequire } from "node:module";
import { join } from "node:path";

/** eigen's PacketType enum, by position. */
export const PacketType = {
  Login: 0,
  CreateRoom: 1,
  RoomJoined: 2,
  Invite: 3,
  RoomInvited: 4,
  Join: 5,
  Error: 6,
  Send: 7,
  Event: 8,
  DumpRoomInfo: 9,
} as const;

/** A packet as eigen sends it (`any` fields: tests assert on eigen's loosely typed JSON). */
export interface Packet {
  type: number;
  [field: string]: any;
}

/** The part of the `ws` package's WebSocket this driver uses. */
interface Socket {
  on(event: "message", listener: (data: Buffer) => void): void;
  on(event: "close", listener: () => void): void;
  once(event: "open", listener: () => void): void;
  once(event: "error", listener: (error: Error) => void): void;
  send(data: string): void;
  close(): void;
}

type SocketConstructor = new (url: string) => Socket;

export interface EigenUser {
  readonly userId: string;
  /** Every packet received so far, in order. */
  readonly packets: readonly Packet[];
  createRoom(): Promise<string>;
  invite(roomId: string, userId: string): void;
  join(roomId: string): void;
  sendText(roomId: string, body: string): void;
  /** Resolves with the first packet (already received or arriving) that matches. */
  waitForPacket(match: (packet: Packet) => boolean, what: string, timeoutMs?: number): Promise<Packet>;
  close(): void;
}

/** Connects a user to eigen's websocket API, using the `ws` package of the eigen checkout. */
export async function connectEigenUser(eigen: { dir: string; baseUrl: string }, localpart: string): Promise<EigenUser> {
  const requireFromEigen = createRequire(join(eigen.dir, "package.json"));
  const WebSocket = requireFromEigen("ws") as SocketConstructor;
  const url = `${eigen.baseUrl.replace(/^http/, "ws")}/client?preferredLocalpart=${encodeURIComponent(localpart)}`;
  const socket = new WebSocket(url);
  const packets: Packet[] = [];
  const waiters = new Set<() => void>();
  socket.on("message", (data) => {
    packets.push(JSON.parse(data.toString("utf8")) as Packet);
    for (const wake of [...waiters]) wake();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  const send = (packet: Packet): void => socket.send(JSON.stringify(packet));

  const waitForPacket = (match: (packet: Packet) => boolean, what: string, timeoutMs = 10_000): Promise<Packet> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = packets.find(match);
        if (found) {
          waiters.delete(wake);
          clearTimeout(timer);
          resolve(found);
        }
        return found !== undefined;
      };
      const wake = (): void => void check();
      const timer = setTimeout(() => {
        waiters.delete(wake);
        const errors = packets.filter((p) => p.type === PacketType.Error).map((p) => JSON.stringify(p));
        reject(new Error(`eigen: no ${what} within ${timeoutMs} ms; error packets: ${errors.join("; ") || "none"}`));
      }, timeoutMs);
      if (!check()) waiters.add(wake);
    });

  const login = await waitForPacket((p) => p.type === PacketType.Login, "Login packet");
  const userId = login.userId as string;
  // Room IDs this user has already been told about, so createRoom can find the new one.
  const joinedRoomIds = (): Set<string> =>
    new Set(packets.filter((p) => p.type === PacketType.RoomJoined && p.targetUserId === userId).map((p) => p.roomId as string));

  return {
    userId,
    packets,
    async createRoom() {
      const before = joinedRoomIds();
      send({ type: PacketType.CreateRoom });
      // eigen creates the room, then replays its events: the creator's join is a RoomJoined packet.
      const joined = await waitForPacket(
        (p) => p.type === PacketType.RoomJoined && p.targetUserId === userId && !before.has(p.roomId),
        "RoomJoined packet for the new room",
      );
      return joined.roomId as string;
    },
    invite(roomId, targetUserId) {
      send({ type: PacketType.Invite, targetRoomId: roomId, targetUserId });
    },
    join(roomId) {
      send({ type: PacketType.Join, targetRoomId: roomId });
    },
    sendText(roomId, body) {
      send({ type: PacketType.Send, roomId, eventType: "m.room.message", content: { msgtype: "m.text", body } });
    },
    waitForPacket,
    close() {
      socket.close();
    },
  };
}

/** JSON.parse in this module's realm: under jest, `Response.json()` builds objects of another
 *  realm, which Bobbin's canonical JSON encoder (rightly) refuses as not plain objects. */
export function parseJson(text: string): unknown {
  return JSON.parse(text) as unknown;
}

/** A hub room's events in eigen's order, with event IDs (`GET /dump/:roomId`). */
export async function dumpHubRoom(eigen: { baseUrl: string }, roomId: string): Promise<Array<Record<string, any>>> {
  const response = await fetch(`${eigen.baseUrl}/dump/${encodeURIComponent(roomId)}`);
  const body = parseJson(await response.text());
  if (response.status !== 200 || !Array.isArray(body)) throw new Error(`eigen /dump/${roomId}: ${response.status} ${JSON.stringify(body)}`);
  return body as Array<Record<string, any>>;
}

/**
 * One event as eigen holds it, in any room it knows, hub or participant
 * (`GET /_matrix/federation/unstable/org.matrix.i-d.ralston-mimi-linearized-matrix.02/event/:eventId`,
 * which eigen serves without checking the X-Matrix header). Undefined when eigen does not have it.
 */
export async function eigenEvent(eigen: { baseUrl: string }, eventId: string): Promise<Record<string, any> | undefined> {
  const path = `/_matrix/federation/unstable/org.matrix.i-d.ralston-mimi-linearized-matrix.02/event/${encodeURIComponent(eventId)}`;
  const response = await fetch(eigen.baseUrl + path);
  if (response.status === 404) return undefined;
  const body = parseJson(await response.text()) as Record<string, any>;
  if (response.status !== 200) throw new Error(`eigen event ${eventId}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}
