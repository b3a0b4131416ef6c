// The rooms endpoints over real HTTP: creation, sending, state, history, membership, redaction.
import { startTestServer, type TestServer } from "../../support/test-server.js";
import { createRoom, enc, invite, join, sendMessage, type User } from "./support.js";

let server: TestServer;
let alice: User;
let bob: User;
let carol: User;
const api = "/_matrix/client/v3";

beforeAll(async () => {
  server = await startTestServer();
  alice = await server.register("alice");
  bob = await server.register("bob");
  carol = await server.register("carol");
});
afterAll(async () => {
  await server.close();
});

async function stateOf(user: User, roomId: string): Promise<any[]> {
  const res = await server.request("GET", `${api}/rooms/${enc(roomId)}/state`, { token: user.accessToken });
  expect(res.status).toBe(200);
  return res.body;
}

function content(state: any[], type: string, stateKey = ""): any {
  return state.find((e) => e.type === type && e.state_key === stateKey)?.content;
}

describe("createRoom", () => {
  test("private_chat is the default: invite-only, shared history, guests can join", async () => {
    const roomId = await createRoom(server, alice);
    const state = await stateOf(alice, roomId);
    expect(content(state, "m.room.create").room_version).toBe("org.matrix.i-d.ralston-mimi-linearized-matrix.02");
    expect(content(state, "m.room.join_rules")).toEqual({ join_rule: "invite" });
    expect(content(state, "m.room.history_visibility")).toEqual({ history_visibility: "shared" });
    expect(content(state, "m.room.guest_access")).toEqual({ guest_access: "can_join" });
    expect(content(state, "m.room.power_levels").users).toEqual({ [alice.userId]: 100 });
    expect(content(state, "m.room.member", alice.userId).membership).toBe("join");
  });

  test("public_chat with name, topic, alias, initial_state and overrides, in the spec's order", async () => {
    const res = await server.request("POST", `${api}/createRoom`, {
      token: alice.accessToken,
      body: {
        preset: "public_chat",
        name: "The Pub",
        topic: "happy hour",
        room_alias_name: "pub",
        visibility: "public",
        creation_content: { "m.federate": false, room_version: "ignored" },
        initial_state: [{ type: "m.room.name", content: { name: "overridden" } }, { type: "org.example.custom", state_key: "k", content: { a: 1 } }],
        power_level_content_override: { events_default: 10 },
      },
    });
    expect(res.status).toBe(200);
    const roomId = res.body.room_id;
    const state = await stateOf(alice, roomId);
    expect(content(state, "m.room.join_rules")).toEqual({ join_rule: "public" });
    expect(content(state, "m.room.guest_access")).toEqual({ guest_access: "forbidden" });
    expect(content(state, "m.room.name")).toEqual({ name: "The Pub" });
    expect(content(state, "m.room.topic").topic).toBe("happy hour");
    expect(content(state, "m.room.canonical_alias")).toEqual({ alias: "#pub:localhost" });
    expect(content(state, "org.example.custom", "k")).toEqual({ a: 1 });
    expect(content(state, "m.room.create")["m.federate"]).toBe(false);
    expect(content(state, "m.room.power_levels").events_default).toBe(10);

    // Order: create, creator join, power levels, canonical alias, preset, initial_state, name, topic.
    const messages = await server.request("GET", `${api}/rooms/${enc(roomId)}/messages?dir=f&limit=50`, { token: alice.accessToken });
    expect(messages.body.chunk.map((e: any) => e.type)).toEqual([
      "m.room.create",
      "m.room.member",
      "m.room.power_levels",
      "m.room.canonical_alias",
      "m.room.join_rules",
      "m.room.history_visibility",
      "m.room.guest_access",
      "org.example.custom",
      "m.room.name",
      "m.room.topic",
    ]);

    const aliases = await server.request("GET", `${api}/rooms/${enc(roomId)}/aliases`, { token: alice.accessToken });
    expect(aliases.body.aliases).toEqual(["#pub:localhost"]);
    // Not to a non-member; a server admin reads them, also on the pre-v1.1 `r0` path admin tools call.
    expect((await server.request("GET", `${api}/rooms/${enc(roomId)}/aliases`, { token: carol.accessToken })).status).toBe(403);
    await server.homeserver.storage.accounts.updateUser(carol.userId, { isAdmin: true });
    const asAdmin = await server.request("GET", `/_matrix/client/r0/rooms/${enc(roomId)}/aliases`, { token: carol.accessToken });
    expect(asAdmin.body).toEqual({ aliases: ["#pub:localhost"] });
    await server.homeserver.storage.accounts.updateUser(carol.userId, { isAdmin: false });
    // The alias is taken now.
    const again = await server.request("POST", `${api}/createRoom`, { token: alice.accessToken, body: { room_alias_name: "pub" } });
    expect(again.status).toBe(400);
    expect(again.body.errcode).toBe("M_ROOM_IN_USE");
    // Anyone can join a public room by alias.
    const joined = await server.request("POST", `${api}/join/${enc("#pub:localhost")}`, { token: carol.accessToken, body: {} });
    expect(joined.body).toEqual({ room_id: roomId });
  });

  test("trusted_private_chat invites with the creator's power level; is_direct marks the invites", async () => {
    const roomId = await createRoom(server, alice, { preset: "trusted_private_chat", invite: [bob.userId], is_direct: true });
    const state = await stateOf(alice, roomId);
    expect(content(state, "m.room.power_levels").users[bob.userId]).toBe(100);
    expect(content(state, "m.room.member", bob.userId)).toMatchObject({ membership: "invite", is_direct: true });
  });

  test("unknown room versions and invalid initial state are refused", async () => {
    const unknown = await server.request("POST", `${api}/createRoom`, { token: alice.accessToken, body: { room_version: "999" } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.errcode).toBe("M_UNSUPPORTED_ROOM_VERSION");
    const invalid = await server.request("POST", `${api}/createRoom`, {
      token: alice.accessToken,
      body: { power_level_content_override: { users: { [alice.userId]: 0 } }, name: "needs 50" },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.errcode).toBe("M_INVALID_ROOM_STATE");
  });
});

describe("sending", () => {
  test("send is idempotent per transaction ID", async () => {
    const roomId = await createRoom(server, alice);
    const path = `${api}/rooms/${enc(roomId)}/send/m.room.message/same-txn`;
    const first = await server.request("PUT", path, { token: alice.accessToken, body: { msgtype: "m.text", body: "once" } });
    const second = await server.request("PUT", path, { token: alice.accessToken, body: { msgtype: "m.text", body: "once" } });
    expect(first.status).toBe(200);
    expect(second.body.event_id).toBe(first.body.event_id);
    const messages = await server.request("GET", `${api}/rooms/${enc(roomId)}/messages?dir=b&limit=5`, { token: alice.accessToken });
    expect(messages.body.chunk.filter((e: any) => e.type === "m.room.message")).toHaveLength(1);
    const event = await server.request("GET", `${api}/rooms/${enc(roomId)}/event/${enc(first.body.event_id)}`, { token: alice.accessToken });
    expect(event.body).toMatchObject({ type: "m.room.message", content: { body: "once" }, sender: alice.userId });
  });

  test("non-members cannot send; oversized events are refused", async () => {
    const roomId = await createRoom(server, alice);
    const forbidden = await server.request("PUT", `${api}/rooms/${enc(roomId)}/send/m.room.message/x1`, { token: bob.accessToken, body: { body: "hi" } });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.errcode).toBe("M_FORBIDDEN");
    const huge = await server.request("PUT", `${api}/rooms/${enc(roomId)}/send/m.room.message/x2`, { token: alice.accessToken, body: { body: "x".repeat(70_000) } });
    expect(huge.status).toBe(413);
    expect(huge.body.errcode).toBe("M_TOO_LARGE");
    const unknown = await server.request("PUT", `${api}/rooms/${enc("!nope:localhost")}/send/m.room.message/x3`, { token: alice.accessToken, body: {} });
    expect(unknown.status).toBe(404);
  });

  test("state GET/PUT with and without a trailing slash for the empty state key", async () => {
    const roomId = await createRoom(server, alice);
    const put = await server.request("PUT", `${api}/rooms/${enc(roomId)}/state/m.room.name/`, { token: alice.accessToken, body: { name: "Slash" } });
    expect(put.status).toBe(200);
    expect(put.body.event_id).toMatch(/^\$/);
    expect((await server.request("GET", `${api}/rooms/${enc(roomId)}/state/m.room.name`, { token: alice.accessToken })).body).toEqual({ name: "Slash" });
    await server.request("PUT", `${api}/rooms/${enc(roomId)}/state/m.room.topic`, { token: alice.accessToken, body: { topic: "No slash" } });
    expect((await server.request("GET", `${api}/rooms/${enc(roomId)}/state/m.room.topic/`, { token: alice.accessToken })).body).toEqual({ topic: "No slash" });
    const keyed = await server.request("PUT", `${api}/rooms/${enc(roomId)}/state/org.example/some-key`, { token: alice.accessToken, body: { v: 1 } });
    expect(keyed.status).toBe(200);
    expect((await server.request("GET", `${api}/rooms/${enc(roomId)}/state/org.example/some-key`, { token: alice.accessToken })).body).toEqual({ v: 1 });
    const missing = await server.request("GET", `${api}/rooms/${enc(roomId)}/state/org.example/other`, { token: alice.accessToken });
    expect(missing.status).toBe(404);
    const outsider = await server.request("GET", `${api}/rooms/${enc(roomId)}/state/m.room.name`, { token: carol.accessToken });
    expect(outsider.status).toBe(403);
  });
});

describe("messages", () => {
  test("paginates backward and forward with tokens and a filter", async () => {
    const roomId = await createRoom(server, alice, { preset: "public_chat" });
    await join(server, bob, roomId);
    for (let i = 0; i < 7; i++) await sendMessage(server, i % 2 === 0 ? alice : bob, roomId, `m${i}`);
    const path = `${api}/rooms/${enc(roomId)}/messages`;
    const filter = enc(JSON.stringify({ types: ["m.room.message"] }));

    const page1 = await server.request("GET", `${path}?dir=b&limit=3&filter=${filter}`, { token: alice.accessToken });
    expect(page1.body.chunk.map((e: any) => e.content.body)).toEqual(["m6", "m5", "m4"]);
    const page2 = await server.request("GET", `${path}?dir=b&limit=3&filter=${filter}&from=${page1.body.end}`, { token: alice.accessToken });
    expect(page2.body.chunk.map((e: any) => e.content.body)).toEqual(["m3", "m2", "m1"]);
    const page3 = await server.request("GET", `${path}?dir=b&limit=3&filter=${filter}&from=${page2.body.end}`, { token: alice.accessToken });
    expect(page3.body.chunk.map((e: any) => e.content.body)).toEqual(["m0"]);
    expect(page3.body.end).toBeUndefined();

    // Forward from the token where page 2 ended.
    const forward = await server.request("GET", `${path}?dir=f&limit=2&filter=${filter}&from=${page2.body.end}`, { token: alice.accessToken });
    expect(forward.body.chunk.map((e: any) => e.content.body)).toEqual(["m1", "m2"]);

    const bobOnly = enc(JSON.stringify({ senders: [bob.userId], types: ["m.room.message"] }));
    const fromBob = await server.request("GET", `${path}?dir=b&limit=10&filter=${bobOnly}`, { token: alice.accessToken });
    expect(fromBob.body.chunk.map((e: any) => e.content.body)).toEqual(["m5", "m3", "m1"]);

    const lazy = enc(JSON.stringify({ types: ["m.room.message"], lazy_load_members: true }));
    const withMembers = await server.request("GET", `${path}?dir=b&limit=1&filter=${lazy}`, { token: alice.accessToken });
    expect(withMembers.body.state.map((e: any) => e.state_key)).toEqual([alice.userId]);

    const badDir = await server.request("GET", `${path}?dir=x`, { token: alice.accessToken });
    expect(badDir.status).toBe(400);
  });

  test("history visibility joined hides earlier messages from a new member", async () => {
    const roomId = await createRoom(server, alice, { preset: "public_chat", initial_state: [{ type: "m.room.history_visibility", content: { history_visibility: "joined" } }] });
    const secret = await sendMessage(server, alice, roomId, "before bob");
    await join(server, bob, roomId);
    await sendMessage(server, alice, roomId, "after bob");
    const messages = await server.request("GET", `${api}/rooms/${enc(roomId)}/messages?dir=b&limit=50`, { token: bob.accessToken });
    const bodies = messages.body.chunk.filter((e: any) => e.type === "m.room.message").map((e: any) => e.content.body);
    expect(bodies).toEqual(["after bob"]);
    const hidden = await server.request("GET", `${api}/rooms/${enc(roomId)}/event/${enc(secret)}`, { token: bob.accessToken });
    expect(hidden.status).toBe(404);
    const shown = await server.request("GET", `${api}/rooms/${enc(roomId)}/event/${enc(secret)}`, { token: alice.accessToken });
    expect(shown.status).toBe(200);
  });

  test("context returns events around an event", async () => {
    const roomId = await createRoom(server, alice);
    await sendMessage(server, alice, roomId, "c1");
    const middle = await sendMessage(server, alice, roomId, "c2");
    await sendMessage(server, alice, roomId, "c3");
    const res = await server.request("GET", `${api}/rooms/${enc(roomId)}/context/${enc(middle)}?limit=2`, { token: alice.accessToken });
    expect(res.status).toBe(200);
    expect(res.body.event.content.body).toBe("c2");
    expect(res.body.events_before.map((e: any) => e.content.body)).toEqual(["c1"]);
    expect(res.body.events_after.map((e: any) => e.content.body)).toEqual(["c3"]);
  });
});

describe("membership", () => {
  test("invite, join, members, joined_members, joined_rooms, leave", async () => {
    const roomId = await createRoom(server, alice);
    const refused = await server.request("POST", `${api}/rooms/${enc(roomId)}/join`, { token: bob.accessToken, body: {} });
    expect(refused.status).toBe(403);
    expect(refused.body.errcode).toBe("M_FORBIDDEN");
    await invite(server, alice, roomId, bob.userId);
    const invited = await server.request("GET", `${api}/rooms/${enc(roomId)}/members?membership=invite`, { token: alice.accessToken });
    expect(invited.body.chunk.map((e: any) => e.state_key)).toEqual([bob.userId]);
    await join(server, bob, roomId);
    const joinedMembers = await server.request("GET", `${api}/rooms/${enc(roomId)}/joined_members`, { token: bob.accessToken });
    expect(Object.keys(joinedMembers.body.joined).sort()).toEqual([alice.userId, bob.userId].sort());
    expect(joinedMembers.body.joined[bob.userId]).toEqual({ display_name: "bob" });
    const rooms = await server.request("GET", `${api}/joined_rooms`, { token: bob.accessToken });
    expect(rooms.body.joined_rooms).toContain(roomId);
    const notLeave = await server.request("GET", `${api}/rooms/${enc(roomId)}/members?not_membership=leave`, { token: bob.accessToken });
    expect(notLeave.body.chunk).toHaveLength(2);

    expect((await server.request("POST", `${api}/rooms/${enc(roomId)}/leave`, { token: bob.accessToken, body: {} })).status).toBe(200);
    const after = await server.request("GET", `${api}/joined_rooms`, { token: bob.accessToken });
    expect(after.body.joined_rooms).not.toContain(roomId);
    const forgetJoined = await server.request("POST", `${api}/rooms/${enc(roomId)}/forget`, { token: alice.accessToken, body: {} });
    expect(forgetJoined.status).toBe(400);
    expect((await server.request("POST", `${api}/rooms/${enc(roomId)}/forget`, { token: bob.accessToken, body: {} })).status).toBe(200);
    // Former members read the state as it was when they left.
    const jm = await server.request("GET", `${api}/rooms/${enc(roomId)}/joined_members`, { token: bob.accessToken });
    expect(jm.status).toBe(403);
  });

  test("kick, ban and unban need power; with it they work", async () => {
    const roomId = await createRoom(server, alice, { preset: "public_chat" });
    await join(server, bob, roomId);
    await join(server, carol, roomId);
    const kickByBob = await server.request("POST", `${api}/rooms/${enc(roomId)}/kick`, { token: bob.accessToken, body: { user_id: carol.userId } });
    expect(kickByBob.status).toBe(403);
    expect(kickByBob.body.errcode).toBe("M_FORBIDDEN");
    const banByBob = await server.request("POST", `${api}/rooms/${enc(roomId)}/ban`, { token: bob.accessToken, body: { user_id: carol.userId } });
    expect(banByBob.status).toBe(403);

    expect((await server.request("POST", `${api}/rooms/${enc(roomId)}/kick`, { token: alice.accessToken, body: { user_id: carol.userId, reason: "out" } })).status).toBe(200);
    const kicked = await server.request("GET", `${api}/rooms/${enc(roomId)}/state/m.room.member/${enc(carol.userId)}`, { token: alice.accessToken });
    expect(kicked.body).toEqual({ membership: "leave", reason: "out" });

    expect((await server.request("POST", `${api}/rooms/${enc(roomId)}/ban`, { token: alice.accessToken, body: { user_id: carol.userId } })).status).toBe(200);
    const rejoin = await server.request("POST", `${api}/join/${enc(roomId)}`, { token: carol.accessToken, body: {} });
    expect(rejoin.status).toBe(403);
    const unbanByBob = await server.request("POST", `${api}/rooms/${enc(roomId)}/unban`, { token: bob.accessToken, body: { user_id: carol.userId } });
    expect(unbanByBob.status).toBe(403);
    expect((await server.request("POST", `${api}/rooms/${enc(roomId)}/unban`, { token: alice.accessToken, body: { user_id: carol.userId } })).status).toBe(200);
    await join(server, carol, roomId);
  });

  test("knock on a knock room, then the knocker is invited and joins", async () => {
    const roomId = await createRoom(server, alice, { initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }] });
    const knock = await server.request("POST", `${api}/knock/${enc(roomId)}`, { token: bob.accessToken, body: { reason: "let me in" } });
    expect(knock.status).toBe(200);
    expect(knock.body).toEqual({ room_id: roomId });
    const member = await server.request("GET", `${api}/rooms/${enc(roomId)}/members?membership=knock`, { token: alice.accessToken });
    expect(member.body.chunk[0].content).toMatchObject({ membership: "knock", reason: "let me in" });
    await invite(server, alice, roomId, bob.userId);
    await join(server, bob, roomId);

    const closed = await createRoom(server, alice);
    const refused = await server.request("POST", `${api}/knock/${enc(closed)}`, { token: carol.accessToken, body: {} });
    expect(refused.status).toBe(403);
  });
});

describe("redaction", () => {
  test("the sender or a moderator redacts; content goes, the event stays", async () => {
    const roomId = await createRoom(server, alice, { preset: "public_chat" });
    await join(server, bob, roomId);
    const mine = await sendMessage(server, bob, roomId, "oops");
    const others = await sendMessage(server, alice, roomId, "alice's");

    const denied = await server.request("PUT", `${api}/rooms/${enc(roomId)}/redact/${enc(others)}/r1`, { token: bob.accessToken, body: {} });
    expect(denied.status).toBe(403);
    expect(denied.body.errcode).toBe("M_FORBIDDEN");

    const own = await server.request("PUT", `${api}/rooms/${enc(roomId)}/redact/${enc(mine)}/r2`, { token: bob.accessToken, body: { reason: "typo" } });
    expect(own.status).toBe(200);
    const again = await server.request("PUT", `${api}/rooms/${enc(roomId)}/redact/${enc(mine)}/r2`, { token: bob.accessToken, body: { reason: "typo" } });
    expect(again.body.event_id).toBe(own.body.event_id);
    const byModerator = await server.request("PUT", `${api}/rooms/${enc(roomId)}/redact/${enc(others)}/r3`, { token: alice.accessToken, body: {} });
    expect(byModerator.status).toBe(200);

    const redacted = await server.request("GET", `${api}/rooms/${enc(roomId)}/event/${enc(mine)}`, { token: alice.accessToken });
    expect(redacted.status).toBe(200);
    expect(redacted.body.content).toEqual({});
    expect(redacted.body.unsigned.redacted_because).toMatchObject({ type: "m.room.redaction", content: { redacts: mine, reason: "typo" } });
  });
});
