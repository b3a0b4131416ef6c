// Transaction IDs under pipelined sends (Client-Server API "Transaction identifiers"), over real
// HTTP on SQLite and PostgreSQL (where reads run beside the transactions): identical requests in
// flight at once send one event, a retry after the commit gets the same event ID, and concurrent
// sends of one room all land in one linear log.
import { postgresUrl } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { createRoom, enc, sync, type User } from "../client-api/rooms/support.js";

const api = "/_matrix/client/v3";
let server: TestServer;
let alice: User;

describe.each([["sqlite"], ["postgres"]])("on %s", (engine) => {
  let skip = false;
  beforeAll(async () => {
    const url = engine === "postgres" ? await postgresUrl() : undefined;
    skip = engine === "postgres" && url === undefined;
    if (skip) return;
    server = await startTestServer(url === undefined ? {} : { postgresUrl: url });
    alice = await server.register("alice");
  });
  afterAll(async () => {
    if (!skip) await server.close();
  });

  function put(user: User, roomId: string, txnId: string, body: string) {
    return server.request("PUT", `${api}/rooms/${enc(roomId)}/send/m.room.message/${txnId}`, { token: user.accessToken, body: { msgtype: "m.text", body } });
  }

  async function messages(user: User, roomId: string): Promise<any[]> {
    const res = await server.request("GET", `${api}/rooms/${enc(roomId)}/messages?dir=f&limit=1000`, { token: user.accessToken });
    expect(res.status).toBe(200);
    return res.body.chunk.filter((e: any) => e.type === "m.room.message");
  }

  test("identical sends in flight at once store one event and all get its ID; a later retry too", async () => {
    if (skip) return;
    const roomId = await createRoom(server, alice);
    // Other sends of the room are in flight at the same time, so the duplicates are pipelined.
    const answers = await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => put(alice, roomId, `other${i}`, `other ${i}`)),
      ...Array.from({ length: 8 }, () => put(alice, roomId, "same", "once")),
    ]);
    for (const answer of answers) expect(answer.status).toBe(200);
    const ids = new Set(answers.slice(5).map((a) => a.body.event_id));
    expect(ids.size).toBe(1);
    const retry = await put(alice, roomId, "same", "once");
    expect(retry.body.event_id).toBe([...ids][0]);

    const stored = await messages(alice, roomId);
    expect(stored.filter((e) => e.content.body === "once").map((e) => e.event_id)).toEqual([...ids]);
    expect(stored).toHaveLength(6);
  });

  test("a retry after a restart is answered from the stored transaction ID", async () => {
    if (skip) return;
    const roomId = await createRoom(server, alice);
    const first = await put(alice, roomId, "kept", "kept across restarts");
    await server.restart();
    const [a, b] = await Promise.all([put(alice, roomId, "kept", "kept across restarts"), put(alice, roomId, "kept", "kept across restarts")]);
    expect(a.body.event_id).toBe(first.body.event_id);
    expect(b.body.event_id).toBe(first.body.event_id);
    expect((await messages(alice, roomId)).filter((e) => e.content.body === "kept across restarts")).toHaveLength(1);
  });

  test("concurrent sends of one room form one linear log, each acknowledged event in sync", async () => {
    if (skip) return;
    const roomId = await createRoom(server, alice);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => put(alice, roomId, `c${i}`, `c${i}`)));
    for (const answer of answers) expect(answer.status).toBe(200);
    const stored = await messages(alice, roomId);
    expect(stored.map((e) => e.event_id).sort()).toEqual(answers.map((a) => a.body.event_id).sort());
    const timeline = (await sync(server, alice, { filter: JSON.stringify({ room: { timeline: { limit: 100 } } }) })).rooms.join[roomId].timeline.events as any[];
    // The sync timeline is the tail of the stored log, in the same order.
    const all = (await server.request("GET", `${api}/rooms/${enc(roomId)}/messages?dir=f&limit=1000`, { token: alice.accessToken })).body.chunk as any[];
    expect(timeline.map((e) => e.event_id)).toEqual(all.map((e: any) => e.event_id).slice(-timeline.length));
    const ids = answers.map((a) => a.body.event_id as string);
    for (const id of ids) expect(timeline.some((e) => e.event_id === id)).toBe(true);
  });
});
