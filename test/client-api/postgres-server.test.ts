// The whole server on PostgreSQL: register, create a room, talk, sync, restart. The storage suite
// covers every repository on both engines; this checks the services' transactions on PostgreSQL.
import { postgresUrl } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const url = await postgresUrl();
const describeOnPostgres = url ? describe : describe.skip;

describeOnPostgres("a homeserver on PostgreSQL", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ postgresUrl: url! });
  });
  afterAll(async () => {
    await server?.close();
  });

  test("users chat and sync, and everything survives a restart", async () => {
    const alice = await server.register("alice");
    const bob = await server.register("bob");
    const created = await server.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat", name: "pg" } });
    expect(created.status).toBe(200);
    const roomId: string = created.body.room_id;
    expect((await server.request("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.accessToken, body: {} })).status).toBe(200);
    const first = await server.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: bob.accessToken });
    expect(first.body.rooms.join[roomId]).toBeDefined();

    // Bob long-polls; Alice's message wakes him.
    const polled = server.request("GET", `/_matrix/client/v3/sync?timeout=10000&since=${first.body.next_batch}`, { token: bob.accessToken });
    const sent = await server.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, {
      token: alice.accessToken,
      body: { msgtype: "m.text", body: "hello from postgres" },
    });
    expect(sent.status).toBe(200);
    const woke = await polled;
    const bodies = woke.body.rooms.join[roomId].timeline.events.map((e: { content: { body?: string } }) => e.content.body);
    expect(bodies).toContain("hello from postgres");

    // The same transaction ID gives the same event; a restart keeps tokens, events and sync positions.
    const again = await server.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, {
      token: alice.accessToken,
      body: { msgtype: "m.text", body: "hello from postgres" },
    });
    expect(again.body.event_id).toBe(sent.body.event_id);
    await server.restart();
    const after = await server.request("GET", `/_matrix/client/v3/sync?timeout=0&since=${woke.body.next_batch}`, { token: bob.accessToken });
    expect(after.status).toBe(200);
    const event = await server.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(sent.body.event_id)}`, { token: bob.accessToken });
    expect(event.body.content.body).toBe("hello from postgres");
  });
});
