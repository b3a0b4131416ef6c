// The LM draft's "Event and State APIs" (event, state, state_ids, backfill). First over real HTTP
// between two Bobbin servers on loopback, B asking A with X-Matrix requests signed by B's key (A
// fetches that key from B). Then the visibility cases that need a remote server's users in the
// room, on a real SQLite database written directly, until remote joins exist.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LINEARIZED_02, getRoomVersion } from "../../src/core/room-versions.js";
import { computeEventId } from "../../src/core/hashes.js";
import type { JsonObject } from "../../src/core/json.js";
import { createEventReader, MAX_BACKFILL_LIMIT } from "../../src/federation/routes/event-reader.js";
import { signRequest } from "../../src/federation/transport/x-matrix.js";
import { openStorage } from "../../src/storage/index.js";
import type { Storage, StoredEvent } from "../../src/storage/ports.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { createEvent, memberEvent, messageEvent, pdu, room, RoomLog } from "../storage/builders.js";

const LM = `/unstable/${LINEARIZED_02}`;
const rules = getRoomVersion(LINEARIZED_02)!;

describe("event and state APIs between two servers", () => {
  let a: TestServer;
  let b: TestServer;
  let alice: { userId: string; accessToken: string };
  const federation = { allowInsecureHttp: true, trustedKeyServers: [] };

  beforeAll(async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    a = await startTestServer({ serverName: `localhost:${portA}`, port: portA, federation });
    b = await startTestServer({ serverName: `localhost:${portB}`, port: portB, federation });
    alice = await a.register("alice");
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  /** A GET on A's federation API, signed as B. */
  async function getAsB(path: string): Promise<{ status: number; body: any }> {
    const uri = `/_matrix/federation${path}`;
    const [authorization] = signRequest({ method: "GET", uri, origin: b.serverName, destination: a.serverName }, [b.signingKey]);
    const response = await fetch(a.baseUrl + uri, { headers: { authorization: authorization! } });
    // Parsed here rather than by response.json(), whose objects come from another realm than the
    // test's and so are not plain objects to canonical JSON.
    return { status: response.status, body: JSON.parse(await response.text()) };
  }

  async function createRoom(historyVisibility: string): Promise<string> {
    const created = await a.request("POST", "/_matrix/client/v3/createRoom", {
      token: alice.accessToken,
      body: { preset: "public_chat", initial_state: [{ type: "m.room.history_visibility", state_key: "", content: { history_visibility: historyVisibility } }] },
    });
    expect(created.status).toBe(200);
    return created.body.room_id;
  }

  let txn = 0;
  async function send(roomId: string, type: string, content: JsonObject, stateKey?: string): Promise<string> {
    const path =
      stateKey === undefined
        ? `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/${type}/t${++txn}`
        : `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${type}/${encodeURIComponent(stateKey)}`;
    const sent = await a.request("PUT", path, { token: alice.accessToken, body: content });
    expect(sent.status).toBe(200);
    return sent.body.event_id;
  }

  const storedEvents = (roomId: string): Promise<StoredEvent[]> => a.homeserver.storage.events.getRoomEvents(roomId, { direction: "forward", limit: 1000 });
  const q = encodeURIComponent;

  describe("a world_readable room on A", () => {
    let roomId: string;
    let messages: string[];
    let events: StoredEvent[];

    beforeAll(async () => {
      roomId = await createRoom("world_readable");
      messages = [];
      for (let i = 0; i < 5; i++) messages.push(await send(roomId, "m.room.message", { msgtype: "m.text", body: `hello ${i}` }));
      events = await storedEvents(roomId);
    });

    test("B reads an event on the LM, v2 and classic v1 paths, exactly as stored and hashed", async () => {
      const stored = events.find((event) => event.eventId === messages[2])!;
      const lm = await getAsB(`${LM}/event/${q(messages[2]!)}`);
      expect(lm.status).toBe(200);
      expect(lm.body).toEqual(stored.pdu);
      expect(lm.body.content.body).toBe("hello 2");
      // The served JSON is the event itself: its reference hash is the event ID asked for.
      expect(computeEventId(lm.body, rules)).toBe(messages[2]);
      expect((await getAsB(`/v2/event/${q(messages[2]!)}`)).body).toEqual(stored.pdu);

      const classic = await getAsB(`/v1/event/${q(messages[2]!)}`);
      expect(classic.status).toBe(200);
      expect(classic.body.origin).toBe(a.serverName);
      expect(typeof classic.body.origin_server_ts).toBe("number");
      expect(classic.body.pdus).toEqual([stored.pdu]);
    });

    test("state is the state before the event, with its auth chain closed under auth_events", async () => {
      const target = events.find((event) => event.eventId === messages[0])!;
      const expected = (await a.homeserver.storage.events.getStateBefore(roomId, target.roomSeq)).map((event) => event.eventId).sort();
      const state = await getAsB(`/v1/state/${q(roomId)}?event_id=${q(messages[0]!)}`);
      expect(state.status).toBe(200);
      const pduIds = state.body.pdus.map((event: JsonObject) => computeEventId(event, rules));
      expect([...pduIds].sort()).toEqual(expected);
      expect(state.body.pdus.map((event: JsonObject) => event.type)).toEqual(expect.arrayContaining(["m.room.create", "m.room.member", "m.room.power_levels", "m.room.history_visibility"]));
      const chainIds = new Set<string>(state.body.auth_chain.map((event: JsonObject) => computeEventId(event, rules)));
      const createId = events[0]!.eventId;
      expect(chainIds.has(createId)).toBe(true);
      for (const event of [...state.body.pdus, ...state.body.auth_chain]) {
        for (const authId of event.auth_events) expect(chainIds.has(authId)).toBe(true);
      }

      const ids = await getAsB(`/v1/state_ids/${q(roomId)}?event_id=${q(messages[0]!)}`);
      expect(ids.status).toBe(200);
      expect([...ids.body.pdu_ids].sort()).toEqual(expected);
      expect(new Set(ids.body.auth_chain_ids)).toEqual(chainIds);
    });

    test("state before a state event does not include that event's change", async () => {
      const topic = await send(roomId, "m.room.topic", { topic: "new" }, "");
      const state = await getAsB(`/v1/state_ids/${q(roomId)}?event_id=${q(topic)}`);
      expect(state.status).toBe(200);
      expect(state.body.pdu_ids).not.toContain(topic);
      const after = await getAsB(`/v1/state_ids/${q(roomId)}?event_id=${q(await send(roomId, "m.room.message", { msgtype: "m.text", body: "after topic" }))}`);
      expect(after.body.pdu_ids).toContain(topic);
      events = await storedEvents(roomId);
    });

    test("backfill returns v and the events before it, oldest first, at most limit", async () => {
      const three = await getAsB(`${LM}/backfill/${q(roomId)}?v=${q(messages[3]!)}&limit=3`);
      expect(three.status).toBe(200);
      expect(three.body.pdus.map((event: JsonObject) => computeEventId(event, rules))).toEqual([messages[1], messages[2], messages[3]]);
      // The room became world_readable with its history visibility event; what came before was
      // `shared` (the default), which B, without users in the room, may not read: 404 from there,
      // and redacted copies (same event IDs) when reached from a readable event.
      const fromCreate = await getAsB(`/v2/backfill/${q(roomId)}?v=${q(events[0]!.eventId)}&limit=10`);
      expect([fromCreate.status, fromCreate.body.errcode]).toEqual([404, "M_NOT_FOUND"]);
      const hvIndex = events.findIndex((event) => event.pdu.type === "m.room.history_visibility");
      const fromChange = await getAsB(`/v2/backfill/${q(roomId)}?v=${q(events[hvIndex]!.eventId)}&limit=10`);
      expect(fromChange.body.pdus.map((event: JsonObject) => computeEventId(event, rules))).toEqual(events.slice(0, hvIndex + 1).map((event) => event.eventId));
      expect(fromChange.body.pdus[hvIndex]).toEqual(events[hvIndex]!.pdu);
      const joinIndex = events.findIndex((event) => event.pdu.type === "m.room.member");
      expect(fromChange.body.pdus[joinIndex].content).toEqual({ membership: "join" });
      expect(events[joinIndex]!.pdu.content).not.toEqual({ membership: "join" });
      const all = await getAsB(`/v2/backfill/${q(roomId)}?v=${q(messages[4]!)}&limit=50`);
      const upTo = events.slice(0, events.findIndex((event) => event.eventId === messages[4]) + 1);
      expect(all.body.pdus.map((event: JsonObject) => computeEventId(event, rules))).toEqual(upTo.map((event) => event.eventId));
      expect(all.body.pdus.slice(hvIndex)).toEqual(upTo.slice(hvIndex).map((event) => event.pdu));
      const none = await getAsB(`/v2/backfill/${q(roomId)}?v=${q(messages[4]!)}&limit=0`);
      expect(none.body.pdus).toEqual([]);
    });

    test(`backfill caps limit at ${MAX_BACKFILL_LIMIT}`, async () => {
      let last = "";
      for (let i = 0; i < MAX_BACKFILL_LIMIT + 5; i++) last = await send(roomId, "m.room.message", { msgtype: "m.text", body: `bulk ${i}` });
      const page = await getAsB(`/v2/backfill/${q(roomId)}?v=${q(last)}&limit=100000`);
      expect(page.status).toBe(200);
      expect(page.body.pdus).toHaveLength(MAX_BACKFILL_LIMIT);
      expect(computeEventId(page.body.pdus[MAX_BACKFILL_LIMIT - 1], rules)).toBe(last);
    });

    test("unsigned requests are refused with 401", async () => {
      for (const path of [`${LM}/event/${q(messages[0]!)}`, `/v1/event/${q(messages[0]!)}`, `/v1/state/${q(roomId)}?event_id=${q(messages[0]!)}`, `/v1/state_ids/${q(roomId)}?event_id=${q(messages[0]!)}`, `/v2/backfill/${q(roomId)}?v=${q(messages[0]!)}&limit=5`]) {
        const unsigned = await a.request("GET", `/_matrix/federation${path}`);
        expect([path, unsigned.status, unsigned.body.errcode]).toEqual([path, 401, "M_FORBIDDEN"]);
      }
    });

    test("bad or missing query parameters are 400", async () => {
      const cases: Array<[string, string]> = [
        [`/v1/state/${q(roomId)}`, "M_MISSING_PARAM"],
        [`/v1/state_ids/${q(roomId)}`, "M_MISSING_PARAM"],
        [`/v2/backfill/${q(roomId)}?limit=5`, "M_MISSING_PARAM"],
        [`/v2/backfill/${q(roomId)}?v=${q(messages[0]!)}`, "M_MISSING_PARAM"],
        [`/v2/backfill/${q(roomId)}?v=${q(messages[0]!)}&limit=ten`, "M_INVALID_PARAM"],
        [`/v2/backfill/${q(roomId)}?v=${q(messages[0]!)}&limit=-1`, "M_INVALID_PARAM"],
        [`/v2/backfill/${q(roomId)}?v=${q(messages[0]!)}&v=${q(messages[1]!)}&limit=5`, "M_INVALID_PARAM"],
        [`/v1/state/${q(roomId)}?event_id=`, "M_INVALID_PARAM"],
      ];
      for (const [path, errcode] of cases) {
        const response = await getAsB(path);
        expect([path, response.status, response.body.errcode]).toEqual([path, 400, errcode]);
      }
    });

    test("unknown rooms and events, and events of another room, are 404", async () => {
      const other = await createRoom("world_readable");
      const otherEvent = await send(other, "m.room.message", { msgtype: "m.text", body: "elsewhere" });
      const unknownRoom = `!nope:${a.serverName}`;
      const paths = [
        `${LM}/event/${q("$doesnotexist")}`,
        `/v1/event/${q("$doesnotexist")}`,
        `/v1/state/${q(unknownRoom)}?event_id=${q(messages[0]!)}`,
        `/v1/state_ids/${q(roomId)}?event_id=${q("$doesnotexist")}`,
        `/v1/state/${q(roomId)}?event_id=${q(otherEvent)}`,
        `/v1/state_ids/${q(roomId)}?event_id=${q(otherEvent)}`,
        `/v2/backfill/${q(unknownRoom)}?v=${q(messages[0]!)}&limit=5`,
        `/v2/backfill/${q(roomId)}?v=${q(otherEvent)}&limit=5`,
      ];
      for (const path of paths) {
        const response = await getAsB(path);
        expect([path, response.status, response.body.errcode]).toEqual([path, 404, "M_NOT_FOUND"]);
      }
    });
  });

  test.each(["shared", "joined", "invited"])("history visibility %s hides a room without users of B from B (404)", async (visibility) => {
    const roomId = await createRoom(visibility);
    const message = await send(roomId, "m.room.message", { msgtype: "m.text", body: "private" });
    for (const path of [`${LM}/event/${q(message)}`, `/v1/event/${q(message)}`, `/v1/state/${q(roomId)}?event_id=${q(message)}`, `/v1/state_ids/${q(roomId)}?event_id=${q(message)}`, `${LM}/backfill/${q(roomId)}?v=${q(message)}&limit=5`]) {
      const response = await getAsB(path);
      expect([path, response.status, response.body.errcode]).toEqual([path, 404, "M_NOT_FOUND"]);
    }
  });

  test("after a room turns world_readable, B reads the new events and gets the earlier ones redacted", async () => {
    const roomId = await createRoom("shared");
    const before = await send(roomId, "m.room.message", { msgtype: "m.text", body: "secret" });
    const change = await send(roomId, "m.room.history_visibility", { history_visibility: "world_readable" }, "");
    const after = await send(roomId, "m.room.message", { msgtype: "m.text", body: "public" });
    expect((await getAsB(`${LM}/event/${q(before)}`)).status).toBe(404);
    // The change itself is judged by the more permissive of the old and new setting.
    expect((await getAsB(`${LM}/event/${q(change)}`)).status).toBe(200);
    const page = await getAsB(`${LM}/backfill/${q(roomId)}?v=${q(after)}&limit=3`);
    expect(page.status).toBe(200);
    const [secret, changeEvent, open] = page.body.pdus;
    expect(secret.type).toBe("m.room.message");
    expect(secret.content).toEqual({});
    // Redacted, yet still the same event: its reference hash is unchanged.
    expect(computeEventId(secret, rules)).toBe(before);
    expect(changeEvent.content).toEqual({ history_visibility: "world_readable" });
    expect(open.content.body).toBe("public");
  });

  test("state of a room whose hub is another server is 400 M_WRONG_SERVER", async () => {
    const roomId = `!remote:elsewhere.example`;
    await a.homeserver.storage.events.createRoom({ roomId, roomVersion: LINEARIZED_02, creator: "@someone:elsewhere.example", hubServer: "elsewhere.example", isPublic: false, createdTs: 0 });
    for (const path of [`/v1/state/${q(roomId)}?event_id=${q("$whatever")}`, `/v1/state_ids/${q(roomId)}?event_id=${q("$whatever")}`]) {
      const response = await getAsB(path);
      expect([path, response.status, response.body.errcode]).toEqual([path, 400, "M_WRONG_SERVER"]);
    }
  });
});

// The cases where the requesting server has (had) users in the room. Events are written to a real
// SQLite database the way the room writer stores them; the reader under test is the one the routes use.
describe("visibility for a server with users in the room (stored history)", () => {
  const hub = "example.org";
  const remote = "remote.test";
  const bob = `@bob:${remote}`;
  let dataDir: string;
  let storage: Storage;
  let lastPos = 0;
  const reader = () => createEventReader({ storage, serverName: hub });

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "bobbin-visibility-"));
    storage = await openStorage({ engine: "sqlite", path: join(dataDir, "db.sqlite") });
  });
  afterAll(async () => {
    await storage?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const visibilityEvent = (roomId: string, value: string) => pdu(roomId, "m.room.history_visibility", { history_visibility: value }, { stateKey: "" });

  /** A room on `hub` whose log is `build(roomId)`; returns the stored event IDs in order. */
  async function roomWith(tag: string, build: (roomId: string) => Parameters<RoomLog["append"]>[1]): Promise<{ roomId: string; ids: string[]; log: RoomLog }> {
    const roomId = `!${tag}:${hub}`;
    await storage.events.createRoom(room(roomId, { roomVersion: LINEARIZED_02, hubServer: hub }));
    const log = new RoomLog(roomId, () => ++lastPos);
    const appended = await log.append(storage, build(roomId));
    return { roomId, ids: appended.map((event) => event.eventId), log };
  }

  /** "full", "redacted" or "none" for `eventId` as `server` is served it by GET /event. */
  async function accessOf(server: string, eventId: string): Promise<string> {
    try {
      const served = await reader().event(server, eventId);
      const stored = (await storage.events.getEvent(eventId))!;
      return JSON.stringify(served) === JSON.stringify(stored.pdu) ? "full" : "redacted";
    } catch (error) {
      expect((error as { errcode?: string }).errcode).toBe("M_NOT_FOUND");
      return "none";
    }
  }

  test("shared: everything up to the server's last join; after its users left, redacted; strangers get 404", async () => {
    const { ids } = await roomWith("shared", (r) => [
      createEvent(r),
      memberEvent(r, "@alice:example.org", "join"),
      visibilityEvent(r, "shared"),
      messageEvent(r, "before bob"), // 3
      memberEvent(r, bob, "join"), // 4
      messageEvent(r, "with bob"), // 5
      memberEvent(r, bob, "leave"), // 6
      messageEvent(r, "after bob"), // 7
    ]);
    expect([await accessOf(remote, ids[3]!), await accessOf(remote, ids[5]!), await accessOf(remote, ids[7]!)]).toEqual(["full", "full", "redacted"]);
    expect(await accessOf("stranger.test", ids[3]!)).toBe("none");
    expect((await reader().backfill(remote, `!shared:${hub}`, ids[7]!, 10)).map((event) => event.content.body)).toEqual([undefined, undefined, undefined, "before bob", undefined, "with bob", undefined, undefined]);
  });

  test("joined: only while one of the server's users is joined", async () => {
    const { ids } = await roomWith("joined", (r) => [
      createEvent(r),
      memberEvent(r, "@alice:example.org", "join"),
      visibilityEvent(r, "joined"),
      messageEvent(r, "before bob"), // 3
      memberEvent(r, bob, "join"), // 4
      messageEvent(r, "with bob"), // 5
      memberEvent(r, bob, "leave"), // 6
      messageEvent(r, "after bob"), // 7
    ]);
    expect([await accessOf(remote, ids[3]!), await accessOf(remote, ids[4]!), await accessOf(remote, ids[5]!), await accessOf(remote, ids[7]!)]).toEqual(["redacted", "full", "full", "redacted"]);
    // The redacted copy keeps what the draft's redaction rules keep, and nothing else.
    const redacted = await reader().event(remote, ids[3]!);
    expect(redacted.content).toEqual({});
    expect(redacted.hashes).toEqual({ sha256: "placeholder" });
  });

  test("invited: from the server's invite on", async () => {
    const { ids } = await roomWith("invited", (r) => [
      createEvent(r),
      memberEvent(r, "@alice:example.org", "join"),
      visibilityEvent(r, "invited"),
      messageEvent(r, "before invite"), // 3
      pdu(r, "m.room.member", { membership: "invite" }, { stateKey: bob }), // 4
      messageEvent(r, "while invited"), // 5
    ]);
    expect([await accessOf(remote, ids[3]!), await accessOf(remote, ids[5]!)]).toEqual(["redacted", "full"]);
  });

  test("m.mls.commit is readable by a server with a user joined now, whatever the history visibility", async () => {
    const { ids } = await roomWith("mls", (r) => [
      createEvent(r),
      memberEvent(r, "@alice:example.org", "join"),
      visibilityEvent(r, "joined"),
      pdu(r, "m.mls.commit", { commit: "AAAA" }), // 3
      messageEvent(r, "before bob"), // 4
      memberEvent(r, bob, "join"), // 5
    ]);
    expect([await accessOf(remote, ids[3]!), await accessOf(remote, ids[4]!)]).toEqual(["full", "redacted"]);
  });

  test("soft-failed events are never served, and backfill skips them", async () => {
    const { roomId, ids, log } = await roomWith("soft", (r) => [createEvent(r), memberEvent(r, "@alice:example.org", "join"), visibilityEvent(r, "world_readable"), messageEvent(r, "one")]);
    const [soft] = await log.append(storage, [messageEvent(roomId, "soft-failed")], { softFailed: true });
    const [last] = await log.append(storage, [messageEvent(roomId, "two")]);
    expect(await accessOf(remote, soft!.eventId)).toBe("none");
    expect(await accessOf(remote, ids[3]!)).toBe("full");
    const page = await reader().backfill(remote, roomId, last!.eventId, 3);
    expect(page.map((event) => event.content.body)).toEqual([undefined, "one", "two"]);
    await expect(reader().backfill(remote, roomId, soft!.eventId, 3)).rejects.toMatchObject({ errcode: "M_NOT_FOUND" });
  });

  test("state and its auth chain are served redacted where the server may not read them", async () => {
    const { roomId, ids } = await roomWith("state", (r) => [
      createEvent(r),
      memberEvent(r, "@alice:example.org", "join"),
      visibilityEvent(r, "joined"),
      pdu(r, "m.room.topic", { topic: "hidden" }, { stateKey: "" }), // 3
      memberEvent(r, bob, "join"), // 4
      messageEvent(r, "with bob"), // 5
    ]);
    const { pdus } = await reader().stateAt(remote, roomId, ids[5]!);
    const topic = pdus.find((event) => event.type === "m.room.topic")!;
    expect(topic.content).toEqual({});
    expect(pdus.find((event) => event.type === "m.room.member" && event.state_key === bob)!.content).toEqual({ membership: "join" });
    const { pduIds } = await reader().stateIdsAt(remote, roomId, ids[5]!);
    expect(pduIds.sort()).toEqual([ids[0], ids[1], ids[2], ids[3], ids[4]].sort());
  });
});
