// The MLS overlay's storage on SQLite and PostgreSQL (when a server answers): group records, and
// key expiry at claim time (MLS wire contract section 3), including concurrent claims.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { openStorage, type DatabaseSettings } from "../../src/storage/index.js";
import type { OneTimeKeyRow, Storage } from "../../src/storage/ports.js";
import { dropPostgresSchema, postgresUrl } from "../support/postgres.js";

const sqliteDir = mkdtempSync(join(tmpdir(), "bobbin-mls-storage-"));
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));
const pgUrl = await postgresUrl();

const engines: Array<[string, () => { settings: DatabaseSettings; drop(): Promise<void> }]> = [
  ["SQLite", () => ({ settings: { engine: "sqlite", path: join(sqliteDir, `${randomBytes(4).toString("hex")}.db`) }, drop: async () => {} })],
];
if (pgUrl) {
  engines.push([
    "PostgreSQL",
    () => {
      const schema = `mls_test_${randomBytes(6).toString("hex")}`;
      return { settings: { engine: "postgres", url: pgUrl, schema, poolSize: 10 }, drop: () => dropPostgresSchema(pgUrl, schema) };
    },
  ]);
}

const KP = "m.mls.v1.key_package.dhkemx25519-aes128gcm-sha256-ed25519";
const key = (id: string, extra: Partial<OneTimeKeyRow> = {}): OneTimeKeyRow => ({ userId: "@a:x", deviceId: "D", keyId: `${KP}:${id}`, algorithm: KP, key: `kp-${id}`, fallback: false, ...extra });

describe.each(engines)("MLS storage on %s", (_name, fixture) => {
  let storage: Storage;
  let drop: () => Promise<void>;
  beforeEach(async () => {
    const db = fixture();
    drop = db.drop;
    storage = await openStorage(db.settings);
  });
  afterEach(async () => {
    await storage.close();
    await drop();
  });

  test("a group record is stored and replaced in a transaction", async () => {
    expect(await storage.mls.getGroup("!r:x")).toBeUndefined();
    await storage.transaction((tx) => tx.mls.putGroup({ roomId: "!r:x", epoch: 1, groupInfo: "AAAA", commitEventId: "$1", devices: [{ userId: "@a:x", deviceId: "D" }] }));
    await storage.transaction((tx) => tx.mls.putGroup({ roomId: "!r:x", epoch: 2, groupInfo: "BBBB", commitEventId: "$2", devices: [{ userId: "@a:x", deviceId: "D" }, { userId: "@b:x", deviceId: "E" }] }));
    expect(await storage.mls.getGroup("!r:x")).toEqual({ roomId: "!r:x", epoch: 2, groupInfo: "BBBB", commitEventId: "$2", devices: [{ userId: "@a:x", deviceId: "D" }, { userId: "@b:x", deviceId: "E" }] });
    // A failed transaction leaves the record as it was (the commit event and the record go together).
    await expect(storage.transaction(async (tx) => {
      await tx.mls.putGroup({ roomId: "!r:x", epoch: 3, groupInfo: "CCCC", commitEventId: "$3", devices: [] });
      throw new Error("the event append failed");
    })).rejects.toThrow("append failed");
    expect((await storage.mls.getGroup("!r:x"))?.epoch).toBe(2);
  });

  test("each epoch's commit event is recorded; a pending Welcome is recorded once, bound once, listed and deleted", async () => {
    await storage.mls.putGroup({ roomId: "!r:x", epoch: 1, groupInfo: "AAAA", commitEventId: "$1", devices: [] });
    await storage.mls.putGroup({ roomId: "!r:x", epoch: 2, groupInfo: "BBBB", commitEventId: "$2", devices: [] });
    expect([await storage.mls.getEpochCommit("!r:x", 1), await storage.mls.getEpochCommit("!r:x", 2), await storage.mls.getEpochCommit("!r:x", 3)]).toEqual(["$1", "$2", undefined]);

    const row = { roomId: "!r:x", commitHash: "ab", epoch: 2, senderUser: "@a:x", senderDevice: "D", welcome: "WWWW", targets: [{ userId: "@b:x", deviceId: "E" }], eventId: null, createdTs: 5 };
    await storage.mls.addPendingWelcome(row);
    await storage.mls.addPendingWelcome({ ...row, welcome: "OTHER", createdTs: 6 });
    await storage.mls.addPendingWelcome({ ...row, commitHash: "cd", createdTs: 7 });
    expect(await storage.mls.getPendingWelcome("!r:x", "ab")).toEqual(row);
    expect(await storage.transaction((tx) => tx.mls.bindPendingWelcome("!r:x", "ab", "$3"))).toBe(true);
    // Bound once: a second binding (another append of the same commit) changes nothing.
    expect(await storage.mls.bindPendingWelcome("!r:x", "ab", "$other")).toBe(false);
    expect(await storage.mls.bindPendingWelcome("!r:x", "none", "$3")).toBe(false);
    expect((await storage.mls.listPendingWelcomes(10)).map((w) => [w.commitHash, w.eventId])).toEqual([["ab", "$3"], ["cd", null]]);
    await storage.mls.deletePendingWelcome("!r:x", "ab");
    expect((await storage.mls.listPendingWelcomes(10)).map((w) => w.commitHash)).toEqual(["cd"]);
  });

  test("expired keys are never claimed; one-time keys are claimed once even concurrently; the fallback after them", async () => {
    const now = 1_000_000;
    await storage.keys.addOneTimeKeys([key("old", { expiresTs: now - 1 }), ...Array.from({ length: 8 }, (_, i) => key(`k${i}`, { expiresTs: now + 60_000 }))]);
    await storage.keys.setFallbackKey(key("fb", { fallback: true, expiresTs: now + 60_000 }));
    const claims = await Promise.all(Array.from({ length: 20 }, () => storage.transaction((tx) => tx.keys.claimKey("@a:x", "D", KP, now))));
    const ids = claims.map((c) => c?.keyId);
    expect(ids).not.toContain(`${KP}:old`);
    const oneTime = ids.filter((id) => id !== `${KP}:fb`);
    expect(new Set(oneTime).size).toBe(8);
    expect(oneTime).toHaveLength(8);
    expect(ids.filter((id) => id === `${KP}:fb`)).toHaveLength(12);
    expect(claims[0]?.expiresTs).toBe(now + 60_000);
    // Past its lifetime the fallback is not served either.
    expect(await storage.transaction((tx) => tx.keys.claimKey("@a:x", "D", KP, now + 60_000))).toBeUndefined();
  });
});
