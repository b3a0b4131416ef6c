// Builders for the rooms tests: users, rooms and syncs in one line each, over real HTTP.
import type { TestServer } from "../../support/test-server.js";

export interface User {
  userId: string;
  accessToken: string;
  deviceId: string;
}

export const enc = encodeURIComponent;

export async function createRoom(server: TestServer, user: User, body: Record<string, unknown> = {}): Promise<string> {
  const res = await server.request("POST", "/_matrix/client/v3/createRoom", { token: user.accessToken, body });
  if (res.status !== 200) throw new Error(`createRoom failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.room_id as string;
}

let txn = 0;
export async function sendMessage(server: TestServer, user: User, roomId: string, body: string): Promise<string> {
  const res = await server.request("PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, {
    token: user.accessToken,
    body: { msgtype: "m.text", body },
  });
  if (res.status !== 200) throw new Error(`send failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.event_id as string;
}

export async function join(server: TestServer, user: User, roomId: string): Promise<void> {
  const res = await server.request("POST", `/_matrix/client/v3/join/${enc(roomId)}`, { token: user.accessToken, body: {} });
  if (res.status !== 200) throw new Error(`join failed: ${res.status} ${JSON.stringify(res.body)}`);
}

export async function invite(server: TestServer, user: User, roomId: string, target: string): Promise<void> {
  const res = await server.request("POST", `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { token: user.accessToken, body: { user_id: target } });
  if (res.status !== 200) throw new Error(`invite failed: ${res.status} ${JSON.stringify(res.body)}`);
}

export async function sync(server: TestServer, user: User, query: Record<string, string> = {}): Promise<any> {
  const params = new URLSearchParams({ timeout: "0", ...query });
  const res = await server.request("GET", `/_matrix/client/v3/sync?${params}`, { token: user.accessToken });
  if (res.status !== 200) throw new Error(`sync failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export function timelineBodies(syncBody: any, roomId: string): string[] {
  const events: any[] = syncBody.rooms?.join?.[roomId]?.timeline?.events ?? [];
  return events.filter((e) => e.type === "m.room.message").map((e) => e.content.body as string);
}
