// The admin API (/_synapse/admin, issue 7) over real HTTP against a real server and SQLite, as an
// admin's tool uses it: who may call it, users (list, query, create/modify, deactivate, the admin
// flag, devices, joined rooms), rooms (list, details, members, state), and the audit log.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { startHomeserver } from "../../src/app/homeserver.js";
import { BOBBIN_VERSION } from "../../src/app/version.js";
import { sqliteHomeserverSettings, startTestServer, type TestServer } from "../support/test-server.js";

const ADMIN = "/_synapse/admin";
const C = "/_matrix/client/v3";
const PASSWORD = "correct horse battery staple";

type Session = { userId: string; accessToken: string; deviceId: string };

let server: TestServer;
let admin: Session;

/** Registers `localpart` through the client API and makes it a server admin through storage. */
async function registerAdmin(target: TestServer, localpart: string): Promise<Session> {
  const session = await target.register(localpart);
  await target.homeserver.storage.accounts.updateUser(session.userId, { isAdmin: true });
  return session;
}

const as = (session: Session) => ({
  get: (path: string) => server.request("GET", ADMIN + path, { token: session.accessToken }),
  put: (path: string, body: unknown) => server.request("PUT", ADMIN + path, { token: session.accessToken, body }),
  post: (path: string, body?: unknown) => server.request("POST", ADMIN + path, { token: session.accessToken, ...(body === undefined ? {} : { body }) }),
});

async function login(user: string, password: string) {
  return server.request("POST", `${C}/login`, { body: { type: "m.login.password", identifier: { type: "m.id.user", user }, password } });
}

async function createRoom(session: Session, body: unknown): Promise<string> {
  const created = await server.request("POST", `${C}/createRoom`, { token: session.accessToken, body });
  expect(created.status).toBe(200);
  return created.body.room_id as string;
}

async function joinRoom(session: Session, roomId: string): Promise<void> {
  const joined = await server.request("POST", `${C}/join/${encodeURIComponent(roomId)}`, { token: session.accessToken, body: {} });
  expect(joined.status).toBe(200);
}

beforeAll(async () => {
  server = await startTestServer();
  admin = await registerAdmin(server, "root");
});
afterAll(async () => {
  await server?.close();
});

describe("who may call the admin API", () => {
  it("answers server_version with Bobbin's version", async () => {
    const version = await as(admin).get("/v1/server_version");
    expect(version).toEqual({ status: 200, body: { server_version: BOBBIN_VERSION } });
  });

  it("refuses a request without a token with 401, and an unknown token with 401", async () => {
    const missing = await server.request("GET", `${ADMIN}/v2/users`);
    expect(missing.status).toBe(401);
    expect(missing.body.errcode).toBe("M_MISSING_TOKEN");
    const unknown = await server.request("GET", `${ADMIN}/v2/users`, { token: "syt_not_a_token" });
    expect(unknown.status).toBe(401);
    expect(unknown.body.errcode).toBe("M_UNKNOWN_TOKEN");
  });

  it("refuses a user who is not a server admin with 403 M_FORBIDDEN, on reads and on changes", async () => {
    const mallory = await server.register("mallory");
    for (const attempt of [
      as(mallory).get("/v2/users"),
      as(mallory).get(`/v2/users/${encodeURIComponent(admin.userId)}`),
      as(mallory).put(`/v1/users/${encodeURIComponent(mallory.userId)}/admin`, { admin: true }),
      as(mallory).post(`/v1/deactivate/${encodeURIComponent(admin.userId)}`, {}),
      as(mallory).get("/v1/rooms"),
    ]) {
      const refused = await attempt;
      expect(refused.status).toBe(403);
      expect(refused.body.errcode).toBe("M_FORBIDDEN");
    }
    // Nothing changed: mallory is still no admin and root still active.
    expect((await as(admin).get(`/v1/users/${encodeURIComponent(mallory.userId)}/admin`)).body).toEqual({ admin: false });
    expect((await as(admin).get(`/v2/users/${encodeURIComponent(admin.userId)}`)).body.deactivated).toBe(false);
  });

  it("takes a promotion and a demotion into account at once, with the same token", async () => {
    const deputy = await server.register("deputy");
    const path = `/v1/users/${encodeURIComponent(deputy.userId)}/admin`;
    expect((await as(deputy).get("/v2/users")).status).toBe(403);
    expect(await as(admin).put(path, { admin: true })).toEqual({ status: 200, body: {} });
    expect((await as(deputy).get("/v2/users")).status).toBe(200);
    expect((await as(admin).get(path)).body).toEqual({ admin: true });
    expect(await as(admin).put(path, { admin: false })).toEqual({ status: 200, body: {} });
    expect((await as(deputy).get("/v2/users")).status).toBe(403);
  });

  it("does not let an admin demote themself", async () => {
    const refused = await as(admin).put(`/v1/users/${encodeURIComponent(admin.userId)}/admin`, { admin: false });
    expect(refused.status).toBe(400);
    expect((await as(admin).get(`/v1/users/${encodeURIComponent(admin.userId)}/admin`)).body).toEqual({ admin: true });
  });

  it("answers an unknown admin path 404 M_UNRECOGNIZED", async () => {
    const unknown = await as(admin).get("/v1/no_such_thing");
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe("M_UNRECOGNIZED");
  });
});

describe("users", () => {
  it("lists users in pages with next_token and total, filtered by name, guests and deactivation", async () => {
    const local = await startTestServer();
    try {
      const root = await registerAdmin(local, "root");
      for (const name of ["ann", "anton", "bea"]) await local.register(name);
      const guest = await local.request("POST", `${C}/register?kind=guest`, { body: {} });
      expect(guest.status).toBe(200);
      const list = (query: string) => local.request("GET", `${ADMIN}/v2/users${query}`, { token: root.accessToken });

      const all = await list("");
      expect(all.status).toBe(200);
      expect(all.body.total).toBe(5);
      expect(all.body.next_token).toBeUndefined();
      expect(all.body.users.map((u: { name: string }) => u.name)).toEqual(expect.arrayContaining(["@ann:localhost", "@anton:localhost", "@bea:localhost", "@root:localhost", guest.body.user_id]));
      const ann = all.body.users.find((u: { name: string }) => u.name === "@ann:localhost");
      expect(ann).toMatchObject({ name: "@ann:localhost", admin: false, deactivated: false, is_guest: false, displayname: "ann", avatar_url: null });
      expect(typeof ann.creation_ts).toBe("number");
      expect(all.body.users.find((u: { name: string }) => u.name === "@root:localhost").admin).toBe(true);

      // Pages of two: the token is the offset of the next page; the last page has none.
      const first = await list("?limit=2");
      expect(first.body.users).toHaveLength(2);
      expect(first.body).toMatchObject({ next_token: "2", total: 5 });
      const second = await list(`?limit=2&from=${first.body.next_token}`);
      expect(second.body).toMatchObject({ next_token: "4", total: 5 });
      const third = await list("?limit=2&from=4");
      expect(third.body.users).toHaveLength(1);
      expect(third.body.next_token).toBeUndefined();
      const seen = [...first.body.users, ...second.body.users, ...third.body.users].map((u: { name: string }) => u.name);
      expect(new Set(seen).size).toBe(5);

      expect((await list("?name=ant")).body.users.map((u: { name: string }) => u.name)).toEqual(["@anton:localhost"]);
      // `name` matches display names too, `user_id` only user IDs (as Synapse).
      expect((await local.request("PUT", `${ADMIN}/v2/users/${encodeURIComponent("@bea:localhost")}`, { token: root.accessToken, body: { displayname: "Anthea" } })).status).toBe(200);
      expect((await list("?name=ant")).body.users.map((u: { name: string }) => u.name)).toEqual(["@anton:localhost", "@bea:localhost"]);
      expect((await list("?user_id=ant")).body.users.map((u: { name: string }) => u.name)).toEqual(["@anton:localhost"]);
      expect((await list("?guests=false")).body.total).toBe(4);
      expect((await list("?guests=maybe")).status).toBe(400);

      // Deactivated accounts appear only when asked for.
      expect((await local.request("POST", `${ADMIN}/v1/deactivate/${encodeURIComponent("@bea:localhost")}`, { token: root.accessToken, body: {} })).status).toBe(200);
      expect((await list("?guests=false")).body.total).toBe(3);
      const withDeactivated = await list("?guests=false&deactivated=true");
      expect(withDeactivated.body.total).toBe(4);
      expect(withDeactivated.body.users.find((u: { name: string }) => u.name === "@bea:localhost").deactivated).toBe(true);
    } finally {
      await local.close();
    }
  });

  it("shows one user, 404 for an unknown one and 400 for another server's", async () => {
    const shown = await as(admin).get(`/v2/users/${encodeURIComponent(admin.userId)}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ name: admin.userId, admin: true, deactivated: false, is_guest: false, displayname: "root", avatar_url: null });
    const unknown = await as(admin).get(`/v2/users/${encodeURIComponent("@nobody:localhost")}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe("M_NOT_FOUND");
    expect((await as(admin).get(`/v2/users/${encodeURIComponent("@someone:elsewhere.test")}`)).status).toBe(400);
  });

  it("creates a user with PUT (201) who can then log in, and modifies them (200)", async () => {
    const path = `/v2/users/${encodeURIComponent("@newbie:localhost")}`;
    const created = await as(admin).put(path, { password: "first password", displayname: "New Bie", admin: false });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "@newbie:localhost", displayname: "New Bie", admin: false, deactivated: false });
    const session = await login("newbie", "first password");
    expect(session.status).toBe(200);
    const profile = await server.request("GET", `${C}/profile/${encodeURIComponent("@newbie:localhost")}`);
    expect(profile.body).toEqual({ displayname: "New Bie" });

    // A new password logs out every device; a new display name reaches the profile.
    const modified = await as(admin).put(path, { password: "second password", displayname: "Newbie Renamed", admin: true });
    expect(modified.status).toBe(200);
    expect(modified.body).toMatchObject({ name: "@newbie:localhost", displayname: "Newbie Renamed", admin: true });
    const whoami = await server.request("GET", `${C}/account/whoami`, { token: session.body.access_token });
    expect(whoami.status).toBe(401);
    expect((await login("newbie", "first password")).status).toBe(403);
    expect((await login("newbie", "second password")).status).toBe(200);
    expect((await server.request("GET", `${C}/profile/${encodeURIComponent("@newbie:localhost")}`)).body).toEqual({ displayname: "Newbie Renamed" });

    // Unchanged fields keep their value; deactivated: true deactivates, and reactivation needs a password.
    const deactivated = await as(admin).put(path, { deactivated: true });
    expect(deactivated.body).toMatchObject({ displayname: "Newbie Renamed", admin: true, deactivated: true });
    expect((await login("newbie", "second password")).status).toBe(403);
    expect((await as(admin).put(path, { deactivated: false })).status).toBe(400);
    const reactivated = await as(admin).put(path, { deactivated: false, password: "third password" });
    expect(reactivated.body.deactivated).toBe(false);
    expect((await login("newbie", "third password")).status).toBe(200);
  });

  it("refuses to create a user of another server, or one whose ID is not lower case", async () => {
    expect((await as(admin).put(`/v2/users/${encodeURIComponent("@x:elsewhere.test")}`, { password: "p" })).status).toBe(400);
    const upper = await as(admin).put(`/v2/users/${encodeURIComponent("@Shouty:localhost")}`, { password: "p" });
    expect(upper.status).toBe(400);
    expect(upper.body.errcode).toBe("M_INVALID_USERNAME");
    expect((await as(admin).put(`/v2/users/${encodeURIComponent("@typed:localhost")}`, { admin: "yes" })).status).toBe(400);
    expect((await as(admin).get(`/v2/users/${encodeURIComponent("@typed:localhost")}`)).status).toBe(404);
  });

  it("lists a user's devices and joined rooms", async () => {
    const dana = await server.register("dana");
    await login("dana", PASSWORD);
    const devices = await as(admin).get(`/v2/users/${encodeURIComponent(dana.userId)}/devices`);
    expect(devices.status).toBe(200);
    expect(devices.body.total).toBe(2);
    expect(devices.body.devices.map((d: { device_id: string }) => d.device_id)).toContain(dana.deviceId);
    expect(devices.body.devices[0]).toMatchObject({ user_id: dana.userId });
    expect(Object.keys(devices.body.devices[0]).sort()).toEqual(["device_id", "display_name", "last_seen_ip", "last_seen_ts", "user_id"]);

    const roomA = await createRoom(dana, { preset: "public_chat" });
    const roomB = await createRoom(admin, { preset: "public_chat" });
    await joinRoom(dana, roomB);
    await server.request("POST", `${C}/rooms/${encodeURIComponent(roomB)}/leave`, { token: dana.accessToken, body: {} });
    const roomC = await createRoom(dana, {});
    const joined = await as(admin).get(`/v1/users/${encodeURIComponent(dana.userId)}/joined_rooms`);
    expect(joined.status).toBe(200);
    expect(joined.body).toEqual({ joined_rooms: [roomA, roomC].sort(), total: 2 });
    expect((await as(admin).get(`/v2/users/${encodeURIComponent("@nobody:localhost")}/devices`)).status).toBe(404);
  });

  it("deactivates a user: they leave their rooms, lose their sessions and cannot log in", async () => {
    const erin = await server.register("erin");
    const roomId = await createRoom(admin, { preset: "public_chat", name: "Leaving party" });
    await joinRoom(erin, roomId);
    const ownRoom = await createRoom(erin, {});
    const members = () => as(admin).get(`/v1/rooms/${encodeURIComponent(roomId)}/members`);
    expect((await members()).body.members).toContain(erin.userId);

    const deactivated = await as(admin).post(`/v1/deactivate/${encodeURIComponent(erin.userId)}`, { erase: false });
    expect(deactivated).toEqual({ status: 200, body: { id_server_unbind_result: "success" } });
    expect((await members()).body.members).not.toContain(erin.userId);
    const membership = await server.request("GET", `${C}/rooms/${encodeURIComponent(roomId)}/state/m.room.member/${encodeURIComponent(erin.userId)}`, { token: admin.accessToken });
    expect(membership.body.membership).toBe("leave");
    expect((await as(admin).get(`/v1/rooms/${encodeURIComponent(ownRoom)}/members`)).body).toEqual({ members: [], total: 0 });
    expect((await as(admin).get(`/v1/users/${encodeURIComponent(erin.userId)}/joined_rooms`)).body).toEqual({ joined_rooms: [], total: 0 });
    expect((await server.request("GET", `${C}/account/whoami`, { token: erin.accessToken })).status).toBe(401);
    expect((await login("erin", PASSWORD)).status).toBe(403);
    expect((await as(admin).get(`/v2/users/${encodeURIComponent(erin.userId)}`)).body.deactivated).toBe(true);
    expect((await as(admin).get(`/v2/users/${encodeURIComponent(erin.userId)}/devices`)).body).toEqual({ devices: [], total: 0 });
  });

  it("deactivates with no body at all, refuses erase, and 404s an unknown user", async () => {
    const fred = await server.register("fred");
    expect((await as(admin).post(`/v1/deactivate/${encodeURIComponent(fred.userId)}`, { erase: true })).status).toBe(400);
    expect((await as(admin).get(`/v2/users/${encodeURIComponent(fred.userId)}`)).body.deactivated).toBe(false);
    expect((await as(admin).post(`/v1/deactivate/${encodeURIComponent(fred.userId)}`)).status).toBe(200);
    expect((await as(admin).get(`/v2/users/${encodeURIComponent(fred.userId)}`)).body.deactivated).toBe(true);
    expect((await as(admin).post(`/v1/deactivate/${encodeURIComponent("@nobody:localhost")}`, {})).status).toBe(404);
  });
});

describe("rooms", () => {
  let local: TestServer;
  let root: Session;
  const rooms = { zebra: "", alpha: "", unnamed: "" };
  const get = (path: string) => local.request("GET", ADMIN + path, { token: root.accessToken });

  beforeAll(async () => {
    local = await startTestServer();
    root = await registerAdmin(local, "root");
    const gus = await local.register("gus");
    const hal = await local.register("hal");
    const create = async (session: Session, body: unknown) => (await local.request("POST", `${C}/createRoom`, { token: session.accessToken, body })).body.room_id as string;
    rooms.zebra = await create(root, { preset: "public_chat", name: "Zebra crossing", topic: "stripes", visibility: "public" });
    rooms.alpha = await create(gus, { preset: "public_chat", name: "Alpha centauri", room_alias_name: "alpha" });
    rooms.unnamed = await create(hal, { preset: "private_chat" });
    for (const session of [root, hal]) await local.request("POST", `${C}/join/${encodeURIComponent(rooms.alpha)}`, { token: session.accessToken, body: {} });
  });
  afterAll(async () => {
    await local?.close();
  });

  it("lists rooms by name by default, with the room details tools show", async () => {
    const listed = await get("/v1/rooms");
    expect(listed.status).toBe(200);
    expect(listed.body).toMatchObject({ offset: 0, total_rooms: 3 });
    expect(listed.body.next_batch).toBeUndefined();
    expect(listed.body.prev_batch).toBeUndefined();
    // Named rooms alphabetically, the unnamed one last.
    expect(listed.body.rooms.map((r: { room_id: string }) => r.room_id)).toEqual([rooms.alpha, rooms.zebra, rooms.unnamed]);
    expect(listed.body.rooms[0]).toMatchObject({
      room_id: rooms.alpha,
      name: "Alpha centauri",
      canonical_alias: "#alpha:localhost",
      joined_members: 3,
      joined_local_members: 3,
      creator: "@gus:localhost",
      federatable: true,
      public: false,
      join_rules: "public",
      encryption: null,
    });
    expect(listed.body.rooms[1]).toMatchObject({ name: "Zebra crossing", topic: "stripes", public: true, joined_members: 1 });
    expect(listed.body.rooms[2]).toMatchObject({ name: null, join_rules: "invite", joined_members: 1 });
  });

  it("orders by joined members, reverses with dir=b, pages, and searches names, aliases and IDs", async () => {
    const bySize = await get("/v1/rooms?order_by=joined_members");
    expect(bySize.body.rooms[0].room_id).toBe(rooms.alpha);
    const reversed = await get("/v1/rooms?order_by=name&dir=b");
    expect(reversed.body.rooms.map((r: { room_id: string }) => r.room_id)).toEqual([rooms.unnamed, rooms.zebra, rooms.alpha]);

    const first = await get("/v1/rooms?limit=2");
    expect(first.body).toMatchObject({ offset: 0, total_rooms: 3, next_batch: 2 });
    const second = await get(`/v1/rooms?limit=2&from=${first.body.next_batch}`);
    expect(second.body).toMatchObject({ offset: 2, total_rooms: 3, prev_batch: 0 });
    expect(second.body.rooms.map((r: { room_id: string }) => r.room_id)).toEqual([rooms.unnamed]);
    expect(second.body.next_batch).toBeUndefined();

    const search = async (term: string) => (await get(`/v1/rooms?search_term=${encodeURIComponent(term)}`)).body;
    expect((await search("ZEBRA")).rooms.map((r: { room_id: string }) => r.room_id)).toEqual([rooms.zebra]);
    expect((await search("#alpha")).rooms.map((r: { room_id: string }) => r.room_id)).toEqual([rooms.alpha]);
    expect((await search(rooms.unnamed)).total_rooms).toBe(1);
    expect((await search("nothing like it")).total_rooms).toBe(0);
    expect((await get("/v1/rooms?order_by=colour")).status).toBe(400);
  });

  it("shows one room, its members and its state; 404 for an unknown room", async () => {
    const details = await get(`/v1/rooms/${encodeURIComponent(rooms.alpha)}`);
    expect(details.status).toBe(200);
    expect(details.body).toMatchObject({ room_id: rooms.alpha, name: "Alpha centauri", joined_members: 3, canonical_alias: "#alpha:localhost", creator: "@gus:localhost" });
    const listed = (await get("/v1/rooms")).body.rooms.find((r: { room_id: string }) => r.room_id === rooms.alpha);
    expect(details.body).toEqual(listed);

    const members = await get(`/v1/rooms/${encodeURIComponent(rooms.alpha)}/members`);
    expect(members.body).toEqual({ members: ["@gus:localhost", "@hal:localhost", "@root:localhost"], total: 3 });

    const state = await get(`/v1/rooms/${encodeURIComponent(rooms.alpha)}/state`);
    expect(state.status).toBe(200);
    const types = state.body.state.map((e: { type: string }) => e.type);
    expect(types).toEqual(expect.arrayContaining(["m.room.create", "m.room.power_levels", "m.room.name", "m.room.member", "m.room.canonical_alias"]));
    expect(state.body.state).toHaveLength(details.body.state_events);
    const name = state.body.state.find((e: { type: string }) => e.type === "m.room.name");
    expect(name).toMatchObject({ room_id: rooms.alpha, state_key: "", content: { name: "Alpha centauri" }, sender: "@gus:localhost" });
    expect(name.signatures).toBeUndefined();

    for (const path of ["", "/members", "/state"]) {
      const unknown = await get(`/v1/rooms/${encodeURIComponent("!nope:localhost")}${path}`);
      expect(unknown.status).toBe(404);
      expect(unknown.body.errcode).toBe("M_NOT_FOUND");
    }
  });
});

describe("the audit log", () => {
  it("logs every change an admin makes, with the admin's user ID and what changed, and never the password", async () => {
    // Its own server: the shared test server's logger is silent.
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString("utf8").split("\n").filter((l) => l.length > 0));
        done();
      },
    });
    const dataDir = mkdtempSync(join(tmpdir(), "bobbin-admin-log-"));
    const homeserver = await startHomeserver(sqliteHomeserverSettings(dataDir, { logger: pino({ level: "info" }, sink) }));
    try {
      const base = homeserver.urls[0]!;
      const call = async (method: string, path: string, token: string | undefined, body?: unknown) => {
        const response = await fetch(base + path, {
          method,
          headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const first = await call("POST", `${C}/register`, undefined, { username: "boss", password: PASSWORD });
      const registered = await call("POST", `${C}/register`, undefined, { username: "boss", password: PASSWORD, auth: { type: "m.login.dummy", session: first.body.session } });
      const token = registered.body.access_token as string;
      await homeserver.storage.accounts.updateUser("@boss:localhost", { isAdmin: true });

      expect((await call("PUT", `${ADMIN}/v2/users/${encodeURIComponent("@ivy:localhost")}`, token, { password: "ivy's secret", displayname: "Ivy" })).status).toBe(201);
      expect((await call("PUT", `${ADMIN}/v1/users/${encodeURIComponent("@ivy:localhost")}/admin`, token, { admin: true })).status).toBe(200);
      expect((await call("POST", `${ADMIN}/v1/deactivate/${encodeURIComponent("@ivy:localhost")}`, token, {})).status).toBe(200);
      // Reads change nothing and are not audit entries.
      expect((await call("GET", `${ADMIN}/v2/users`, token)).status).toBe(200);

      const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => typeof e.action === "string");
      expect(entries.map((e) => [e.admin_user_id, e.action, e.user_id])).toEqual([
        ["@boss:localhost", "create_user", "@ivy:localhost"],
        ["@boss:localhost", "set_admin", "@ivy:localhost"],
        ["@boss:localhost", "deactivate_user", "@ivy:localhost"],
      ]);
      expect(entries[0]).toMatchObject({ displayname: "Ivy", password_set: true, component: "admin" });
      expect(entries[1]).toMatchObject({ admin: true });
      expect(lines.join("\n")).not.toContain("ivy's secret");
    } finally {
      await homeserver.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
