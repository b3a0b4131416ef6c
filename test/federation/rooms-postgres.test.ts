// Federation with PostgreSQL on both sides (the other federation tests run on SQLite): a hub and
// a participant each on a schema of their own. PostgreSQL commits transactions in parallel, so
// this is where the outbound queues' "only committed positions" rule and the replica's multi-row
// writes meet real concurrency: many sends from both servers at once must arrive everywhere once.
import { jest } from "@jest/globals";
import { postgresUrl } from "../support/postgres.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";

jest.setTimeout(60_000);

const url = await postgresUrl();
const describeOnPostgres = url ? describe : describe.skip;
const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 } } };

describeOnPostgres("federation between two servers on PostgreSQL", () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    a = await startTestServer({ serverName: `localhost:${portA}`, port: portA, federation, postgresUrl: url! });
    b = await startTestServer({ serverName: `localhost:${portB}`, port: portB, federation, postgresUrl: url! });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  test("a participant joins, 200 concurrent sends from both servers arrive once, in one order", async () => {
    const alice = await a.register("alice");
    const bob = await b.register("bob");
    const roomId: string = (await a.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat" } })).body.room_id;
    const room = encodeURIComponent(roomId);
    expect((await b.request("POST", `/_matrix/client/v3/join/${room}`, { token: bob.accessToken, body: {} })).status).toBe(200);

    const sends = Array.from({ length: 200 }, (_, i) => {
      const [server, user] = i % 2 === 0 ? [a, alice] : [b, bob];
      return server.request("PUT", `/_matrix/client/v3/rooms/${room}/send/m.room.message/p${i}`, { token: user.accessToken, body: { msgtype: "m.text", body: `p${i}` } });
    });
    const answers = await Promise.all(sends);
    expect(answers.every((r) => r.status === 200)).toBe(true);
    const ids = answers.map((r) => r.body.event_id as string);
    const logOf = async (server: TestServer) => (await server.homeserver.storage.events.getRoomEvents(roomId, { direction: "forward", limit: 10_000 })).map((e) => e.eventId);
    await waitFor("every message on B", async () => ((await logOf(b)).filter((id) => ids.includes(id)).length === ids.length ? true : undefined), 30_000);
    const [logA, logB] = [await logOf(a), await logOf(b)];
    const onA = logA.filter((id) => ids.includes(id));
    expect(logB.filter((id) => ids.includes(id))).toEqual(onA);
    expect(new Set(logB).size).toBe(logB.length);
    expect(onA).toHaveLength(200);
  });
});
