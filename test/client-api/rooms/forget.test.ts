// POST /rooms/{roomId}/forget: only a former member may forget; a forgotten room leaves
// `include_leave` syncs and its history is no longer readable; joining again undoes it.
import { startTestServer, type TestServer } from "../../support/test-server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

const client = (path: string) => `/_matrix/client/v3${path}`;

test("forgetting a left room hides it and its history until the user joins again", async () => {
  const alice = await server.register("alice");
  const bob = await server.register("bob");
  const roomId: string = (await server.request("POST", client("/createRoom"), { token: alice.accessToken, body: { preset: "public_chat" } })).body.room_id;
  const room = encodeURIComponent(roomId);
  await server.request("POST", client(`/join/${room}`), { token: bob.accessToken, body: {} });
  const sent = await server.request("PUT", client(`/rooms/${room}/send/m.room.message/1`), { token: alice.accessToken, body: { msgtype: "m.text", body: "before bob left" } });

  // Still joined: forgetting is refused.
  const refused = await server.request("POST", client(`/rooms/${room}/forget`), { token: bob.accessToken, body: {} });
  expect(refused.status).toBe(400);
  expect(refused.body.errcode).toBe("M_UNKNOWN");

  await server.request("POST", client(`/rooms/${room}/leave`), { token: bob.accessToken, body: {} });
  const includeLeave = encodeURIComponent(JSON.stringify({ room: { include_leave: true } }));
  const beforeForget = await server.request("GET", client(`/sync?timeout=0&filter=${includeLeave}`), { token: bob.accessToken });
  expect(beforeForget.body.rooms.leave[roomId]).toBeDefined();
  expect((await server.request("GET", client(`/rooms/${room}/event/${encodeURIComponent(sent.body.event_id)}`), { token: bob.accessToken })).status).toBe(200);

  expect((await server.request("POST", client(`/rooms/${room}/forget`), { token: bob.accessToken, body: {} })).status).toBe(200);
  const afterForget = await server.request("GET", client(`/sync?timeout=0&filter=${includeLeave}`), { token: bob.accessToken });
  expect(afterForget.body.rooms?.leave?.[roomId]).toBeUndefined();
  expect((await server.request("GET", client(`/rooms/${room}/event/${encodeURIComponent(sent.body.event_id)}`), { token: bob.accessToken })).status).toBe(404);
  expect((await server.request("GET", client(`/rooms/${room}/messages?dir=b`), { token: bob.accessToken })).status).toBe(403);
  expect((await server.request("GET", client(`/rooms/${room}/state`), { token: bob.accessToken })).status).toBe(403);

  // Joining again undoes the forgetting.
  expect((await server.request("POST", client(`/join/${room}`), { token: bob.accessToken, body: {} })).status).toBe(200);
  expect((await server.request("GET", client(`/rooms/${room}/event/${encodeURIComponent(sent.body.event_id)}`), { token: bob.accessToken })).status).toBe(200);
});

test("forgetting a room one was never in is a no-op", async () => {
  const carol = await server.register("carol");
  const dave = await server.register("dave");
  const roomId: string = (await server.request("POST", client("/createRoom"), { token: carol.accessToken, body: {} })).body.room_id;
  const response = await server.request("POST", client(`/rooms/${encodeURIComponent(roomId)}/forget`), { token: dave.accessToken, body: {} });
  // Never a member: nothing to forget, and nothing is stored.
  expect(response.status).toBe(200);
  expect(await server.homeserver.storage.events.isRoomForgotten(dave.userId, roomId)).toBe(false);
});
