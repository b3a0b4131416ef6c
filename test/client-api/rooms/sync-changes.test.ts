// Incremental syncs skip what has not changed since their token (sync/change-cache.ts and the
// membership index): these check that nothing that did change is skipped — across a restart,
// while a sync waits, and for users who were idle.
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

let txn = 0;
async function toDevice(from: User, to: User, content: Record<string, unknown>): Promise<void> {
  const res = await server.request("PUT", `${api}/sendToDevice/org.example.ping/cc${++txn}`, { token: from.accessToken, body: { messages: { [to.userId]: { [to.deviceId]: content } } } });
  expect(res.status).toBe(200);
}

test("changes of every kind made before a restart reach a token issued before it", async () => {
  const roomId = await createRoom(server, alice, { preset: "public_chat" });
  await join(server, bob, roomId);
  const other = await createRoom(server, alice);
  const eventId = await sendMessage(server, alice, roomId, "seen");
  const before = await sync(server, bob);

  await sendMessage(server, alice, roomId, "while bob was away");
  await server.request("POST", `${api}/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, { token: alice.accessToken, body: {} });
  await server.request("PUT", `${api}/user/${enc(bob.userId)}/account_data/org.example.before`, { token: bob.accessToken, body: { n: 1 } });
  await toDevice(alice, bob, { before: "restart" });
  await invite(server, alice, other, bob.userId);
  await server.restart();

  const after = await sync(server, bob, { since: before.next_batch });
  expect(timelineBodies(after, roomId)).toEqual(["while bob was away"]);
  expect(after.rooms.join[roomId].ephemeral.events.find((e: any) => e.type === "m.receipt").content[eventId]["m.read"][alice.userId]).toBeDefined();
  expect(after.account_data.events).toContainEqual({ type: "org.example.before", content: { n: 1 } });
  expect(after.to_device.events).toEqual([{ sender: alice.userId, type: "org.example.ping", content: { before: "restart" } }]);
  expect(after.rooms.invite[other]).toBeDefined();

  // After the restart, with a token of the new process: new changes, and nothing repeated.
  await sendMessage(server, alice, roomId, "after restart");
  await toDevice(alice, bob, { after: "restart" });
  const next = await sync(server, bob, { since: after.next_batch });
  expect(timelineBodies(next, roomId)).toEqual(["after restart"]);
  expect(next.to_device.events).toEqual([{ sender: alice.userId, type: "org.example.ping", content: { after: "restart" } }]);
  expect(next.rooms.invite[other]).toBeUndefined();
  expect(next.account_data.events).toEqual([]);
});

test("a to-device message sent while a sync waits wakes it, and is not acknowledged until a later token", async () => {
  const start = await sync(server, bob);
  const polling = sync(server, bob, { since: start.next_batch, timeout: "20000" });
  await new Promise((resolve) => setTimeout(resolve, 100));
  await toDevice(alice, bob, { during: "poll" });
  const woke = await polling;
  expect(woke.to_device.events).toEqual([{ sender: alice.userId, type: "org.example.ping", content: { during: "poll" } }]);
  // The client lost that response and retries with the same token: delivered again.
  const retried = await sync(server, bob, { since: start.next_batch });
  expect(retried.to_device.events).toEqual(woke.to_device.events);
  // Syncing past it acknowledges it, even when nothing new arrived in between.
  const quiet = await sync(server, bob, { since: retried.next_batch });
  expect(quiet.to_device.events).toEqual([]);
  const quieter = await sync(server, bob, { since: quiet.next_batch });
  expect(quieter.to_device.events).toEqual([]);
});

test("an idle user's membership changes (kick, invite) reach their next sync", async () => {
  const roomId = await createRoom(server, alice, { preset: "public_chat" });
  await join(server, bob, roomId);
  const idle = await sync(server, bob);
  expect(idle.rooms.join[roomId]).toBeDefined();
  await server.request("POST", `${api}/rooms/${enc(roomId)}/kick`, { token: alice.accessToken, body: { user_id: bob.userId } });
  await sendMessage(server, alice, roomId, "bob is gone");
  const kicked = await sync(server, bob, { since: idle.next_batch });
  expect(kicked.rooms.join[roomId]).toBeUndefined();
  expect(kicked.rooms.leave[roomId].timeline.events.at(-1).content.membership).toBe("leave");
  expect(timelineBodies({ rooms: { join: kicked.rooms.leave } }, roomId)).toEqual([]);

  await invite(server, alice, roomId, bob.userId);
  const invited = await sync(server, bob, { since: kicked.next_batch });
  expect(invited.rooms.invite[roomId]).toBeDefined();
  await join(server, bob, roomId);
  const joined = await sync(server, bob, { since: invited.next_batch });
  // Newly joined: full state, and the room's members as of now.
  expect(joined.rooms.join[roomId].summary["m.joined_member_count"]).toBe(2);
  expect(joined.rooms.join[roomId].state.events.some((e: any) => e.type === "m.room.create")).toBe(true);
});

test("a timeline of more new events than the first page, but within the limit, is complete and not limited", async () => {
  const roomId = await createRoom(server, alice);
  const start = await sync(server, alice);
  const bodies = Array.from({ length: 20 }, (_, i) => `m${i}`);
  for (const body of bodies) await sendMessage(server, alice, roomId, body);
  const next = await sync(server, alice, { since: start.next_batch, filter: JSON.stringify({ room: { timeline: { limit: 30 } } }) });
  expect(timelineBodies(next, roomId)).toEqual(bodies);
  expect(next.rooms.join[roomId].timeline.limited).toBe(false);
});

test("one-time key counts follow uploads and claims; room-mates see device-list changes", async () => {
  const roomId = await createRoom(server, alice, { preset: "public_chat" });
  await join(server, bob, roomId);
  const start = await sync(server, alice);
  const upload = await server.request("POST", `${api}/keys/upload`, {
    token: alice.accessToken,
    body: { one_time_keys: { "signed_curve25519:CC1": { key: "k1" }, "signed_curve25519:CC2": { key: "k2" } } },
  });
  expect(upload.status).toBe(200);
  const uploaded = await sync(server, alice, { since: start.next_batch });
  expect(uploaded.device_one_time_keys_count.signed_curve25519).toBe(2);
  const claim = await server.request("POST", `${api}/keys/claim`, { token: bob.accessToken, body: { one_time_keys: { [alice.userId]: { [alice.deviceId]: "signed_curve25519" } } } });
  expect(claim.status).toBe(200);
  const claimed = await sync(server, alice, { since: uploaded.next_batch });
  expect(claimed.device_one_time_keys_count.signed_curve25519).toBe(1);

  const bobStart = await sync(server, bob);
  const rename = await server.request("PUT", `${api}/devices/${enc(alice.deviceId)}`, { token: alice.accessToken, body: { display_name: "laptop" } });
  expect(rename.status).toBe(200);
  const bobNext = await sync(server, bob, { since: bobStart.next_batch });
  expect(bobNext.device_lists.changed).toContain(alice.userId);
});

test("device_lists.left names the users one no longer shares a room with, and only them", async () => {
  const carol = await server.register("dl-carol");
  const dave = await server.register("dl-dave");
  const erin = await server.register("dl-erin");
  const shared = await createRoom(server, carol, { preset: "public_chat" });
  const other = await createRoom(server, carol, { preset: "public_chat" });
  await join(server, dave, shared);
  await join(server, erin, shared);
  await join(server, erin, other);
  const start = await sync(server, carol);

  // Dave leaves the only room he shares with Carol; Erin leaves one of two.
  expect((await server.request("POST", `${api}/rooms/${enc(shared)}/leave`, { token: dave.accessToken, body: {} })).status).toBe(200);
  expect((await server.request("POST", `${api}/rooms/${enc(other)}/leave`, { token: erin.accessToken, body: {} })).status).toBe(200);
  const next = await sync(server, carol, { since: start.next_batch });
  expect(next.device_lists.left).toEqual([dave.userId]);

  // Carol leaves the room she still shares with Erin: now Erin is gone from her device lists too.
  expect((await server.request("POST", `${api}/rooms/${enc(shared)}/leave`, { token: carol.accessToken, body: {} })).status).toBe(200);
  const after = await sync(server, carol, { since: next.next_batch });
  expect(after.device_lists.left).toEqual([erin.userId]);
});
