// The `message` rate limit: a user sending faster than the configured rate gets 429
// M_LIMIT_EXCEEDED with retry_after_ms (and Retry-After), and can send again once it has passed.
import { startTestServer, type TestServer } from "../../support/test-server.js";

let clock = 1_800_000_000_000;
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ rateLimits: { message: { perSecond: 1, burst: 2 } }, now: () => clock });
});
afterAll(async () => {
  await server?.close();
});

test("sends over the burst are refused until the bucket refills", async () => {
  const alice = await server.register("alice");
  const roomId: string = (await server.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: {} })).body.room_id;
  const send = (txn: string) =>
    server.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`, { token: alice.accessToken, body: { msgtype: "m.text", body: txn } });
  expect((await send("a")).status).toBe(200);
  expect((await send("b")).status).toBe(200);
  const refused = await send("c");
  expect(refused.status).toBe(429);
  expect(refused.body.errcode).toBe("M_LIMIT_EXCEEDED");
  expect(refused.body.retry_after_ms).toBeGreaterThan(0);
  expect(refused.body.retry_after_ms).toBeLessThanOrEqual(1000);
  // State events count too.
  expect((await server.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic`, { token: alice.accessToken, body: { topic: "t" } })).status).toBe(429);
  clock += 1000;
  expect((await send("c")).status).toBe(200);
});

test("the limit is per user", async () => {
  const bob = await server.register("bob");
  const roomId: string = (await server.request("POST", "/_matrix/client/v3/createRoom", { token: bob.accessToken, body: {} })).body.room_id;
  const sent = await server.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/x`, { token: bob.accessToken, body: { msgtype: "m.text", body: "x" } });
  expect(sent.status).toBe(200);
});
