// Timelines are served from the room writer's recent events when they hold the sync's whole
// window (rooms/recent-events.ts), from storage otherwise: a sync must see the same either way —
// redactions included, from before the cached events, and across a restart.
import { startTestServer, type TestServer } from "../../support/test-server.js";
import { createRoom, enc, join, sendMessage, sync, timelineBodies, type User } from "./support.js";

let server: TestServer;
let alice: User;
let bob: User;
const api = "/_matrix/client/v3";
/** More than the events cached per room (64). */
const MANY = 80;

beforeAll(async () => {
  server = await startTestServer();
  alice = await server.register("alice");
  bob = await server.register("bob");
});
afterAll(async () => {
  await server.close();
});

const timelineFilter = (limit: number): string => JSON.stringify({ room: { timeline: { limit } } });

function timelineOf(body: any, roomId: string): any[] {
  return body.rooms?.join?.[roomId]?.timeline?.events ?? [];
}

test("a cached event redacted later shows redacted in a later sync, with redacted_because", async () => {
  const roomId = await createRoom(server, alice, { preset: "public_chat" });
  await join(server, bob, roomId);
  const before = (await sync(server, bob)).next_batch as string;
  const eventId = await sendMessage(server, alice, roomId, "regrettable");
  // Served while cached: the original.
  const first = await sync(server, bob, { since: before });
  expect(timelineBodies(first, roomId)).toEqual(["regrettable"]);

  const redaction = await server.request("PUT", `${api}/rooms/${enc(roomId)}/redact/${enc(eventId)}/r1`, { token: alice.accessToken, body: { reason: "oops" } });
  expect(redaction.status).toBe(200);

  for (const body of [await sync(server, bob, { since: before }), await sync(server, bob)]) {
    const redacted = timelineOf(body, roomId).find((e) => e.event_id === eventId);
    expect(redacted).toBeDefined();
    expect(redacted.content).toEqual({});
    expect(redacted.unsigned.redacted_because).toMatchObject({ event_id: redaction.body.event_id, type: "m.room.redaction" });
  }
  // The sync after the first one gets the redaction itself.
  const next = await sync(server, bob, { since: first.next_batch });
  expect(timelineOf(next, roomId).map((e) => e.type)).toEqual(["m.room.redaction"]);
});

test("a sync from before the cached events reads the rest from storage and misses nothing", async () => {
  const roomId = await createRoom(server, alice, { preset: "public_chat" });
  await join(server, bob, roomId);
  const before = (await sync(server, bob)).next_batch as string;
  const sent: string[] = [];
  for (let i = 0; i < MANY; i++) {
    sent.push(`m${i}`);
    await sendMessage(server, alice, roomId, `m${i}`);
  }
  const whole = await sync(server, bob, { since: before, filter: timelineFilter(MANY + 10) });
  expect(timelineBodies(whole, roomId)).toEqual(sent);
  expect(whole.rooms.join[roomId].timeline.limited).toBe(false);

  // A window larger than the limit: the latest events, limited, and prev_batch pages back to the rest.
  const latest = await sync(server, bob, { since: before, filter: timelineFilter(70) });
  expect(timelineBodies(latest, roomId)).toEqual(sent.slice(MANY - 70));
  expect(latest.rooms.join[roomId].timeline.limited).toBe(true);
  const page = await server.request("GET", `${api}/rooms/${enc(roomId)}/messages?dir=b&limit=100&from=${enc(latest.rooms.join[roomId].timeline.prev_batch)}`, { token: bob.accessToken });
  expect(page.status).toBe(200);
  const older = (page.body.chunk as any[]).filter((e) => e.type === "m.room.message").map((e) => e.content.body).reverse();
  expect(older).toEqual(sent.slice(0, MANY - 70));

  // An initial sync reaches back past the cache to the room's first events (state included).
  const initial = await sync(server, bob, { filter: timelineFilter(MANY + 10) });
  expect(timelineBodies(initial, roomId)).toEqual(sent);
  expect(timelineOf(initial, roomId)[0].type).toBe("m.room.create");
});

test("after a restart, tokens from before it and from after it both see every event", async () => {
  const roomId = await createRoom(server, alice, { preset: "public_chat" });
  await join(server, bob, roomId);
  const beforeRestart = (await sync(server, bob)).next_batch as string;
  await sendMessage(server, alice, roomId, "before restart");
  await server.restart();
  const afterRestart = (await sync(server, bob, { since: beforeRestart })).next_batch as string;
  await sendMessage(server, alice, roomId, "after restart 1");
  await sendMessage(server, alice, roomId, "after restart 2");

  // Only the events since the restart are cached: the older token needs storage too.
  expect(timelineBodies(await sync(server, bob, { since: beforeRestart }), roomId)).toEqual(["before restart", "after restart 1", "after restart 2"]);
  expect(timelineBodies(await sync(server, bob, { since: afterRestart }), roomId)).toEqual(["after restart 1", "after restart 2"]);
  expect(timelineBodies(await sync(server, bob), roomId)).toEqual(["before restart", "after restart 1", "after restart 2"]);
});
