// The application service queue on PostgreSQL: messages sent while the bridge is down, a homeserver
// restart in between, then every message arrives once and in order (the SQLite suite covers the rest).
import { jest } from "@jest/globals";
import { postgresUrl } from "../support/postgres.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";
import { EchoBridge, echoRegistration } from "./echo-bridge.js";

jest.setTimeout(60_000);
const url = await postgresUrl();
const describeOnPostgres = url ? describe : describe.skip;

describeOnPostgres("application services on PostgreSQL", () => {
  let server: TestServer;
  let bridge: EchoBridge;

  beforeAll(async () => {
    const port = await freePort();
    const echo = echoRegistration({ port, serverName: "localhost" });
    server = await startTestServer({ postgresUrl: url!, appservices: [echo.loaded], appservicePusher: { backoff: { initialMs: 50, maxMs: 400, jitter: 0.2 } } });
    bridge = new EchoBridge(echo.loaded, server.baseUrl, { port, serverName: "localhost" });
    await bridge.start();
  });
  afterAll(async () => {
    await bridge?.stop();
    await server?.close();
  });

  test("queued across a restart, delivered once and in order", async () => {
    const alice = await server.register("alice");
    const created = await server.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat", invite: [bridge.botUserId] } });
    const roomId: string = created.body.room_id;
    await waitFor("the bot's join", async () => ((await server.homeserver.storage.events.getMembers(roomId, "join")).includes(bridge.botUserId) ? true : undefined));
    await waitFor("the pusher idle", async () => ((await server.homeserver.storage.appservices.getState("echo"))?.inFlight === null ? true : undefined));
    await bridge.stop();
    const before = bridge.events.length;
    const bodies = Array.from({ length: 8 }, (_, i) => `pg ${i}`);
    for (const [i, body] of bodies.entries()) {
      const sent = await server.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/p${i}`, { token: alice.accessToken, body: { msgtype: "m.text", body } });
      expect(sent.status).toBe(200);
    }
    await server.restart();
    await bridge.start();
    const got = await waitFor("the messages", async () => {
      const messages = bridge.events.slice(before).filter((e) => e.type === "m.room.message");
      return messages.length >= bodies.length ? messages : undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(got.map((e) => e.content.body)).toEqual(bodies);
    expect(bridge.events.slice(before).filter((e) => e.type === "m.room.message").length).toBe(bodies.length);
  });

  test("the pusher's read of to-device messages over every inbox (MSC4203)", async () => {
    const bob = await server.register("bob");
    const from = await server.homeserver.storage.maxStreamPos();
    const sent = await server.request("PUT", "/_matrix/client/v3/sendToDevice/m.test/pg-td", { token: bob.accessToken, body: { messages: { [bob.userId]: { [bob.deviceId]: { n: 1 } } } } });
    expect(sent.status).toBe(200);
    const rows = await server.homeserver.storage.appservices.readToDevice(from, await server.homeserver.storage.maxStreamPos(), 10);
    expect(rows).toEqual([expect.objectContaining({ userId: bob.userId, deviceId: bob.deviceId, sender: bob.userId, type: "m.test", content: { n: 1 } })]);
  });
});
