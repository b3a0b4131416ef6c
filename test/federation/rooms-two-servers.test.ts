// Two Bobbin servers federating a room for real over loopback HTTP: A is the hub (the room was
// created there), B a participant. Joins go through make_join/send_join, B's sends become LPDUs
// that A completes and fans out, invites of B's users are countersigned by B.
import { jest } from "@jest/globals";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";

jest.setTimeout(60_000);

let a: TestServer;
let b: TestServer;
const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 } } };

beforeAll(async () => {
  const [portA, portB] = [await freePort(), await freePort()];
  a = await startTestServer({ serverName: `localhost:${portA}`, port: portA, federation });
  b = await startTestServer({ serverName: `localhost:${portB}`, port: portB, federation });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

/** Event IDs of a room's log on one server, in order. */
async function logOf(server: TestServer, roomId: string): Promise<string[]> {
  const events = await server.homeserver.storage.events.getRoomEvents(roomId, { direction: "forward", limit: 10_000 });
  return events.map((e) => e.eventId);
}

test("a user of B joins a public room on A; messages flow both ways and the logs agree", async () => {
  const alice = await a.register("alice");
  const bob = await b.register("bob");
  const created = await a.request("POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: { preset: "public_chat", name: "Hub room" } });
  expect(created.status).toBe(200);
  const roomId: string = created.body.room_id;

  const joined = await b.request("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.accessToken, body: {} });
  expect(joined.body).toEqual({ room_id: roomId });
  expect(joined.status).toBe(200);

  // B's client sends: an LPDU to A, whose completed PDU comes back (the echo) with the final ID.
  const fromBob = await b.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, { token: bob.accessToken, body: { msgtype: "m.text", body: "hello from B" } });
  expect(fromBob.status).toBe(200);
  const onA = await a.homeserver.storage.events.getEvent(fromBob.body.event_id);
  expect(onA?.pdu.content.body).toBe("hello from B");
  expect(onA?.pdu.hub_server).toBe(a.serverName);
  // Retrying the same transaction ID answers the same event, without a second event.
  const retried = await b.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, { token: bob.accessToken, body: { msgtype: "m.text", body: "hello from B" } });
  expect(retried.body.event_id).toBe(fromBob.body.event_id);

  const fromAlice = await a.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, { token: alice.accessToken, body: { msgtype: "m.text", body: "hello from A" } });
  expect(fromAlice.status).toBe(200);
  await waitFor("A's message on B", async () => (await b.homeserver.storage.events.getEvent(fromAlice.body.event_id)) ?? undefined);

  // B's client reads A's message.
  const messages = await b.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=5`, { token: bob.accessToken });
  expect(messages.status).toBe(200);
  expect(messages.body.chunk.map((e: { content: { body?: string } }) => e.content.body)).toContain("hello from A");

  // B's log is A's log from the join on, in the same order.
  const logA = await logOf(a, roomId);
  const logB = await logOf(b, roomId);
  const joinIndex = logA.indexOf(logB.find((id) => logA.indexOf(id) > 0 && !logA.slice(0, 6).includes(id)) as string);
  expect(logB.slice(-3)).toEqual(logA.slice(-3));
  expect(joinIndex).toBeGreaterThan(0);
});

test("A invites a user of B, who accepts; B's user invites nobody it may not", async () => {
  const carol = await a.register("carol");
  const dave = await b.register("dave");
  const created = await a.request("POST", "/_matrix/client/v3/createRoom", { token: carol.accessToken, body: { preset: "private_chat", invite: [dave.userId] } });
  expect(created.status).toBe(200);
  const roomId: string = created.body.room_id;

  // Dave's sync on B shows the invite with the room's stripped state.
  const invited = await waitFor("the invite on B", async () => {
    const sync = await b.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: dave.accessToken });
    return sync.body.rooms?.invite?.[roomId];
  });
  expect(invited.invite_state.events.some((e: { type: string }) => e.type === "m.room.member")).toBe(true);

  const joined = await b.request("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/join`, { token: dave.accessToken, body: {} });
  expect(joined.status).toBe(200);
  const members = await a.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`, { token: carol.accessToken });
  expect(Object.keys(members.body.joined).sort()).toEqual([carol.userId, dave.userId].sort());

  const sent = await b.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/x1`, { token: dave.accessToken, body: { msgtype: "m.text", body: "thanks" } });
  expect(sent.status).toBe(200);
  // Dave may not change the power levels: the hub refuses the LPDU and B's client hears why.
  const refused = await b.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`, { token: dave.accessToken, body: { users: { [dave.userId]: 100 } } });
  expect(refused.status).toBe(403);
  expect(refused.body.errcode).toBe("M_FORBIDDEN");
});

test("redactions cross servers: a participant's own, and the hub's moderator's", async () => {
  const erin = await a.register("erin");
  const frank = await b.register("frank");
  const roomId: string = (await a.request("POST", "/_matrix/client/v3/createRoom", { token: erin.accessToken, body: { preset: "public_chat" } })).body.room_id;
  const room = encodeURIComponent(roomId);
  expect((await b.request("POST", `/_matrix/client/v3/join/${room}`, { token: frank.accessToken, body: {} })).status).toBe(200);
  const first = await b.request("PUT", `/_matrix/client/v3/rooms/${room}/send/m.room.message/r1`, { token: frank.accessToken, body: { msgtype: "m.text", body: "oops" } });
  const second = await b.request("PUT", `/_matrix/client/v3/rooms/${room}/send/m.room.message/r2`, { token: frank.accessToken, body: { msgtype: "m.text", body: "spam" } });
  // Frank redacts his own message from B; Erin, the room's admin on A, redacts his other one.
  const own = await b.request("PUT", `/_matrix/client/v3/rooms/${room}/redact/${encodeURIComponent(first.body.event_id)}/x1`, { token: frank.accessToken, body: { reason: "typo" } });
  expect(own.status).toBe(200);
  const moderated = await a.request("PUT", `/_matrix/client/v3/rooms/${room}/redact/${encodeURIComponent(second.body.event_id)}/x1`, { token: erin.accessToken, body: {} });
  expect(moderated.status).toBe(200);
  await waitFor("the moderator's redaction on B", async () => ((await b.homeserver.storage.events.getEvent(moderated.body.event_id)) ? true : undefined));
  for (const server of [a, b]) {
    for (const target of [first.body.event_id, second.body.event_id]) {
      const stored = await server.homeserver.storage.events.getEvent(target);
      expect(stored?.redactedBy).not.toBeNull();
      expect(stored?.pdu.content).toEqual({});
    }
  }
  // Frank may not redact Erin's events: B refuses before anything is sent.
  const erinsMessage = await a.request("PUT", `/_matrix/client/v3/rooms/${room}/send/m.room.message/e1`, { token: erin.accessToken, body: { msgtype: "m.text", body: "mine" } });
  await waitFor("Erin's message on B", async () => ((await b.homeserver.storage.events.getEvent(erinsMessage.body.event_id)) ? true : undefined));
  const forbidden = await b.request("PUT", `/_matrix/client/v3/rooms/${room}/redact/${encodeURIComponent(erinsMessage.body.event_id)}/x2`, { token: frank.accessToken, body: {} });
  expect(forbidden.status).toBe(403);
});

test("a participant pages back past its join through the hub's history", async () => {
  const gina = await a.register("gina");
  const hank = await b.register("hank");
  const roomId: string = (await a.request("POST", "/_matrix/client/v3/createRoom", { token: gina.accessToken, body: { preset: "public_chat" } })).body.room_id;
  const room = encodeURIComponent(roomId);
  for (let i = 0; i < 5; i++) {
    await a.request("PUT", `/_matrix/client/v3/rooms/${room}/send/m.room.message/h${i}`, { token: gina.accessToken, body: { msgtype: "m.text", body: `before ${i}` } });
  }
  expect((await b.request("POST", `/_matrix/client/v3/join/${room}`, { token: hank.accessToken, body: {} })).status).toBe(200);

  const bodies: string[] = [];
  const types: string[] = [];
  let from: string | undefined;
  for (let page = 0; page < 10; page++) {
    const query = `dir=b&limit=4${from === undefined ? "" : `&from=${encodeURIComponent(from)}`}`;
    const response = await b.request("GET", `/_matrix/client/v3/rooms/${room}/messages?${query}`, { token: hank.accessToken });
    expect(response.status).toBe(200);
    for (const event of response.body.chunk) {
      types.push(event.type);
      if (typeof event.content.body === "string") bodies.push(event.content.body);
    }
    from = response.body.end;
    if (from === undefined) break;
  }
  // Hank's join first (newest), then the hub's history down to the room's creation.
  expect(types[0]).toBe("m.room.member");
  expect(bodies).toEqual(["before 4", "before 3", "before 2", "before 1", "before 0"]);
  expect(types.at(-1)).toBe("m.room.create");
  expect(types.filter((t) => t === "m.room.create")).toHaveLength(1);
});

test("a user of B knocks on a knockable room on A and is let in", async () => {
  const ivy = await a.register("ivy");
  const jack = await b.register("jack");
  const roomId: string = (
    await a.request("POST", "/_matrix/client/v3/createRoom", {
      token: ivy.accessToken,
      body: { name: "Knock knock", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] },
    })
  ).body.room_id;
  const room = encodeURIComponent(roomId);
  // A knockable room refuses a plain join.
  expect((await b.request("POST", `/_matrix/client/v3/join/${room}`, { token: jack.accessToken, body: {} })).status).toBe(403);
  const knocked = await b.request("POST", `/_matrix/client/v3/knock/${room}`, { token: jack.accessToken, body: { reason: "let me in" } });
  expect(knocked.status).toBe(200);
  const knock = await waitFor("the knock in Jack's sync", async () => {
    const sync = await b.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: jack.accessToken });
    return sync.body.rooms?.knock?.[roomId];
  });
  expect(knock.knock_state.events.some((e: { type: string; content: { name?: string } }) => e.type === "m.room.name" && e.content.name === "Knock knock")).toBe(true);
  const onA = await a.homeserver.storage.events.getCurrentStateEvent(roomId, "m.room.member", jack.userId);
  expect(onA?.pdu.content).toMatchObject({ membership: "knock", reason: "let me in" });
  // Ivy lets Jack in; he joins.
  expect((await a.request("POST", `/_matrix/client/v3/rooms/${room}/invite`, { token: ivy.accessToken, body: { user_id: jack.userId } })).status).toBe(200);
  expect((await b.request("POST", `/_matrix/client/v3/join/${room}`, { token: jack.accessToken, body: {} })).status).toBe(200);
  const member = await a.homeserver.storage.events.getCurrentStateEvent(roomId, "m.room.member", jack.userId);
  expect(member?.pdu.content.membership).toBe("join");
});

test("a user of B rejects an invite to a room on A (make_leave/send_leave)", async () => {
  const kate = await a.register("kate");
  const liam = await b.register("liam");
  const roomId: string = (await a.request("POST", "/_matrix/client/v3/createRoom", { token: kate.accessToken, body: { preset: "private_chat", invite: [liam.userId] } })).body.room_id;
  await waitFor("the invite on B", async () => ((await b.homeserver.storage.events.getCurrentStateEvent(roomId, "m.room.member", liam.userId)) ? true : undefined));
  const rejected = await b.request("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, { token: liam.accessToken, body: {} });
  expect(rejected.status).toBe(200);
  const onA = await a.homeserver.storage.events.getCurrentStateEvent(roomId, "m.room.member", liam.userId);
  expect(onA?.pdu.content.membership).toBe("leave");
  // The hub sends the leave to B too (the server of the user it is about), so B's sync drops the invite.
  await waitFor("the leave on B", async () => {
    const member = await b.homeserver.storage.events.getCurrentStateEvent(roomId, "m.room.member", liam.userId);
    return member?.pdu.content.membership === "leave" ? true : undefined;
  });
});

test("a user of B joins a room on A by its alias; a ban from A reaches B", async () => {
  const mona = await a.register("mona");
  const ned = await b.register("ned");
  const roomId: string = (await a.request("POST", "/_matrix/client/v3/createRoom", { token: mona.accessToken, body: { preset: "public_chat", room_alias_name: "plaza" } })).body.room_id;
  const alias = encodeURIComponent(`#plaza:${a.serverName}`);
  const joined = await b.request("POST", `/_matrix/client/v3/join/${alias}?server_name=${encodeURIComponent(a.serverName)}`, { token: ned.accessToken, body: {} });
  expect(joined.body).toEqual({ room_id: roomId });
  const banned = await a.request("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/ban`, { token: mona.accessToken, body: { user_id: ned.userId, reason: "spam" } });
  expect(banned.status).toBe(200);
  await waitFor("the ban on B", async () => {
    const member = await b.homeserver.storage.events.getCurrentStateEvent(roomId, "m.room.member", ned.userId);
    return member?.pdu.content.membership === "ban" ? true : undefined;
  });
  // Banned: B's attempt to send is refused (B knows it is no longer in the room).
  const refused = await b.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/b1`, { token: ned.accessToken, body: { msgtype: "m.text", body: "still here?" } });
  expect(refused.status).toBe(403);
});
