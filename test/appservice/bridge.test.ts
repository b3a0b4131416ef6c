// A real bridge framework (matrix-appservice) against a real Bobbin: the echo bridge replies as a
// ghost, ghosts and rooms are created lazily through the user and alias queries, transactions
// queue while the bridge is down and arrive once and in order after it is back, and the spec's
// refusals (exclusive namespaces, wrong tokens) hold.
import { jest } from "@jest/globals";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";
import { EchoBridge, echoRegistration } from "./echo-bridge.js";

jest.setTimeout(60_000);

let server: TestServer;
let bridge: EchoBridge;
let other: EchoBridge;
let alice: { userId: string; accessToken: string };

beforeAll(async () => {
  const [bridgePort, otherPort] = [await freePort(), await freePort()];
  const echo = echoRegistration({ port: bridgePort, serverName: "localhost", ephemeral: true });
  // A second service with its own exclusive namespace, never started: its token must not reach the first's users.
  const second = echoRegistration({ id: "other", port: otherPort, serverName: "localhost", prefix: "_other_" });
  server = await startTestServer({ appservices: [echo.loaded, second.loaded], appservicePusher: { backoff: { initialMs: 50, maxMs: 400, jitter: 0.2 } } });
  bridge = new EchoBridge(echo.loaded, server.baseUrl, { port: bridgePort, serverName: "localhost" });
  other = new EchoBridge(second.loaded, server.baseUrl, { port: otherPort, serverName: "localhost", prefix: "_other_" });
  await bridge.start();
  alice = await server.register("alice");
});

afterAll(async () => {
  await bridge?.stop();
  await server?.close();
});

async function createRoomWithBot(): Promise<string> {
  const created = await server.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat", invite: [bridge.botUserId] } });
  expect(created.status).toBe(200);
  const roomId: string = created.body.room_id;
  // The bridge sees the invite of its bot (the target is its sender) and joins.
  await waitFor("the bot's join", async () => ((await server.homeserver.storage.events.getMembers(roomId, "join")).includes(bridge.botUserId) ? true : undefined));
  return roomId;
}

function send(roomId: string, txnId: string, body: string) {
  return server.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txnId}`, { token: alice.accessToken, body: { msgtype: "m.text", body } });
}

test("echo: a user's message reaches the bridge, whose ghost replies in the room", async () => {
  const roomId = await createRoomWithBot();
  const sent = await send(roomId, "e1", "echo hello bridge");
  expect(sent.status).toBe(200);

  const ghost = bridge.ghostOf(alice.userId);
  const reply = await waitFor("the ghost's reply", async () => {
    const messages = await server.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=10`, { token: alice.accessToken });
    return messages.body.chunk.find((e: { sender: string; type: string }) => e.sender === ghost && e.type === "m.room.message");
  });
  expect(reply.content).toEqual({ msgtype: "m.notice", body: "echo: hello bridge" });
  // The ghost is a real account of the service, created through m.login.application_service.
  const ghostRow = await server.homeserver.storage.accounts.getUser(ghost);
  expect(ghostRow?.appserviceId).toBe("echo");
  expect(ghostRow?.passwordHash).toBeNull();
  // The bridge got alice's message as a client-format event.
  const received = bridge.events.find((e) => e.event_id === sent.body.event_id);
  expect(received).toMatchObject({ room_id: roomId, sender: alice.userId, type: "m.room.message", content: { body: "echo hello bridge" } });
});

test("receive_ephemeral: read receipts in the bridge's rooms arrive as m.receipt EDUs; others' private receipts do not", async () => {
  const roomId = await createRoomWithBot();
  const sent = await send(roomId, "rc1", "read me");
  const eventId: string = sent.body.event_id;
  const privateReceipt = await server.request("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/receipt/m.read.private/${encodeURIComponent(eventId)}`, { token: alice.accessToken, body: {} });
  expect(privateReceipt.status).toBe(200);
  const receipt = await server.request("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/receipt/m.read/${encodeURIComponent(eventId)}`, { token: alice.accessToken, body: {} });
  expect(receipt.status).toBe(200);
  const edu = await waitFor("the receipt EDU", async () => bridge.ephemeral.find((e) => e.type === "m.receipt" && e.room_id === roomId && (e.content[eventId] as Record<string, unknown> | undefined)?.["m.read"] !== undefined));
  expect(Object.keys((edu.content[eventId] as Record<string, Record<string, unknown>>)["m.read"]!)).toEqual([alice.userId]);
  expect(bridge.ephemeral.some((e) => e.room_id === roomId && (e.content[eventId] as Record<string, unknown> | undefined)?.["m.read.private"] !== undefined)).toBe(false);
});

test("a ghost is created on first mention, through the user query", async () => {
  const ghost = "@_echo_mentioned:localhost";
  expect(await server.homeserver.storage.accounts.getUser(ghost)).toBeUndefined();
  const profile = await server.request("GET", `/_matrix/client/v3/profile/${encodeURIComponent(ghost)}`, { token: alice.accessToken });
  expect(profile.status).toBe(200);
  expect(profile.body).toEqual({ displayname: "Echo of mentioned" });
  expect((await server.homeserver.storage.accounts.getUser(ghost))?.appserviceId).toBe("echo");
  // Outside every namespace nobody is asked: still 404.
  const stranger = await server.request("GET", `/_matrix/client/v3/profile/${encodeURIComponent("@nobody:localhost")}`, { token: alice.accessToken });
  expect(stranger.status).toBe(404);
});

test("a room alias in the bridge's namespace is created on first lookup, through the alias query", async () => {
  const alias = "#_echo_lobby:localhost";
  const resolved = await server.request("GET", `/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`, { token: alice.accessToken });
  expect(resolved.status).toBe(200);
  const room = await server.homeserver.storage.events.getRoom(resolved.body.room_id);
  expect(room?.creator).toBe(bridge.botUserId);
  const unknown = await server.request("GET", `/_matrix/client/v3/directory/room/${encodeURIComponent("#nothing:localhost")}`, { token: alice.accessToken });
  expect(unknown.status).toBe(404);
});

test("while the bridge is stopped messages queue; after it restarts each arrives once, in order", async () => {
  const roomId = await createRoomWithBot();
  await bridge.stop();
  const before = bridge.events.length;
  const bodies = Array.from({ length: 12 }, (_, i) => `queued ${i}`);
  for (const [i, body] of bodies.entries()) expect((await send(roomId, `q${i}`, body)).status).toBe(200);
  // The pusher keeps failing and backing off meanwhile.
  await waitFor("a transaction in flight", async () => ((await stateOf()).inFlight !== null ? true : undefined));
  await new Promise((resolve) => setTimeout(resolve, 300));

  await bridge.start();
  const arrived = await waitFor("the queued messages", async () => {
    const got = bridge.events.slice(before).filter((e) => e.room_id === roomId && e.type === "m.room.message");
    return got.length >= bodies.length ? got : undefined;
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const all = bridge.events.slice(before).filter((e) => e.room_id === roomId && e.type === "m.room.message");
  expect(all.map((e) => e.content.body)).toEqual(bodies);
  expect(new Set(all.map((e) => e.event_id)).size).toBe(all.length);
  expect(arrived.length).toBe(bodies.length);
  // Every transaction ID the bridge saw is one the pusher numbered in sequence.
  const ids = bridge.txnIds.map(Number);
  expect(ids.every((id, i) => i === 0 || id >= ids[i - 1]!)).toBe(true);
});

async function stateOf() {
  const state = await server.homeserver.storage.appservices.getState("echo");
  if (!state) throw new Error("no state");
  return state;
}

test("a homeserver restart resends the transaction in flight with the same txnId and body", async () => {
  const roomId = await createRoomWithBot();
  await waitFor("the pusher idle", async () => ((await stateOf()).inFlight === null && bridge.events.some((e) => e.room_id === roomId && e.state_key === bridge.botUserId && e.content.membership === "join") ? true : undefined));
  await bridge.stop();
  const before = bridge.events.length;
  for (let i = 0; i < 3; i++) expect((await send(roomId, `r${i}`, `restart ${i}`)).status).toBe(200);
  const inFlight = await waitFor("a transaction in flight", async () => (await stateOf()).inFlight ?? undefined);
  await server.restart();
  // Still down after the restart: the same transaction waits.
  expect((await stateOf()).inFlight).toEqual(inFlight);
  const seenBefore = bridge.txnIds.length;
  await bridge.start();
  await waitFor("the resent transaction", async () => (bridge.txnIds.slice(seenBefore).includes(inFlight.txnId) ? true : undefined));
  const got = await waitFor("the three messages", async () => {
    const messages = bridge.events.slice(before).filter((e) => e.room_id === roomId && e.type === "m.room.message");
    return messages.length >= 3 ? messages : undefined;
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(bridge.txnIds.slice(seenBefore)[0]).toBe(inFlight.txnId);
  expect(got.map((e) => e.content.body)).toEqual(["restart 0", "restart 1", "restart 2"]);
  expect(bridge.events.slice(before).filter((e) => e.room_id === roomId && e.type === "m.room.message").length).toBe(3);
  // The body resent is the one recorded: its events are those the bridge received first.
  const recorded = (JSON.parse(inFlight.body) as { events: Array<{ event_id: string }> }).events.map((e) => e.event_id);
  expect(bridge.events.slice(before, before + recorded.length).map((e) => e.event_id)).toEqual(recorded);
});

test("events queued while a ghost was joined are delivered even if it has left since; later ones are not", async () => {
  const created = await server.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat" } });
  const roomId: string = created.body.room_id;
  const ghost = "@_echo_leaver:localhost";
  await bridge.ensureGhost(ghost);
  expect((await bridge.call("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {}, ghost)).status).toBe(200);
  await waitFor("the ghost's join at the bridge", async () => bridge.events.find((e) => e.room_id === roomId && e.state_key === ghost && e.content.membership === "join"));
  await waitFor("the pusher idle", async () => ((await stateOf()).inFlight === null ? true : undefined));
  await bridge.stop();
  const before = bridge.events.length;
  await send(roomId, "l1", "while joined 1");
  await send(roomId, "l2", "while joined 2");
  expect((await bridge.call("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {}, ghost)).status).toBe(200);
  await send(roomId, "l3", "after the leave");
  await bridge.start();
  await waitFor("the ghost's leave at the bridge", async () => bridge.events.slice(before).find((e) => e.room_id === roomId && e.state_key === ghost && e.content.membership === "leave"));
  // A later message in a room of the bot: once it has arrived, the pusher has gone past "after the leave".
  const sentinelRoom = await createRoomWithBot();
  const sentinel = await send(sentinelRoom, "l4", "sentinel");
  await waitFor("the sentinel", async () => bridge.events.find((e) => e.event_id === sentinel.body.event_id));
  const got = bridge.events.slice(before).filter((e) => e.room_id === roomId);
  expect(got.map((e) => (e.type === "m.room.message" ? e.content.body : e.content.membership))).toEqual(["while joined 1", "while joined 2", "leave"]);
});

test("a normal user cannot register, or create an alias, inside an exclusive namespace", async () => {
  const first = await server.request("POST", "/_matrix/client/v3/register", { body: { username: "_echo_impostor", password: "correct horse battery staple" } });
  expect(first.status).toBe(400);
  expect(first.body.errcode).toBe("M_EXCLUSIVE");
  const available = await server.request("GET", "/_matrix/client/v3/register/available?username=_echo_impostor");
  expect(available.body.errcode).toBe("M_EXCLUSIVE");
  // The service's own sender is in its namespace too.
  const sender = await server.request("POST", "/_matrix/client/v3/register", { body: { username: "_echo_bot" } });
  expect(sender.body.errcode).toBe("M_EXCLUSIVE");
  const created = await server.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: {} });
  const alias = await server.request("PUT", `/_matrix/client/v3/directory/room/${encodeURIComponent("#_echo_mine:localhost")}`, { token: alice.accessToken, body: { room_id: created.body.room_id } });
  expect(alias.status).toBe(400);
  expect(alias.body.errcode).toBe("M_EXCLUSIVE");
  // Outside the namespaces all is as usual.
  expect((await server.request("GET", "/_matrix/client/v3/register/available?username=echo_fan")).status).toBe(200);
});

test("a token for the wrong service is refused", async () => {
  // Unknown token.
  const bogus = await fetch(`${server.baseUrl}/_matrix/client/v3/account/whoami`, { headers: { authorization: "Bearer not-a-service-token" } });
  expect(bogus.status).toBe(401);
  expect(((await bogus.json()) as { errcode: string }).errcode).toBe("M_UNKNOWN_TOKEN");
  // The other service's token cannot act as this service's ghost or register in its namespace.
  const ghost = bridge.ghostOf(alice.userId);
  const masquerade = await other.call("GET", "/_matrix/client/v3/account/whoami", undefined, ghost);
  expect(masquerade.status).toBe(403);
  const register = await other.call("POST", "/_matrix/client/v3/register", { type: "m.login.application_service", username: "_echo_stolen" });
  expect(register.status).toBe(400);
  expect(register.body.errcode).toBe("M_EXCLUSIVE");
  // m.login.application_service without a service token.
  const noToken = await server.request("POST", "/_matrix/client/v3/register", { body: { type: "m.login.application_service", username: "_echo_x" } });
  expect(noToken.status).toBe(401);
  expect(noToken.body.errcode).toBe("M_MISSING_TOKEN");
  const userToken = await server.request("POST", "/_matrix/client/v3/register", { token: alice.accessToken, body: { type: "m.login.application_service", username: "_echo_x" } });
  expect(userToken.status).toBe(401);
  expect(userToken.body.errcode).toBe("M_UNKNOWN_TOKEN");
  // Pinging a service with another's token.
  const ping = await other.call("POST", `/_matrix/client/v1/appservice/echo/ping`, {});
  expect(ping.status).toBe(403);
  expect(ping.body.errcode).toBe("M_FORBIDDEN");
  // And the bridge refuses a transaction that does not carry its hs_token.
  const forged = await fetch(`${bridge.registration.url}/_matrix/app/v1/transactions/forged`, { method: "PUT", headers: { authorization: "Bearer wrong", "content-type": "application/json" }, body: '{"events":[]}' });
  expect(forged.status).toBe(403);
});

test("masquerading: user_id within the namespace, device_id of that user, the deprecated access_token parameter", async () => {
  const ghost = "@_echo_masked:localhost";
  await bridge.ensureGhost(ghost);
  const asGhost = await bridge.call("GET", "/_matrix/client/v3/account/whoami", undefined, ghost);
  // Without device_id the service acts as the user with no device: whoami leaves the field out,
  // and there is no device to upload keys for.
  expect(asGhost.body).toEqual({ user_id: ghost, is_guest: false });
  const keysWithoutDevice = await bridge.call("POST", "/_matrix/client/v3/keys/upload", { one_time_keys: {} }, ghost);
  expect([keysWithoutDevice.status, keysWithoutDevice.body.errcode]).toEqual([400, "M_MISSING_PARAM"]);
  const asSender = await bridge.call("GET", "/_matrix/client/v3/account/whoami");
  expect(asSender.body.user_id).toBe(bridge.botUserId);
  const outside = await bridge.call("GET", "/_matrix/client/v3/account/whoami", undefined, alice.userId);
  expect(outside.status).toBe(403);
  const unregistered = await bridge.call("GET", "/_matrix/client/v3/account/whoami", undefined, "@_echo_never_registered:localhost");
  expect(unregistered.status).toBe(403);
  // A device for the ghost through m.login.application_service, then requests as that device.
  const login = await bridge.call("POST", "/_matrix/client/v3/login", { type: "m.login.application_service", identifier: { type: "m.id.user", user: "_echo_masked" }, device_id: "GHOSTDEV" });
  expect(login.status).toBe(200);
  expect(login.body).toMatchObject({ user_id: ghost, device_id: "GHOSTDEV" });
  const withDevice = await fetch(`${server.baseUrl}/_matrix/client/v3/account/whoami?user_id=${encodeURIComponent(ghost)}&device_id=GHOSTDEV`, { headers: { authorization: `Bearer ${bridge.registration.asToken}` } });
  expect(await withDevice.json()).toMatchObject({ user_id: ghost, device_id: "GHOSTDEV" });
  // MSC3202's unstable parameter name, which mautrix bridges send.
  const withUnstableDevice = await fetch(`${server.baseUrl}/_matrix/client/v3/account/whoami?user_id=${encodeURIComponent(ghost)}&org.matrix.msc3202.device_id=GHOSTDEV`, { headers: { authorization: `Bearer ${bridge.registration.asToken}` } });
  expect(await withUnstableDevice.json()).toMatchObject({ user_id: ghost, device_id: "GHOSTDEV" });
  const unknownDevice = await fetch(`${server.baseUrl}/_matrix/client/v3/account/whoami?user_id=${encodeURIComponent(ghost)}&device_id=NOPE`, { headers: { authorization: `Bearer ${bridge.registration.asToken}` } });
  expect(unknownDevice.status).toBe(403);
  const loginOutside = await bridge.call("POST", "/_matrix/client/v3/login", { type: "m.login.application_service", identifier: { type: "m.id.user", user: "alice" } });
  expect(loginOutside.body.errcode).toBe("M_EXCLUSIVE");
  const query = await fetch(`${server.baseUrl}/_matrix/client/v3/account/whoami?access_token=${encodeURIComponent(bridge.registration.asToken)}&user_id=${encodeURIComponent(ghost)}`);
  expect(((await query.json()) as { user_id: string }).user_id).toBe(ghost);
});

test("ping both ways: the bridge pings Bobbin, which pings the bridge", async () => {
  const ok = await bridge.call("POST", "/_matrix/client/v1/appservice/echo/ping", { transaction_id: "meow" });
  expect(ok.status).toBe(200);
  expect(typeof ok.body.duration_ms).toBe("number");
  expect(bridge.pings).toContain("meow");

  bridge.pingStatus = 418;
  const bad = await bridge.call("POST", "/_matrix/client/v1/appservice/echo/ping", {});
  bridge.pingStatus = 200;
  expect(bad.status).toBe(502);
  expect(bad.body).toMatchObject({ errcode: "M_BAD_STATUS", status: 418 });

  await bridge.stop();
  try {
    const down = await bridge.call("POST", "/_matrix/client/v1/appservice/echo/ping", {});
    expect(down.status).toBe(502);
    expect(down.body.errcode).toBe("M_CONNECTION_FAILED");
  } finally {
    await bridge.start();
  }
});
