// The admin API, second part (issue 7), over real HTTP against a real server and SQLite:
// federation destinations and their retry state (Synapse Admin API "Federation API"), Bobbin's
// own /_bobbin/admin/v1/hub_violations, and shared-secret registration (`/v1/register`).
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { parseConfig, toHomeserverSettings } from "../../src/app/config.js";
import { startHomeserver, type Homeserver } from "../../src/app/homeserver.js";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const ADMIN = "/_synapse/admin";
const BOBBIN = "/_bobbin/admin";

type Session = { userId: string; accessToken: string; deviceId: string };

let server: TestServer;
let admin: Session;
let user: Session;

const get = (session: Session, path: string) => server.request("GET", path, { token: session.accessToken });
const post = (session: Session, path: string, body: unknown = {}) => server.request("POST", path, { token: session.accessToken, body });
const dest = (name: string) => `${ADMIN}/v1/federation/destinations/${encodeURIComponent(name)}`;

beforeAll(async () => {
  server = await startTestServer();
  admin = await server.register("root");
  await server.homeserver.storage.accounts.updateUser(admin.userId, { isAdmin: true });
  user = await server.register("plain");
});
afterAll(async () => {
  await server?.close();
});

describe("federation destinations", () => {
  const now = Date.now();
  const failing = "down.invalid";
  beforeAll(async () => {
    const repo = server.homeserver.storage.federation;
    // Names that never resolve: a retry the reset triggers fails without leaving the machine.
    for (const name of ["a.invalid", "b.invalid", "c.invalid"]) await repo.putDestination({ destination: name, failures: 0, retryAtTs: null, lastError: null, lastSuccessTs: now - 1000 });
    await repo.putDestination({ destination: failing, failures: 4, retryAtTs: now + 3_600_000, lastError: "connect ECONNREFUSED", lastSuccessTs: now - 86_400_000 });
  });

  it("lists destinations with Synapse's fields and Bobbin's retry state, in pages", async () => {
    const all = await get(admin, `${ADMIN}/v1/federation/destinations`);
    expect(all.status).toBe(200);
    expect(all.body.total).toBe(4);
    expect(all.body.next_token).toBeUndefined();
    expect(all.body.destinations.map((d: { destination: string }) => d.destination)).toEqual(["a.invalid", "b.invalid", "c.invalid", failing]);
    expect(all.body.destinations[0]).toEqual({
      destination: "a.invalid",
      retry_last_ts: 0,
      retry_interval: 0,
      failure_ts: null,
      last_successful_stream_ordering: null,
      failures: 0,
      retry_at_ts: null,
      last_error: null,
      last_success_ts: now - 1000,
    });
    const down = all.body.destinations[3];
    expect(down).toMatchObject({ failures: 4, retry_at_ts: now + 3_600_000, last_error: "connect ECONNREFUSED", failure_ts: now - 86_400_000 });
    // The next attempt tools compute is the stored one.
    expect(down.retry_last_ts + down.retry_interval).toBe(now + 3_600_000);
    expect(down.retry_interval).toBeGreaterThan(3_500_000);

    const first = await get(admin, `${ADMIN}/v1/federation/destinations?limit=3`);
    expect(first.body).toMatchObject({ total: 4, next_token: "3" });
    expect(first.body.destinations).toHaveLength(3);
    const second = await get(admin, `${ADMIN}/v1/federation/destinations?limit=3&from=${first.body.next_token}`);
    expect(second.body.destinations.map((d: { destination: string }) => d.destination)).toEqual([failing]);
    expect(second.body.next_token).toBeUndefined();
    const filtered = await get(admin, `${ADMIN}/v1/federation/destinations?destination=DOWN`);
    expect(filtered.body).toMatchObject({ total: 1, destinations: [{ destination: failing }] });
    expect((await get(admin, `${ADMIN}/v1/federation/destinations?limit=-1`)).status).toBe(400);
  });

  it("shows one destination, 404 M_NOT_FOUND for one never sent to", async () => {
    const shown = await get(admin, dest(failing));
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ destination: failing, failures: 4, last_error: "connect ECONNREFUSED" });
    const unknown = await get(admin, dest("never.invalid"));
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe("M_NOT_FOUND");
  });

  it("resets a destination in backoff through the outbound queues; 400 for a healthy one, 404 for an unknown one", async () => {
    const reset = await post(admin, `${dest(failing)}/reset_connection`);
    expect(reset).toEqual({ status: 200, body: {} });
    const row = await server.homeserver.storage.federation.getDestination(failing);
    expect(row).toMatchObject({ failures: 0, retryAtTs: null, lastError: null });
    expect((await get(admin, dest(failing))).body).toMatchObject({ failures: 0, retry_last_ts: 0, retry_interval: 0, failure_ts: null });

    const healthy = await post(admin, `${dest("a.invalid")}/reset_connection`);
    expect(healthy.status).toBe(400);
    expect((await post(admin, `${dest("never.invalid")}/reset_connection`)).status).toBe(404);
  });

  it("is for server admins only", async () => {
    for (const attempt of [get(user, `${ADMIN}/v1/federation/destinations`), get(user, dest("b.invalid")), post(user, `${dest("b.invalid")}/reset_connection`)]) {
      const refused = await attempt;
      expect(refused.status).toBe(403);
      expect(refused.body.errcode).toBe("M_FORBIDDEN");
    }
  });
});

describe("hub violations (/_bobbin/admin)", () => {
  it("lists the recorded violations, by room when asked, to server admins only", async () => {
    const repo = server.homeserver.storage.federation;
    await repo.addHubViolation({ roomId: "!one:hub.invalid", eventId: "$bad1", hubServer: "hub.invalid", reason: "sender not joined", detectedTs: 1000 });
    await repo.addHubViolation({ roomId: "!two:hub.invalid", eventId: "$bad2", hubServer: "hub.invalid", reason: "power level too low", detectedTs: 2000 });

    const all = await get(admin, `${BOBBIN}/v1/hub_violations`);
    expect(all).toEqual({
      status: 200,
      body: {
        violations: [
          { room_id: "!one:hub.invalid", event_id: "$bad1", hub_server: "hub.invalid", reason: "sender not joined", detected_ts: 1000 },
          { room_id: "!two:hub.invalid", event_id: "$bad2", hub_server: "hub.invalid", reason: "power level too low", detected_ts: 2000 },
        ],
        total: 2,
      },
    });
    const one = await get(admin, `${BOBBIN}/v1/hub_violations?room_id=${encodeURIComponent("!two:hub.invalid")}`);
    expect(one.body).toMatchObject({ total: 1, violations: [{ event_id: "$bad2" }] });

    const refused = await get(user, `${BOBBIN}/v1/hub_violations`);
    expect(refused.status).toBe(403);
    expect(refused.body.errcode).toBe("M_FORBIDDEN");
    expect((await server.request("GET", `${BOBBIN}/v1/hub_violations`)).status).toBe(401);
    const unknown = await get(admin, `${BOBBIN}/v1/nothing`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe("M_UNRECOGNIZED");
  });
});

describe("deleting and blocking rooms", () => {
  const C = "/_matrix/client/v3";
  const del = (session: Session, roomId: string, body?: unknown) =>
    server.request("DELETE", `${ADMIN}/v1/rooms/${encodeURIComponent(roomId)}`, { token: session.accessToken, ...(body === undefined ? {} : { body }) });

  it("makes every local member leave and forget the room, removes its aliases and directory entry, and blocks it", async () => {
    const owner = await server.register("owner");
    const guest = await server.register("visitor");
    const created = await server.request("POST", `${C}/createRoom`, { token: owner.accessToken, body: { preset: "public_chat", visibility: "public", room_alias_name: "doomed" } });
    const roomId = created.body.room_id as string;
    expect((await server.request("POST", `${C}/join/${encodeURIComponent(roomId)}`, { token: guest.accessToken, body: {} })).status).toBe(200);

    const deleted = await del(admin, roomId, { block: true, purge: false });
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ kicked_users: [owner.userId, guest.userId].sort(), failed_to_kick_users: [], local_aliases: ["#doomed:localhost"], new_room_id: null });
    expect((await get(admin, `${ADMIN}/v1/rooms/${encodeURIComponent(roomId)}/members`)).body).toEqual({ members: [], total: 0 });
    const joined = await server.request("GET", `${C}/joined_rooms`, { token: guest.accessToken });
    expect(joined.body.joined_rooms).not.toContain(roomId);
    for (const member of [owner, guest]) expect(await server.homeserver.storage.events.isRoomForgotten(member.userId, roomId)).toBe(true);
    expect((await server.request("GET", `${C}/directory/room/${encodeURIComponent("#doomed:localhost")}`)).status).toBe(404);
    const directory = await server.request("GET", `${C}/publicRooms`);
    expect(directory.body.chunk.map((r: { room_id: string }) => r.room_id)).not.toContain(roomId);
    expect((await get(admin, `${ADMIN}/v1/rooms/${encodeURIComponent(roomId)}/block`)).body).toEqual({ block: true, user_id: admin.userId });
    // A blocked room takes no one back in.
    const rejoin = await server.request("POST", `${C}/join/${encodeURIComponent(roomId)}`, { token: guest.accessToken, body: {} });
    expect(rejoin.status).toBe(403);
    expect(rejoin.body.errcode).toBe("M_FORBIDDEN");
  });

  it("refuses to move users to a new room, and 404s an unknown room unless blocking it", async () => {
    const roomId = (await server.request("POST", `${C}/createRoom`, { token: user.accessToken, body: {} })).body.room_id as string;
    for (const body of [{ new_room_user_id: admin.userId }, { purge: false, new_room_user_id: admin.userId }, { purge: "yes" }]) {
      const refused = await del(admin, roomId, body);
      expect(refused.status).toBe(400);
      expect(refused.body.errcode).toBe("M_INVALID_PARAM");
    }
    expect((await get(admin, `${ADMIN}/v1/rooms/${encodeURIComponent(roomId)}/members`)).body.members).toEqual([user.userId]);
    expect((await del(user, roomId, { purge: false })).status).toBe(403);
    expect((await get(admin, `${ADMIN}/v1/rooms/${encodeURIComponent(roomId)}/members`)).body.members).toEqual([user.userId]);

    expect((await del(admin, "!unknown:localhost", { purge: false })).status).toBe(404);
    const blockedAhead = await del(admin, "!future:localhost", { purge: false, block: true });
    expect(blockedAhead.body).toEqual({ kicked_users: [], failed_to_kick_users: [], local_aliases: [], new_room_id: null });
    expect((await get(admin, `${ADMIN}/v1/rooms/${encodeURIComponent("!future:localhost")}/block`)).body.block).toBe(true);
  });

  it("blocks and unblocks a room with PUT .../block", async () => {
    const path = `${ADMIN}/v1/rooms/${encodeURIComponent("!blockme:localhost")}/block`;
    expect((await get(admin, path)).body).toEqual({ block: false });
    expect(await server.request("PUT", path, { token: admin.accessToken, body: { block: true } })).toEqual({ status: 200, body: { block: true } });
    expect((await get(admin, path)).body).toEqual({ block: true, user_id: admin.userId });
    expect(await server.request("PUT", path, { token: admin.accessToken, body: { block: false } })).toEqual({ status: 200, body: { block: false } });
    expect((await get(admin, path)).body).toEqual({ block: false });
    expect((await server.request("PUT", path, { token: admin.accessToken, body: {} })).status).toBe(400);
    expect((await server.request("PUT", path, { token: user.accessToken, body: { block: true } })).status).toBe(403);
    expect((await get(admin, path)).body).toEqual({ block: false });
  });
});

describe("shared-secret registration (/v1/register)", () => {
  const SECRET = "a shared secret nobody guesses";
  let homeserver: Homeserver;
  let dataDir: string;
  let clockOffset = 0;
  const logLines: string[] = [];

  /** What Synapse's register_new_matrix_user sends: the MAC computed here, from the API's definition. */
  function mac(fields: { nonce: string; username: string; password: string; admin: boolean; userType?: string }, secret = SECRET): string {
    const parts = [fields.nonce, fields.username, fields.password, fields.admin ? "admin" : "notadmin", ...(fields.userType !== undefined ? [fields.userType] : [])];
    return createHmac("sha1", secret).update(parts.join("\x00")).digest("hex");
  }
  // `any` in the body: the tests assert on arbitrary response JSON, as TestServer.request's.
  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const response = await fetch(homeserver.urls[0]! + path, {
      method,
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, any> };
  };
  const nonce = async (): Promise<string> => {
    const issued = await call("GET", `${ADMIN}/v1/register`);
    expect(issued.status).toBe(200);
    expect(issued.body.nonce).toMatch(/^[0-9a-f]{32}$/);
    return issued.body.nonce as string;
  };

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "bobbin-admin-register-"));
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(...chunk.toString("utf8").split("\n").filter((l) => l.length > 0));
        done();
      },
    });
    homeserver = await startHomeserver({
      serverName: "localhost",
      database: { engine: "sqlite", path: join(dataDir, "homeserver.db") },
      signingKey: { keyId: "ed25519:test", signer: nativeEd25519.signerFromSeed(randomBytes(32)) },
      listeners: [{ host: "127.0.0.1", port: 0 }],
      // Closed registration: the shared secret works regardless.
      registration: { enabled: false, allowGuests: false },
      registrationSharedSecret: SECRET,
      rateLimits: {},
      maxRequestBytes: 1024 * 1024,
      logger: pino({ level: "info" }, sink),
      now: () => Date.now() + clockOffset,
    });
  });
  afterAll(async () => {
    await homeserver?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("registers an admin with a valid MAC; the account logs in and may use the admin API", async () => {
    const fields = { nonce: await nonce(), username: "Operator", password: "op's password", admin: true };
    const registered = await call("POST", `${ADMIN}/v1/register`, { ...fields, displayname: "The Operator", mac: mac(fields) });
    expect(registered.status).toBe(200);
    expect(registered.body).toMatchObject({ user_id: "@operator:localhost", home_server: "localhost" });
    expect(typeof registered.body.device_id).toBe("string");
    const token = registered.body.access_token as string;
    expect((await call("GET", "/_matrix/client/v3/account/whoami", undefined, token)).body.user_id).toBe("@operator:localhost");
    const shown = await call("GET", `${ADMIN}/v2/users/${encodeURIComponent("@operator:localhost")}`, undefined, token);
    expect(shown.body).toMatchObject({ admin: true, displayname: "The Operator" });
    const login = await call("POST", "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: "operator" }, password: "op's password" });
    expect(login.status).toBe(200);

    const plain = { nonce: await nonce(), username: "worker", password: "pw", admin: false };
    expect((await call("POST", `${ADMIN}/v1/register`, { ...plain, mac: mac(plain) })).status).toBe(200);
    expect((await call("GET", `${ADMIN}/v2/users/${encodeURIComponent("@worker:localhost")}`, undefined, token)).body.admin).toBe(false);

    const audit = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.action === "register_user");
    expect(audit.map((e) => [e.user_id, e.admin])).toEqual([["@operator:localhost", true], ["@worker:localhost", false]]);
    expect(logLines.join("\n")).not.toContain("op's password");
  });

  it("refuses a wrong MAC with 403, and a MAC claiming notadmin for an admin request", async () => {
    const fields = { nonce: await nonce(), username: "mallet", password: "pw", admin: false };
    const wrongSecret = await call("POST", `${ADMIN}/v1/register`, { ...fields, mac: mac(fields, "another secret") });
    expect(wrongSecret.status).toBe(403);
    expect(wrongSecret.body.errcode).toBe("M_FORBIDDEN");
    const escalate = { ...fields, nonce: await nonce() };
    const promoted = await call("POST", `${ADMIN}/v1/register`, { ...escalate, admin: true, mac: mac(escalate) });
    expect(promoted.status).toBe(403);
    expect(await homeserver.storage.accounts.getUser("@mallet:localhost")).toBeUndefined();
  });

  it("uses each nonce once, even after a failure, and lets nonces expire after 60 s", async () => {
    const fields = { nonce: await nonce(), username: "once", password: "pw", admin: false };
    expect((await call("POST", `${ADMIN}/v1/register`, { ...fields, mac: "00" })).status).toBe(403);
    const replay = await call("POST", `${ADMIN}/v1/register`, { ...fields, mac: mac(fields) });
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe("unrecognised nonce");
    const made = await call("POST", `${ADMIN}/v1/register`, { nonce: "0123", username: "once", password: "pw", admin: false, mac: mac({ ...fields, nonce: "0123" }) });
    expect(made.status).toBe(400);

    const late = { nonce: await nonce(), username: "late", password: "pw", admin: false };
    clockOffset = 61_000;
    try {
      expect((await call("POST", `${ADMIN}/v1/register`, { ...late, mac: mac(late) })).status).toBe(400);
    } finally {
      clockOffset = 0;
    }
    const inTime = { nonce: await nonce(), username: "late", password: "pw", admin: false };
    clockOffset = 59_000;
    try {
      expect((await call("POST", `${ADMIN}/v1/register`, { ...inTime, mac: mac(inTime) })).status).toBe(200);
    } finally {
      clockOffset = 0;
    }
  });

  it("answers a taken username M_USER_IN_USE and an invalid one M_INVALID_USERNAME", async () => {
    const taken = { nonce: await nonce(), username: "operator", password: "pw", admin: false };
    const inUse = await call("POST", `${ADMIN}/v1/register`, { ...taken, mac: mac(taken) });
    expect(inUse.status).toBe(400);
    expect(inUse.body.errcode).toBe("M_USER_IN_USE");
    const invalid = { nonce: await nonce(), username: "not valid!", password: "pw", admin: false };
    const refused = await call("POST", `${ADMIN}/v1/register`, { ...invalid, mac: mac(invalid) });
    expect(refused.status).toBe(400);
    expect(refused.body.errcode).toBe("M_INVALID_USERNAME");
  });

  it("logs a destination reset with the admin who made it", async () => {
    const fields = { nonce: await nonce(), username: "netops", password: "pw", admin: true };
    const token = (await call("POST", `${ADMIN}/v1/register`, { ...fields, mac: mac(fields) })).body.access_token as string;
    await homeserver.storage.federation.putDestination({ destination: "flaky.invalid", failures: 2, retryAtTs: Date.now() + 60_000, lastError: "timeout", lastSuccessTs: null });
    const reset = await call("POST", `${ADMIN}/v1/federation/destinations/flaky.invalid/reset_connection`, {}, token);
    expect(reset.status).toBe(200);
    const audit = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.action === "reset_destination");
    expect(audit).toEqual([expect.objectContaining({ admin_user_id: "@netops:localhost", destination: "flaky.invalid", failures: 2, component: "admin" })]);
  });

  it("is disabled without registration_shared_secret: 400 on GET and POST", async () => {
    const issued = await server.request("GET", `${ADMIN}/v1/register`);
    expect(issued.status).toBe(400);
    expect(issued.body.errcode).toBe("M_UNKNOWN");
    const fields = { nonce: "anything", username: "sneaky", password: "pw", admin: true };
    const refused = await server.request("POST", `${ADMIN}/v1/register`, { body: { ...fields, mac: mac(fields) } });
    expect(refused.status).toBe(400);
    expect(await server.homeserver.storage.accounts.getUser("@sneaky:localhost")).toBeUndefined();
  });
});

describe("the registration_shared_secret configuration key", () => {
  const parse = (text: string) => parseConfig(text, { source: "test.yaml", baseDir: tmpdir(), env: {} });
  const runtime = { signingKey: { keyId: "ed25519:test", signer: nativeEd25519.signerFromSeed(randomBytes(32)) }, logger: pino({ level: "silent" }) };

  it("reaches the homeserver settings when set, stays absent otherwise, and may not be empty", () => {
    const set = parse("server_name: example.test\nregistration_shared_secret: s3cret\n");
    expect(set.registrationSharedSecret).toBe("s3cret");
    expect(toHomeserverSettings(set, runtime).registrationSharedSecret).toBe("s3cret");
    const unset = parse("server_name: example.test\n");
    expect(unset.registrationSharedSecret).toBeUndefined();
    expect("registrationSharedSecret" in toHomeserverSettings(unset, runtime)).toBe(false);
    expect(() => parse('server_name: example.test\nregistration_shared_secret: ""\n')).toThrow(/registration_shared_secret/);
  });
});
