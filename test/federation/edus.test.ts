// EDUs between three Bobbin servers on loopback (DESIGN.md "Room EDUs"): A hosts the room, B and C
// take part. Typing and receipts of a participant's user go to the hub, which shows them to its
// users and forwards them to the other participant; to-device messages and device-list updates go
// straight to the servers concerned. EDUs from a server that may not speak for the user, or for a
// room it has nobody in, change nothing.
import { jest } from "@jest/globals";
import type { JsonObject } from "../../src/core/json.js";
import { signRequest } from "../../src/federation/transport/x-matrix.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";

jest.setTimeout(60_000);

type Session = { userId: string; accessToken: string; deviceId: string };

let a: TestServer;
let b: TestServer;
let c: TestServer;
let alice: Session;
let bob: Session;
let carol: Session;
let roomId: string;
const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 } } };
const q = encodeURIComponent;

/** The ephemeral events of `room` in an initial sync of `user` on `server`. */
async function ephemeralOf(server: TestServer, user: Session, room: string): Promise<Array<{ type: string; content: any }>> {
  const sync = await server.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: user.accessToken });
  expect(sync.status).toBe(200);
  return sync.body.rooms?.join?.[room]?.ephemeral?.events ?? [];
}

async function typingIn(server: TestServer, user: Session, room: string): Promise<string[]> {
  return (await ephemeralOf(server, user, room)).find((e) => e.type === "m.typing")?.content.user_ids ?? [];
}

/** Who has a public read receipt on `eventId`, as `user` on `server` sees it. */
async function readersOf(server: TestServer, user: Session, room: string, eventId: string): Promise<string[]> {
  const receipt = (await ephemeralOf(server, user, room)).find((e) => e.type === "m.receipt");
  return Object.keys(receipt?.content[eventId]?.["m.read"] ?? {});
}

async function setTyping(server: TestServer, user: Session, room: string, typing: boolean): Promise<void> {
  const put = await server.request("PUT", `/_matrix/client/v3/rooms/${q(room)}/typing/${q(user.userId)}`, { token: user.accessToken, body: { typing, timeout: 30_000 } });
  expect(put.status).toBe(200);
}

let txnCounter = 0;
/** A `PUT /send` of `edus` signed by `from` to `to`, as `from`'s outbound queue would send it. */
async function sendEdus(from: TestServer, to: TestServer, edus: JsonObject[]): Promise<void> {
  const uri = `/_matrix/federation/v1/send/edu-test-${++txnCounter}`;
  const content = { origin: from.serverName, origin_server_ts: Date.now(), pdus: [], edus };
  const [authorization] = signRequest({ method: "PUT", uri, origin: from.serverName, destination: to.serverName, content }, [from.signingKey]);
  const response = await fetch(to.baseUrl + uri, { method: "PUT", headers: { authorization: authorization!, "content-type": "application/json" }, body: JSON.stringify(content) });
  expect(response.status).toBe(200);
}

beforeAll(async () => {
  const [portA, portB, portC] = [await freePort(), await freePort(), await freePort()];
  a = await startTestServer({ serverName: `localhost:${portA}`, port: portA, federation });
  b = await startTestServer({ serverName: `localhost:${portB}`, port: portB, federation });
  c = await startTestServer({ serverName: `localhost:${portC}`, port: portC, federation });
  alice = await a.register("alice");
  bob = await b.register("bob");
  carol = await c.register("carol");
  const created = await a.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat", name: "EDU room" } });
  expect(created.status).toBe(200);
  roomId = created.body.room_id;
  for (const [server, user] of [[b, bob], [c, carol]] as const) {
    const joined = await server.request("POST", `/_matrix/client/v3/join/${q(roomId)}`, { token: user.accessToken, body: {} });
    expect(joined.status).toBe(200);
  }
  // Every server knows all three members before the tests start.
  for (const server of [a, b, c]) {
    await waitFor("three joined members everywhere", async () => ((await server.homeserver.storage.events.getMembers(roomId, "join")).length === 3 ? true : undefined));
  }
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await c?.close();
});

test("a participant's user typing shows on the hub and, forwarded by the hub, on the other participant", async () => {
  await setTyping(b, bob, roomId, true);
  await waitFor("bob typing on A", async () => ((await typingIn(a, alice, roomId)).includes(bob.userId) ? true : undefined));
  await waitFor("bob typing on C", async () => ((await typingIn(c, carol, roomId)).includes(bob.userId) ? true : undefined));

  // The hub's own users reach both participants; stopping is relayed too.
  await setTyping(a, alice, roomId, true);
  await waitFor("alice typing on B", async () => ((await typingIn(b, bob, roomId)).includes(alice.userId) ? true : undefined));
  await waitFor("alice typing on C", async () => ((await typingIn(c, carol, roomId)).includes(alice.userId) ? true : undefined));
  await setTyping(b, bob, roomId, false);
  await waitFor("bob stopped on C", async () => ((await typingIn(c, carol, roomId)).includes(bob.userId) ? undefined : true));
  expect(await typingIn(a, alice, roomId)).not.toContain(bob.userId);
  await setTyping(a, alice, roomId, false);
});

test("receipts travel participant → hub → other participant, and the hub's users' receipts reach both", async () => {
  const sent = await a.request("PUT", `/_matrix/client/v3/rooms/${q(roomId)}/send/m.room.message/r1`, { token: alice.accessToken, body: { msgtype: "m.text", body: "read me" } });
  expect(sent.status).toBe(200);
  const eventId: string = sent.body.event_id;
  await waitFor("the message on B", async () => (await b.homeserver.storage.events.getEvent(eventId)) ?? undefined);

  const read = await b.request("POST", `/_matrix/client/v3/rooms/${q(roomId)}/receipt/m.read/${q(eventId)}`, { token: bob.accessToken, body: {} });
  expect(read.status).toBe(200);
  await waitFor("bob's receipt on A", async () => ((await readersOf(a, alice, roomId, eventId)).includes(bob.userId) ? true : undefined));
  await waitFor("bob's receipt on C", async () => ((await readersOf(c, carol, roomId, eventId)).includes(bob.userId) ? true : undefined));

  // Read markers with m.read federate too; m.read.private never does.
  await waitFor("the message on C", async () => (await c.homeserver.storage.events.getEvent(eventId)) ?? undefined);
  const markers = await c.request("POST", `/_matrix/client/v3/rooms/${q(roomId)}/read_markers`, { token: carol.accessToken, body: { "m.read": eventId } });
  expect(markers.status).toBe(200);
  await waitFor("carol's receipt on B", async () => ((await readersOf(b, bob, roomId, eventId)).includes(carol.userId) ? true : undefined));

  const privately = await a.request("POST", `/_matrix/client/v3/rooms/${q(roomId)}/receipt/m.read.private/${q(eventId)}`, { token: alice.accessToken, body: {} });
  expect(privately.status).toBe(200);
  const publicly = await a.request("POST", `/_matrix/client/v3/rooms/${q(roomId)}/receipt/m.read/${q(eventId)}`, { token: alice.accessToken, body: {} });
  expect(publicly.status).toBe(200);
  await waitFor("alice's receipt on B", async () => ((await readersOf(b, bob, roomId, eventId)).includes(alice.userId) ? true : undefined));
  const onB = (await ephemeralOf(b, bob, roomId)).find((e) => e.type === "m.receipt");
  expect(onB?.content[eventId]["m.read.private"]).toBeUndefined();
});

test("a to-device message from A's user reaches the B device's /sync to_device", async () => {
  const put = await a.request("PUT", "/_matrix/client/v3/sendToDevice/m.room_key_request/td1", {
    token: alice.accessToken,
    body: { messages: { [bob.userId]: { [bob.deviceId]: { action: "request", body: "hello device" } } } },
  });
  expect(put.status).toBe(200);
  const message = await waitFor("the to-device message on B", async () => {
    const sync = await b.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: bob.accessToken });
    return (sync.body.to_device?.events ?? []).find((e: { type: string }) => e.type === "m.room_key_request");
  });
  expect(message).toEqual({ type: "m.room_key_request", sender: alice.userId, content: { action: "request", body: "hello device" } });
});

test("a B user uploading device keys puts B's user in device_lists.changed for an A user sharing a room", async () => {
  const before = await a.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: alice.accessToken });
  const since: string = before.body.next_batch;
  const uploaded = await b.request("POST", "/_matrix/client/v3/keys/upload", {
    token: bob.accessToken,
    body: {
      device_keys: {
        user_id: bob.userId,
        device_id: bob.deviceId,
        algorithms: ["m.olm.v1.curve25519-aes-sha2"],
        keys: { [`curve25519:${bob.deviceId}`]: "c2VjcmV0", [`ed25519:${bob.deviceId}`]: "cHVibGlj" },
        signatures: { [bob.userId]: { [`ed25519:${bob.deviceId}`]: "c2ln" } },
      },
    },
  });
  expect(uploaded.status).toBe(200);
  const changed = await waitFor("bob in alice's device_lists.changed", async () => {
    const sync = await a.request("GET", `/_matrix/client/v3/sync?timeout=0&since=${q(since)}`, { token: alice.accessToken });
    const users: string[] = sync.body.device_lists?.changed ?? [];
    return users.includes(bob.userId) ? sync.body.next_batch : undefined;
  });
  const changes = await a.request("GET", `/_matrix/client/v3/keys/changes?from=${q(since)}&to=${q(changed)}`, { token: alice.accessToken });
  expect(changes.status).toBe(200);
  expect(changes.body.changed).toContain(bob.userId);

  // Deleting one of bob's devices on B is a change A's user hears of as well.
  const password = "correct horse battery staple";
  const other = await b.request("POST", "/_matrix/client/v3/login", { body: { type: "m.login.password", user: "bob", password } });
  expect(other.status).toBe(200);
  const sinceDelete: string = (await a.request("GET", `/_matrix/client/v3/sync?timeout=0&since=${q(changed)}`, { token: alice.accessToken })).body.next_batch;
  const start = await b.request("DELETE", `/_matrix/client/v3/devices/${other.body.device_id}`, { token: bob.accessToken });
  const auth = { type: "m.login.password", identifier: { type: "m.id.user", user: bob.userId }, password, session: start.body.session };
  expect((await b.request("DELETE", `/_matrix/client/v3/devices/${other.body.device_id}`, { token: bob.accessToken, body: { auth } })).status).toBe(200);
  await waitFor("bob's device deletion in alice's device_lists.changed", async () => {
    const sync = await a.request("GET", `/_matrix/client/v3/sync?timeout=0&since=${q(sinceDelete)}`, { token: alice.accessToken });
    return (sync.body.device_lists?.changed ?? []).includes(bob.userId) ? true : undefined;
  });
});

test("EDUs from a server that may not speak for the user, or for a room it has nobody in, are ignored", async () => {
  const lonely = await a.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat" } });
  const lonelyRoom: string = lonely.body.room_id;
  const dave = `@dave:${c.serverName}`;
  const sent = await a.request("PUT", `/_matrix/client/v3/rooms/${q(lonelyRoom)}/send/m.room.message/l1`, { token: alice.accessToken, body: { msgtype: "m.text", body: "nobody here" } });
  const eventId: string = sent.body.event_id;
  const read = (room: string, user: string) => ({ [room]: { "m.read": { [user]: { event_ids: [eventId], data: { ts: 1 } } } } });

  await sendEdus(c, a, [
    // C has nobody in lonelyRoom.
    { edu_type: "m.typing", content: { room_id: lonelyRoom, user_id: dave, typing: true } },
    { edu_type: "m.receipt", content: read(lonelyRoom, dave) },
    // C may not speak for B's user, nor for A's own.
    { edu_type: "m.typing", content: { room_id: roomId, user_id: bob.userId, typing: true } },
    { type: "m.typing", sender: alice.userId, content: { room_id: roomId, user_id: alice.userId, typing: true } },
    { edu_type: "m.direct_to_device", content: { sender: bob.userId, type: "m.forged", message_id: "x", messages: { [alice.userId]: { "*": { forged: true } } } } },
    // Allowed, in the draft's shape: C's own user, in the room.
    { type: "m.typing", sender: carol.userId, content: { room_id: roomId, user_id: carol.userId, typing: true } },
  ]);
  // The transaction's EDUs are applied before its answer: the allowed one is visible now.
  expect(await typingIn(a, alice, roomId)).toEqual([carol.userId]);
  expect(await typingIn(a, alice, lonelyRoom)).toEqual([]);
  expect(await readersOf(a, alice, lonelyRoom, eventId)).not.toContain(dave);
  const sync = await a.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: alice.accessToken });
  expect((sync.body.to_device?.events ?? []).map((e: { type: string }) => e.type)).not.toContain("m.forged");

  // The draft's to-device shape from the sender's own server is delivered.
  await sendEdus(b, a, [
    { type: "m.direct_to_device", sender: bob.userId, content: { target: alice.userId, target_device: alice.deviceId, message_type: "m.draft_shape", message: { n: 1 } } },
  ]);
  const after = await a.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: alice.accessToken });
  expect(after.body.to_device.events).toContainEqual({ type: "m.draft_shape", sender: bob.userId, content: { n: 1 } });

  // Device-list updates: C's own user in the draft's shape counts; C speaking for B's user does not.
  const since: string = after.body.next_batch;
  await sendEdus(c, a, [
    { edu_type: "m.device_list_update", content: { user_id: bob.userId, device_id: "FORGED", stream_id: 1, prev_id: [], deleted: true } },
    { type: "m.device_list_update", sender_id: carol.userId, content: { changed: [], removed: [carol.deviceId] } },
  ]);
  const lists = await a.request("GET", `/_matrix/client/v3/sync?timeout=0&since=${q(since)}`, { token: alice.accessToken });
  expect(lists.body.device_lists.changed).toEqual([carol.userId]);
});
