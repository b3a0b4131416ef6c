// Deleting a room with purge (Synapse Admin API "Delete Room", `purge` defaults to true), on SQLite
// and PostgreSQL: local members are made to leave first, then every row of the room is gone from
// the database — events, state, memberships, receipts, room account data, aliases, transaction
// IDs, queued federation sends — while other rooms are untouched, the block stays, and stream
// positions the room held are never handed out again (sync tokens stay valid across a restart).
import { jest } from "@jest/globals";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Knex } from "knex";
import pino from "pino";
import { createRoomDelete } from "../../src/admin/api/room-delete.js";
import { startHomeserver, type Homeserver, type HomeserverSettings } from "../../src/app/homeserver.js";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import type { DatabaseSettings } from "../../src/storage/index.js";
import { createKnex } from "../../src/storage/knex/connection.js";
import { dropPostgresSchema, postgresUrl } from "../support/postgres.js";

jest.setTimeout(60_000);

const url = await postgresUrl();
const engines: Array<[string, () => DatabaseSettings]> = [["SQLite", () => ({ engine: "sqlite", path: join(dataDir, "homeserver.db") })]];
if (url) engines.push(["PostgreSQL", () => ({ engine: "postgres", url, schema: `purge_${randomBytes(5).toString("hex")}` })]);

const C = "/_matrix/client/v3";
const ADMIN = "/_synapse/admin";
const q = encodeURIComponent;
let dataDir: string;

type Session = { userId: string; accessToken: string };

describe.each(engines)("room purge on %s", (_name, databaseOf) => {
  let database: DatabaseSettings;
  let settings: HomeserverSettings;
  let homeserver: Homeserver;
  let baseUrl: string;
  let knex: Knex;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "bobbin-purge-"));
    database = databaseOf();
    settings = {
      serverName: "localhost",
      database,
      signingKey: { keyId: "ed25519:test", signer: nativeEd25519.signerFromSeed(randomBytes(32)) },
      listeners: [{ host: "127.0.0.1", port: 0 }],
      registration: { enabled: true, allowGuests: false },
      rateLimits: {},
      maxRequestBytes: 1024 * 1024,
      logger: pino({ level: process.env.LOG_LEVEL ?? "silent" }),
    };
    homeserver = await startHomeserver(settings);
    baseUrl = homeserver.urls[0]!;
    knex = createKnex(database);
  });
  afterAll(async () => {
    await knex?.destroy();
    await homeserver?.close();
    if (database.engine === "postgres" && database.schema) await dropPostgresSchema(database.url, database.schema);
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function call(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(baseUrl + path, {
      method,
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: response.status, body: await response.json() };
  }

  async function register(localpart: string): Promise<Session> {
    const password = "a long password";
    const first = await call("POST", `${C}/register`, undefined, { username: localpart, password });
    const done = await call("POST", `${C}/register`, undefined, { username: localpart, password, auth: { type: "m.login.dummy", session: first.body.session } });
    expect(done.status).toBe(200);
    return { userId: done.body.user_id, accessToken: done.body.access_token };
  }

  /** Rows in every table that name the room or one of `eventIds`. */
  async function rowsAbout(roomId: string, eventIds: string[]): Promise<Record<string, number>> {
    const tables =
      database.engine === "sqlite"
        ? ((await knex.raw("SELECT m.name AS name, p.name AS col FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table'")) as Array<{ name: string; col: string }>)
        : ((await knex.raw("SELECT table_name AS name, column_name AS col FROM information_schema.columns WHERE table_schema = current_schema()")) as { rows: Array<{ name: string; col: string }> }).rows;
    const found: Record<string, number> = {};
    for (const { name, col } of tables) {
      let count = 0;
      if (col === "room_id") count = Number(((await knex(name).count({ n: "*" }).where(col, roomId).first()) as { n: unknown }).n);
      else if (col === "event_id" || col === "commit_event_id") count = Number(((await knex(name).count({ n: "*" }).whereIn(col, eventIds).first()) as { n: unknown }).n);
      if (count > 0) found[`${name}.${col}`] = count;
    }
    return found;
  }

  it("makes local members leave, then removes every row of the room and nothing else", async () => {
    const admin = await register("root");
    await homeserver.storage.accounts.updateUser(admin.userId, { isAdmin: true });
    const owner = await register("owner");
    const guest = await register("guest");

    const roomId = (await call("POST", `${C}/createRoom`, owner.accessToken, { preset: "public_chat", visibility: "public", room_alias_name: "doomed", name: "Doomed" })).body.room_id as string;
    const keptId = (await call("POST", `${C}/createRoom`, owner.accessToken, { preset: "public_chat", room_alias_name: "kept" })).body.room_id as string;
    for (const [r, room] of [roomId, keptId].entries()) {
      expect((await call("POST", `${C}/join/${q(room)}`, guest.accessToken, {})).status).toBe(200);
      for (let i = 0; i < 5; i++) expect((await call("PUT", `${C}/rooms/${q(room)}/send/m.room.message/t${r}-${i}`, owner.accessToken, { msgtype: "m.text", body: `${i}` })).status).toBe(200);
      const last = (await call("PUT", `${C}/rooms/${q(room)}/send/m.room.message/last${r}`, guest.accessToken, { msgtype: "m.text", body: "last" })).body.event_id as string;
      expect((await call("POST", `${C}/rooms/${q(room)}/receipt/m.read/${q(last)}`, owner.accessToken, {})).status).toBe(200);
      expect((await call("PUT", `${C}/user/${q(owner.userId)}/rooms/${q(room)}/account_data/m.tag`, owner.accessToken, { tags: { "m.favourite": {} } })).status).toBe(200);
    }
    const messages = await call("GET", `${C}/rooms/${q(roomId)}/messages?dir=b&limit=100`, owner.accessToken);
    const eventIds = (messages.body.chunk as Array<{ event_id: string }>).map((event) => event.event_id);
    expect(eventIds.length).toBeGreaterThan(10);
    const before = await rowsAbout(roomId, eventIds);
    // The test sees the tables it means to check: it would catch a purge that left any of them.
    for (const table of ["events.event_id", "rooms.room_id", "state_history.room_id", "current_state.room_id", "receipts.room_id", "account_data.room_id", "room_aliases.room_id", "client_txns.event_id"]) {
      expect(before[table]).toBeGreaterThan(0);
    }
    const keptBefore = await rowsAbout(keptId, []);
    const syncBefore = await call("GET", `${C}/sync?timeout=0`, guest.accessToken);
    const streamBefore = await homeserver.storage.maxStreamPos();

    const deleted = await call("DELETE", `${ADMIN}/v1/rooms/${q(roomId)}`, admin.accessToken, { block: true });
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ kicked_users: [guest.userId, owner.userId].sort(), failed_to_kick_users: [], local_aliases: ["#doomed:localhost"], new_room_id: null });

    expect(await rowsAbout(roomId, eventIds)).toEqual({ "blocked_rooms.room_id": 1 });
    expect(await rowsAbout(keptId, [])).toEqual(keptBefore);
    expect((await call("GET", `${ADMIN}/v1/rooms/${q(roomId)}`, admin.accessToken)).status).toBe(404);
    expect((await call("GET", `${C}/directory/room/${q("#doomed:localhost")}`)).status).toBe(404);
    const rooms = await call("GET", `${ADMIN}/v1/rooms`, admin.accessToken);
    expect(rooms.body.rooms.map((room: { room_id: string }) => room.room_id)).toEqual([keptId]);
    // Gone for members too, and blocked: no one gets back in.
    expect((await call("GET", `${C}/rooms/${q(roomId)}/messages?dir=b`, owner.accessToken)).status).toBeGreaterThanOrEqual(400);
    expect((await call("POST", `${C}/join/${q(roomId)}`, guest.accessToken, {})).status).toBe(403);
    expect((await call("GET", `${C}/rooms/${q(keptId)}/messages?dir=b&limit=100`, guest.accessToken)).body.chunk.length).toBeGreaterThan(8);

    // The former members' syncs go on without the room, before a restart too (in-memory caches).
    const includeLeave = q(JSON.stringify({ room: { include_leave: true } }));
    for (const member of [owner, guest]) {
      for (const query of ["timeout=0", `timeout=0&since=${q(syncBefore.body.next_batch)}`, `timeout=0&filter=${includeLeave}`, `timeout=0&filter=${includeLeave}&since=${q(syncBefore.body.next_batch)}`]) {
        const sync = await call("GET", `${C}/sync?${query}`, member.accessToken);
        expect([query, sync.status]).toEqual([query, 200]);
        for (const section of ["join", "invite", "leave", "knock"]) expect(Object.keys(sync.body.rooms?.[section] ?? {})).not.toContain(roomId);
      }
    }

    // The positions the purged room held stay used, across a restart: a new event is past them
    // and an incremental sync from a token taken before the purge still works.
    await homeserver.close();
    homeserver = await startHomeserver(settings);
    baseUrl = homeserver.urls[0]!;
    expect(await homeserver.storage.maxStreamPos()).toBeGreaterThanOrEqual(streamBefore);
    const sent = await call("PUT", `${C}/rooms/${q(keptId)}/send/m.room.message/after`, guest.accessToken, { msgtype: "m.text", body: "after" });
    expect(sent.status).toBe(200);
    const sync = await call("GET", `${C}/sync?timeout=0&since=${q(syncBefore.body.next_batch)}`, guest.accessToken);
    expect(sync.status).toBe(200);
    const timeline = sync.body.rooms.join[keptId].timeline.events as Array<{ event_id: string }>;
    expect(timeline.map((event) => event.event_id)).toContain(sent.body.event_id);
  });

  it("does not purge while a local member could not be made to leave, unless forced", async () => {
    const owner = await register("stuck");
    const roomId = (await call("POST", `${C}/createRoom`, owner.accessToken, {})).body.room_id as string;
    // The room service refusing the leave (a unit test of the deletion, on the server's real storage).
    const deletion = createRoomDelete({
      storage: homeserver.storage,
      rooms: { leave: () => Promise.reject(new Error("cannot leave")), forget: () => Promise.resolve(), purge: (id) => homeserver.storage.purge.purgeRoom(id) },
      serverName: "localhost",
      logger: pino({ level: "silent" }),
      now: Date.now,
    });
    await expect(deletion.delete("@root:localhost", roomId, { block: false, purge: true })).rejects.toThrow("send force_purge: true to purge anyway");
    expect(await homeserver.storage.events.getRoom(roomId)).toBeDefined();
    const forced = await deletion.delete("@root:localhost", roomId, { block: false, purge: true, forcePurge: true });
    expect(forced.failed_to_kick_users).toEqual([owner.userId]);
    expect(await homeserver.storage.events.getRoom(roomId)).toBeUndefined();
    expect(await rowsAbout(roomId, [])).toEqual({});
  });

  it("keeps the rows with purge: false", async () => {
    const admin = await register("root2");
    await homeserver.storage.accounts.updateUser(admin.userId, { isAdmin: true });
    const owner = await register("owner2");
    const roomId = (await call("POST", `${C}/createRoom`, owner.accessToken, {})).body.room_id as string;
    expect((await call("DELETE", `${ADMIN}/v1/rooms/${q(roomId)}`, admin.accessToken, { purge: false })).status).toBe(200);
    expect(await homeserver.storage.events.getRoom(roomId)).toBeDefined();
    expect((await rowsAbout(roomId, []))["events.room_id"]).toBeGreaterThan(0);
  });

  it("forgets the purged room in memory too: a purged, unblocked public room cannot be joined into again", async () => {
    const admin = await register("root3");
    await homeserver.storage.accounts.updateUser(admin.userId, { isAdmin: true });
    const owner = await register("owner3");
    const roomId = (await call("POST", `${C}/createRoom`, owner.accessToken, { preset: "public_chat" })).body.room_id as string;
    // The writer, the membership index and the recent-events cache now hold the room.
    expect((await call("PUT", `${C}/rooms/${q(roomId)}/send/m.room.message/warm`, owner.accessToken, { msgtype: "m.text", body: "warm" })).status).toBe(200);
    expect((await call("DELETE", `${ADMIN}/v1/rooms/${q(roomId)}`, admin.accessToken, { block: false })).status).toBe(200);
    // A cached head would place this join after the purged log; the room must be unknown instead.
    const rejoin = await call("POST", `${C}/join/${q(roomId)}`, owner.accessToken, {});
    expect(rejoin.status).toBe(404);
    expect(await rowsAbout(roomId, [])).toEqual({});
  });
});
