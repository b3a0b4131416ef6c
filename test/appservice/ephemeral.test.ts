// Ephemeral data for a bridge that opted in (Application Service API "Pushing EDUs", MSC4203):
// typing in the rooms it is interested in arrives as `m.typing` EDUs with a `room_id` under
// `ephemeral` and MSC2409's key (which matrix-appservice reads), and to-device messages for its
// users' devices under `de.sorunome.msc2409.to_device` with `to_user_id` and `to_device_id`. Also:
// what a service request without `device_id` is.
import { jest } from "@jest/globals";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";
import { EchoBridge, echoRegistration } from "./echo-bridge.js";

jest.setTimeout(60_000);

let server: TestServer;
let bridge: EchoBridge;
let alice: { userId: string; accessToken: string };

beforeAll(async () => {
  const port = await freePort();
  const echo = echoRegistration({ port, serverName: "localhost", ephemeral: true });
  server = await startTestServer({ appservices: [echo.loaded], appservicePusher: { backoff: { initialMs: 50, maxMs: 400, jitter: 0.2 } } });
  bridge = new EchoBridge(echo.loaded, server.baseUrl, { port, serverName: "localhost" });
  await bridge.start();
  alice = await server.register("alice");
});

afterAll(async () => {
  await bridge?.stop();
  await server?.close();
});

async function createRoom(invite: string[]): Promise<string> {
  const created = await server.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat", invite } });
  expect(created.status).toBe(200);
  return created.body.room_id;
}

function setTyping(roomId: string, typing: boolean) {
  return server.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(alice.userId)}`, { token: alice.accessToken, body: { typing, timeout: 30_000 } });
}

type Edu = { type: string; room_id?: string; content: Record<string, unknown> };

/** Every EDU under the spec's `ephemeral` key of the transactions received so far. */
function specEphemeral(): Edu[] {
  return bridge.bodies.flatMap((body) => (body.ephemeral as Edu[] | undefined) ?? []);
}

test("typing in a room the bridge is in arrives as m.typing with the room's ID, under both keys; typing elsewhere does not", async () => {
  const roomId = await createRoom([bridge.botUserId]);
  await waitFor("the bot's join", async () => ((await server.homeserver.storage.events.getMembers(roomId, "join")).includes(bridge.botUserId) ? true : undefined));
  const elsewhere = await createRoom([]);

  expect((await setTyping(elsewhere, true)).status).toBe(200);
  expect((await setTyping(roomId, true)).status).toBe(200);
  // matrix-appservice emits what it reads under MSC2409's key.
  const started = await waitFor("alice typing", async () => bridge.ephemeral.find((e) => e.type === "m.typing" && e.room_id === roomId && (e.content.user_ids as string[]).includes(alice.userId)));
  expect(started.content).toEqual({ user_ids: [alice.userId] });
  expect(specEphemeral()).toContainEqual({ type: "m.typing", room_id: roomId, content: { user_ids: [alice.userId] } });

  expect((await setTyping(roomId, false)).status).toBe(200);
  await waitFor("alice stopped typing", async () => bridge.ephemeral.find((e) => e.type === "m.typing" && e.room_id === roomId && (e.content.user_ids as string[]).length === 0));
  expect(bridge.ephemeral.some((e) => e.room_id === elsewhere)).toBe(false);
});

test("to-device messages for a ghost's device reach the bridge with to_user_id and to_device_id; others' do not", async () => {
  const ghost = "@_echo_crypto:localhost";
  await bridge.ensureGhost(ghost);
  const login = await bridge.call("POST", "/_matrix/client/v3/login", { type: "m.login.application_service", identifier: { type: "m.id.user", user: "_echo_crypto" }, device_id: "CRYPTODEV" });
  expect(login.status).toBe(200);
  const bob = await server.register("bob");

  const sent = await server.request("PUT", "/_matrix/client/v3/sendToDevice/m.room_key_request/td1", {
    token: alice.accessToken,
    body: { messages: { [ghost]: { CRYPTODEV: { action: "request", request_id: "r1" } }, [bob.userId]: { [bob.deviceId]: { action: "request", request_id: "r2" } } } },
  });
  expect(sent.status).toBe(200);

  const toDevice = await waitFor("the to-device message", async () => {
    const all = bridge.bodies.flatMap((body) => (body["de.sorunome.msc2409.to_device"] as Array<Record<string, unknown>> | undefined) ?? []);
    return all.some((m) => m.to_user_id === ghost) ? all : undefined;
  });
  expect(toDevice).toContainEqual({ type: "m.room_key_request", sender: alice.userId, content: { action: "request", request_id: "r1" }, to_user_id: ghost, to_device_id: "CRYPTODEV" });
  // Bob is nobody the bridge stands for.
  expect(toDevice.some((m) => m.to_user_id === bob.userId)).toBe(false);
  // The ghost is in an exclusive namespace and never syncs: once the bridge acknowledged, its inbox is emptied (MSC4203's suggestion); bob's waits for his sync.
  const storage = server.homeserver.storage;
  await waitFor("the ghost's inbox emptied", async () => ((await storage.toDevice.getPending(ghost, "CRYPTODEV", Number.MAX_SAFE_INTEGER, 10)).length === 0 ? true : undefined));
  expect(await storage.toDevice.getPending(bob.userId, bob.deviceId, Number.MAX_SAFE_INTEGER, 10)).toHaveLength(1);
});

test("a service request without device_id acts as the user with no device: its transaction IDs are the user's own, apart from any device's", async () => {
  const ghost = "@_echo_txn:localhost";
  await bridge.ensureGhost(ghost);
  const roomId = await createRoom([]);
  expect((await bridge.call("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {}, ghost)).status).toBe(200);
  const login = await bridge.call("POST", "/_matrix/client/v3/login", { type: "m.login.application_service", identifier: { type: "m.id.user", user: "_echo_txn" }, device_id: "TXNDEV" });
  expect(login.status).toBe(200);
  const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/same-txn`;
  const message = { msgtype: "m.text", body: "once" };

  // Client-Server API "Transaction identifiers": the scope is the device; without one, the user the service asserts.
  const first = await bridge.call("PUT", path, message, ghost);
  const retried = await bridge.call("PUT", path, message, ghost);
  expect(first.status).toBe(200);
  expect(retried.body.event_id).toBe(first.body.event_id);
  const withDevice = await bridge.call("PUT", `${path}?device_id=TXNDEV`, message, ghost);
  expect(withDevice.status).toBe(200);
  expect(withDevice.body.event_id).not.toBe(first.body.event_id);
  // Another user of the same service with the same transaction ID is another request (Synapse would answer the first's event).
  const other = "@_echo_txn2:localhost";
  await bridge.ensureGhost(other);
  expect((await bridge.call("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {}, other)).status).toBe(200);
  const fromOther = await bridge.call("PUT", path, message, other);
  expect(fromOther.status).toBe(200);
  expect(fromOther.body.event_id).not.toBe(first.body.event_id);
  const event = await server.homeserver.storage.events.getEvent(fromOther.body.event_id);
  expect(event?.pdu.sender).toBe(other);
});
