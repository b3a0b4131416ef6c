// Moving from SQLite to PostgreSQL (docs/postgres.md): a SQLite database a real server populated
// (users, devices, rooms, messages, receipts, account data, filters, to-device messages, keys) is
// copied by scripts/port-database.ts; every table has the same rows, the sequences continue after
// the copied IDs, and a server started on the copy serves the same users, rooms and access
// tokens, and answers the sync tokens clients got before the move.
import { jest } from "@jest/globals";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pino from "pino";
import { startHomeserver, type Homeserver, type HomeserverSettings } from "../../src/app/homeserver.js";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import type { SigningKey } from "../../src/core/signing.js";
import type { DatabaseSettings } from "../../src/storage/index.js";
import { createKnex } from "../../src/storage/knex/connection.js";
import { PortError, portDatabase } from "../../src/storage/knex/port-database.js";
import { dropPostgresSchema, postgresUrl } from "../support/postgres.js";

jest.setTimeout(60_000);

const url = await postgresUrl();
const describeOnPostgres = url ? describe : describe.skip;
const C = "/_matrix/client/v3";
const q = encodeURIComponent;

describeOnPostgres("porting a SQLite database to PostgreSQL", () => {
  let dataDir: string;
  let sqlite: DatabaseSettings & { engine: "sqlite" };
  const schemas: string[] = [];
  const signingKey: SigningKey = { keyId: "ed25519:test", signer: nativeEd25519.signerFromSeed(randomBytes(32)) };
  const settingsOn = (database: DatabaseSettings): HomeserverSettings => ({
    serverName: "localhost",
    database,
    signingKey,
    listeners: [{ host: "127.0.0.1", port: 0 }],
    registration: { enabled: true, allowGuests: false },
    rateLimits: {},
    maxRequestBytes: 1024 * 1024,
    logger: pino({ level: process.env.LOG_LEVEL ?? "silent" }),
  });
  const newPostgres = (): DatabaseSettings & { engine: "postgres" } => {
    const schema = `port_${randomBytes(5).toString("hex")}`;
    schemas.push(schema);
    return { engine: "postgres", url: url!, schema };
  };

  async function call(server: Homeserver, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(server.urls[0]! + path, {
      method,
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: response.status, body: await response.json() };
  }

  /** Every table's rows, sorted, with booleans and numbers compared as values. */
  async function dump(database: DatabaseSettings): Promise<Record<string, string[]>> {
    const knex = createKnex(database);
    try {
      const tables =
        database.engine === "sqlite"
          ? ((await knex.raw("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'knex_%'")) as Array<{ name: string }>)
          : ((await knex.raw("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name NOT LIKE 'knex_%'")) as { rows: Array<{ name: string }> }).rows;
      const result: Record<string, string[]> = {};
      for (const { name } of tables) {
        const rows = (await knex(name).select("*")) as Array<Record<string, unknown>>;
        result[name] = rows
          .map((row) => JSON.stringify(Object.entries(row).sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, value]) => [key, typeof value === "boolean" ? Number(value) : value])))
          .sort();
      }
      return result;
    } finally {
      await knex.destroy();
    }
  }

  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), "bobbin-port-"));
    sqlite = { engine: "sqlite", path: join(dataDir, "homeserver.db") };
  });
  afterAll(async () => {
    for (const schema of schemas) await dropPostgresSchema(url!, schema);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("copies every row; a server on the copy serves the same users, rooms, tokens and sync positions", async () => {
    // 1. A server on SQLite with some of everything.
    const before = await startHomeserver(settingsOn(sqlite));
    const sessions: Array<{ userId: string; token: string }> = [];
    for (const name of ["alice", "bob", "carol"]) {
      const first = await call(before, "POST", `${C}/register`, undefined, { username: name, password: "a long password" });
      const done = await call(before, "POST", `${C}/register`, undefined, { username: name, password: "a long password", auth: { type: "m.login.dummy", session: first.body.session } });
      sessions.push({ userId: done.body.user_id, token: done.body.access_token });
    }
    const [alice, bob, carol] = sessions as [{ userId: string; token: string }, { userId: string; token: string }, { userId: string; token: string }];
    await before.storage.accounts.updateUser(alice.userId, { isAdmin: true });
    const roomIds: string[] = [];
    for (let r = 0; r < 3; r++) {
      const roomId = (await call(before, "POST", `${C}/createRoom`, alice.token, { preset: "public_chat", name: `room ${r}`, room_alias_name: `room${r}` })).body.room_id as string;
      roomIds.push(roomId);
      expect((await call(before, "POST", `${C}/join/${q(roomId)}`, bob.token, {})).status).toBe(200);
      for (let i = 0; i < 20; i++) expect((await call(before, "PUT", `${C}/rooms/${q(roomId)}/send/m.room.message/r${r}m${i}`, i % 2 ? bob.token : alice.token, { msgtype: "m.text", body: `${r}.${i}` })).status).toBe(200);
    }
    const lastEvent = (await call(before, "GET", `${C}/rooms/${q(roomIds[0]!)}/messages?dir=b&limit=1`, bob.token)).body.chunk[0].event_id as string;
    expect((await call(before, "POST", `${C}/rooms/${q(roomIds[0]!)}/receipt/m.read/${q(lastEvent)}`, bob.token, {})).status).toBe(200);
    expect((await call(before, "PUT", `${C}/user/${q(bob.userId)}/account_data/m.direct`, bob.token, { [alice.userId]: [roomIds[1]] })).status).toBe(200);
    const filterIds: string[] = [];
    for (let i = 0; i < 3; i++) filterIds.push((await call(before, "POST", `${C}/user/${q(bob.userId)}/filter`, bob.token, { room: { timeline: { limit: i + 1 } } })).body.filter_id);
    expect((await call(before, "PUT", `${C}/sendToDevice/m.test/t1`, alice.token, { messages: { [carol.userId]: { "*": { hello: "carol" } } } })).status).toBe(200);
    expect((await call(before, "POST", `${C}/keys/upload`, carol.token, { one_time_keys: { "signed_curve25519:AAAAAQ": { key: "a".repeat(43) } } })).status).toBe(200);
    const bobSync = await call(before, "GET", `${C}/sync?timeout=0`, bob.token);
    const streamPos = await before.storage.maxStreamPos();
    await before.close();

    // 2. The script, as documented.
    const postgres = newPostgres();
    const target = new URL(url!);
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "scripts/port-database.ts", "--from", sqlite.path, "--to", target.toString(), "--schema", postgres.schema!, "--batch-size", "7"], {
      cwd: process.cwd(),
    });
    expect(stdout).toMatch(/^events: \d+ rows$/m);
    expect(stdout).toMatch(/^copied \d+ rows in \d+ tables/m);

    // 3. The same rows in every table.
    const [copiedFrom, copiedTo] = [await dump(sqlite), await dump(postgres)];
    expect(Object.keys(copiedTo).sort()).toEqual(Object.keys(copiedFrom).sort());
    expect(copiedFrom.events!.length).toBeGreaterThan(60);
    for (const table of Object.keys(copiedFrom)) expect([table, copiedTo[table]]).toEqual([table, copiedFrom[table]]);

    // 4. A server on the copy.
    const after = await startHomeserver(settingsOn(postgres));
    try {
      expect(await after.storage.maxStreamPos()).toBe(streamPos);
      // The same access tokens, users and rooms.
      const joined = await call(after, "GET", `${C}/joined_rooms`, bob.token);
      expect(joined.status).toBe(200);
      expect([...joined.body.joined_rooms].sort()).toEqual([...roomIds].sort());
      expect((await call(after, "GET", `${C}/directory/room/${q("#room1:localhost")}`)).body.room_id).toBe(roomIds[1]);
      const login = await call(after, "POST", `${C}/login`, undefined, { type: "m.login.password", identifier: { type: "m.id.user", user: "carol" }, password: "a long password" });
      expect(login.status).toBe(200);
      const admins = await call(after, "GET", `/_synapse/admin/v2/users/${q(alice.userId)}`, alice.token);
      expect(admins.body.admin).toBe(true);
      const history = await call(after, "GET", `${C}/rooms/${q(roomIds[2]!)}/messages?dir=b&limit=100`, alice.token);
      expect(history.body.chunk.filter((event: { type: string }) => event.type === "m.room.message")).toHaveLength(20);
      // A sync token from before the move: nothing new, then exactly the one new message.
      const idle = await call(after, "GET", `${C}/sync?timeout=0&since=${q(bobSync.body.next_batch)}`, bob.token);
      expect(idle.status).toBe(200);
      expect(idle.body.rooms?.join?.[roomIds[0]!]?.timeline?.events ?? []).toEqual([]);
      const sent = await call(after, "PUT", `${C}/rooms/${q(roomIds[0]!)}/send/m.room.message/after`, alice.token, { msgtype: "m.text", body: "after the move" });
      expect(sent.status).toBe(200);
      const next = await call(after, "GET", `${C}/sync?timeout=0&since=${q(bobSync.body.next_batch)}`, bob.token);
      expect(next.body.rooms.join[roomIds[0]!].timeline.events.map((event: { event_id: string }) => event.event_id)).toEqual([sent.body.event_id]);
      // Carol's to-device message and one-time key came along.
      const carolSync = await call(after, "GET", `${C}/sync?timeout=0`, carol.token);
      expect(carolSync.body.to_device.events).toEqual([expect.objectContaining({ type: "m.test", sender: alice.userId, content: { hello: "carol" } })]);
      expect(carolSync.body.device_one_time_keys_count.signed_curve25519).toBe(1);
      // Sequences continue after the copied IDs: a new filter gets a new ID, and the old ones still work.
      const filter = await call(after, "POST", `${C}/user/${q(bob.userId)}/filter`, bob.token, { room: { timeline: { limit: 9 } } });
      expect(filter.status).toBe(200);
      expect(filterIds).not.toContain(filter.body.filter_id);
      expect((await call(after, "GET", `${C}/user/${q(bob.userId)}/filter/${filterIds[2]}`, bob.token)).body).toEqual({ room: { timeline: { limit: 3 } } });
    } finally {
      await after.close();
    }
  });

  it("refuses a target that holds data, and a source that is not a Bobbin database", async () => {
    const postgres = newPostgres();
    await portDatabase(sqlite, postgres);
    await expect(portDatabase(sqlite, postgres)).rejects.toThrow(new PortError("the target is not empty (table users has rows): port into a new database or schema"));
    await expect(portDatabase({ engine: "sqlite", path: join(dataDir, "missing.db") }, newPostgres())).rejects.toThrow(PortError);
    const empty = { engine: "sqlite" as const, path: join(dataDir, "empty.db") };
    const knex = createKnex(empty);
    await knex.raw("CREATE TABLE unrelated (x integer)");
    await knex.destroy();
    await expect(portDatabase(empty, newPostgres())).rejects.toThrow("the source is not a Bobbin database (no migrations applied)");
  });
});
