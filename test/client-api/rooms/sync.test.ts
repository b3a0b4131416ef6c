// /sync over real HTTP: initial and incremental syncs, invites, leaves, ephemeral events, account
// data, to-device, long-polling and tokens across a restart.
import { startTestServer, type TestServer } from "../../support/test-server.js";
import { createRoom, enc, invite, join, sendMessage, sync, timelineBodies, type User } from "./support.js";

let server: TestServer;
let alice: User;
let bob: User;
const api = "/_matrix/client/v3";

beforeAll(async () => {
  server = await startTestServer();
  alice = await server.register("alice");
  bob = await server.register("bob");
});
afterAll(async () => {
  await server.close();
});

test("initial sync: state, the latest timeline events, limited and prev_batch that paginates", async () => {
  const roomId = await createRoom(server, alice, { name: "Timeline" });
  for (let i = 0; i < 12; i++) await sendMessage(server, alice, roomId, `n${i}`);
  const body = await sync(server, alice, { filter: JSON.stringify({ room: { timeline: { limit: 5 } } }) });
  expect(body.next_batch).toMatch(/^s\d+_\d+$/);
  const room = body.rooms.join[roomId];
  expect(timelineBodies(body, roomId)).toEqual(["n7", "n8", "n9", "n10", "n11"]);
  expect(room.timeline.limited).toBe(true);
  expect(room.state.events.find((e: any) => e.type === "m.room.name").content).toEqual({ name: "Timeline" });
  expect(room.unread_notifications).toEqual({ highlight_count: 0, notification_count: 0 });

  const older = await server.request("GET", `${api}/rooms/${enc(roomId)}/messages?dir=b&limit=3&from=${room.timeline.prev_batch}`, { token: alice.accessToken });
  expect(older.body.chunk.map((e: any) => e.content.body)).toEqual(["n6", "n5", "n4"]);
});

test("incremental sync: only new events; a gap over the limit is limited with the state changes", async () => {
  const roomId = await createRoom(server, alice);
  const first = await sync(server, alice);
  await sendMessage(server, alice, roomId, "new one");
  const second = await sync(server, alice, { since: first.next_batch });
  expect(timelineBodies(second, roomId)).toEqual(["new one"]);
  expect(second.rooms.join[roomId].timeline.limited).toBe(false);
  expect(second.rooms.join[roomId].state.events).toEqual([]);

  await server.request("PUT", `${api}/rooms/${enc(roomId)}/state/m.room.topic`, { token: alice.accessToken, body: { topic: "in the gap" } });
  for (let i = 0; i < 4; i++) await sendMessage(server, alice, roomId, `g${i}`);
  const third = await sync(server, alice, { since: second.next_batch, filter: JSON.stringify({ room: { timeline: { limit: 2 } } }) });
  expect(timelineBodies(third, roomId)).toEqual(["g2", "g3"]);
  expect(third.rooms.join[roomId].timeline.limited).toBe(true);
  expect(third.rooms.join[roomId].state.events.map((e: any) => e.type)).toEqual(["m.room.topic"]);

  const nothing = await sync(server, alice, { since: third.next_batch });
  expect(nothing.rooms.join[roomId]).toBeUndefined();
});

test("invites carry stripped state with the invitee's member event; a joined room arrives with full state", async () => {
  const roomId = await createRoom(server, alice, { name: "Invited" });
  const before = await sync(server, bob);
  await invite(server, alice, roomId, bob.userId);
  const invited = await sync(server, bob, { since: before.next_batch });
  const stripped = invited.rooms.invite[roomId].invite_state.events;
  expect(stripped.find((e: any) => e.type === "m.room.member" && e.state_key === bob.userId).content.membership).toBe("invite");
  expect(stripped.find((e: any) => e.type === "m.room.name").content).toEqual({ name: "Invited" });

  await join(server, bob, roomId);
  const joined = await sync(server, bob, { since: invited.next_batch });
  const room = joined.rooms.join[roomId];
  const all = [...room.state.events, ...room.timeline.events];
  expect(all.find((e: any) => e.type === "m.room.create")).toBeDefined();
  const ownMembership = all.filter((e: any) => e.type === "m.room.member" && e.state_key === bob.userId);
  expect(ownMembership[ownMembership.length - 1].content.membership).toBe("join");

  await server.request("POST", `${api}/rooms/${enc(roomId)}/leave`, { token: bob.accessToken, body: {} });
  const left = await sync(server, bob, { since: joined.next_batch });
  const leaveEvents = left.rooms.leave[roomId].timeline.events;
  expect(leaveEvents[leaveEvents.length - 1]).toMatchObject({ type: "m.room.member", state_key: bob.userId, content: { membership: "leave" } });
  expect(left.rooms.join[roomId]).toBeUndefined();
});

test("typing and receipts appear as ephemeral events", async () => {
  const roomId = await createRoom(server, alice, { preset: "public_chat" });
  await join(server, bob, roomId);
  const eventId = await sendMessage(server, alice, roomId, "read me");
  const start = await sync(server, alice);

  const typing = await server.request("PUT", `${api}/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { token: bob.accessToken, body: { typing: true, timeout: 10_000 } });
  expect(typing.status).toBe(200);
  const receipt = await server.request("POST", `${api}/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, { token: bob.accessToken, body: {} });
  expect(receipt.status).toBe(200);
  const afterTyping = await sync(server, alice, { since: start.next_batch });
  const ephemeral = afterTyping.rooms.join[roomId].ephemeral.events;
  expect(ephemeral.find((e: any) => e.type === "m.typing").content).toEqual({ user_ids: [bob.userId] });
  expect(ephemeral.find((e: any) => e.type === "m.receipt").content[eventId]["m.read"][bob.userId].ts).toEqual(expect.any(Number));

  await server.request("PUT", `${api}/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { token: bob.accessToken, body: { typing: false } });
  const stopped = await sync(server, alice, { since: afterTyping.next_batch });
  expect(stopped.rooms.join[roomId].ephemeral.events).toEqual([{ type: "m.typing", content: { user_ids: [] } }]);

  const other = await server.request("PUT", `${api}/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { token: bob.accessToken, body: { typing: true } });
  expect(other.status).toBe(403);

  const markers = await server.request("POST", `${api}/rooms/${enc(roomId)}/read_markers`, { token: alice.accessToken, body: { "m.fully_read": eventId, "m.read": eventId } });
  expect(markers.status).toBe(200);
  const afterMarkers = await sync(server, alice, { since: stopped.next_batch });
  expect(afterMarkers.rooms.join[roomId].account_data.events).toEqual([{ type: "m.fully_read", content: { event_id: eventId } }]);
});

test("account data and to-device messages", async () => {
  const start = await sync(server, alice);
  const put = await server.request("PUT", `${api}/user/${enc(alice.userId)}/account_data/org.example.settings`, { token: alice.accessToken, body: { theme: "dark" } });
  expect(put.status).toBe(200);
  const send = await server.request("PUT", `${api}/sendToDevice/org.example.ping/td1`, {
    token: bob.accessToken,
    body: { messages: { [alice.userId]: { [alice.deviceId]: { hello: "alice" } } } },
  });
  expect(send.status).toBe(200);
  const next = await sync(server, alice, { since: start.next_batch });
  expect(next.account_data.events).toContainEqual({ type: "org.example.settings", content: { theme: "dark" } });
  expect(next.to_device.events).toEqual([{ sender: bob.userId, type: "org.example.ping", content: { hello: "alice" } }]);
  // Acknowledged by syncing past it: not delivered again.
  const after = await sync(server, alice, { since: next.next_batch });
  expect(after.to_device.events).toEqual([]);
  expect(after.device_one_time_keys_count).toEqual(expect.any(Object));
});

test("long-poll: waits out the timeout when idle, wakes promptly for a message from someone else", async () => {
  const roomId = await createRoom(server, alice, { preset: "public_chat" });
  await join(server, bob, roomId);
  const start = await sync(server, alice);

  const idleStarted = Date.now();
  const idle = await sync(server, alice, { since: start.next_batch, timeout: "400" });
  const idleMs = Date.now() - idleStarted;
  expect(idleMs).toBeGreaterThanOrEqual(380);
  expect(idleMs).toBeLessThan(2_000);
  expect(idle.rooms.join[roomId]).toBeUndefined();

  const polling = sync(server, alice, { since: idle.next_batch, timeout: "20000" });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const sent = Date.now();
  await sendMessage(server, bob, roomId, "wake up");
  const woke = await polling;
  const latency = Date.now() - sent;
  expect(timelineBodies(woke, roomId)).toEqual(["wake up"]);
  expect(latency).toBeLessThan(1_000);
});

test("tokens issued before a restart still work and nothing is lost", async () => {
  const roomId = await createRoom(server, alice);
  await sendMessage(server, alice, roomId, "before restart");
  const before = await sync(server, alice);
  await server.request("PUT", `${api}/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { token: alice.accessToken, body: { typing: true } });
  const typed = await sync(server, alice, { since: before.next_batch });
  await sendMessage(server, alice, roomId, "just before");
  await server.restart();
  await sendMessage(server, alice, roomId, "after restart");
  const resumed = await sync(server, alice, { since: typed.next_batch });
  expect(timelineBodies(resumed, roomId)).toEqual(["just before", "after restart"]);
  // Typing stopped with the old process; clients learn the room's typing list is empty.
  const again = await sync(server, alice, { since: resumed.next_batch });
  expect(again.rooms.join[roomId]).toBeUndefined();
  const initial = await sync(server, alice);
  expect(timelineBodies(initial, roomId)).toEqual(["before restart", "just before", "after restart"]);
});
