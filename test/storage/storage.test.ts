// The storage suite on every engine: SQLite always, PostgreSQL when a server answers (DATABASE_URL
// or 127.0.0.1:5432); each PostgreSQL test gets its own schema, dropped afterwards.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import Database from "better-sqlite3";
import { openStorage } from "../../src/storage/index.js";
import { dropPostgresSchema, postgresUrl } from "../support/postgres.js";
import { alice, user } from "./builders.js";
import { describeStorage, type EngineFixture } from "./describe-storage.js";

const sqliteDir = mkdtempSync(join(tmpdir(), "bobbin-storage-"));
afterAll(() => rmSync(sqliteDir, { recursive: true, force: true }));

let sqliteDatabases = 0;
const sqlite: EngineFixture = {
  engine: "sqlite",
  async newDatabase() {
    const path = join(sqliteDir, `db-${++sqliteDatabases}`, "homeserver.db");
    return {
      settings: { engine: "sqlite", path },
      async drop() {
        rmSync(join(path, ".."), { recursive: true, force: true });
      },
    };
  },
};

const pgUrl = await postgresUrl();
const postgres: EngineFixture | undefined = pgUrl
  ? {
      engine: "postgres",
      async newDatabase() {
        const schema = `storage_test_${randomBytes(6).toString("hex")}`;
        return {
          settings: { engine: "postgres", url: pgUrl, schema, poolSize: 10 },
          drop: () => dropPostgresSchema(pgUrl, schema),
        };
      },
    }
  : undefined;

describeStorage("SQLite", sqlite);
describeStorage("PostgreSQL", postgres);

describe("SQLite group commit", () => {
  it("resolves a transaction only once another connection can read what it wrote", async () => {
    const { settings, drop } = await sqlite.newDatabase();
    if (settings.engine !== "sqlite") throw new Error("unreachable");
    const storage = await openStorage(settings);
    const reader = new Database(settings.path, { readonly: true });
    const committed = (n: number): boolean => reader.prepare("SELECT 1 FROM users WHERE user_id = ?").get(`@u${n}:example.org`) !== undefined;
    try {
      const seenAtResolution: boolean[] = [];
      await Promise.all(
        Array.from({ length: 40 }, (_, n) =>
          storage
            .transaction(async (tx) => {
              await tx.accounts.createUser(user(`@u${n}:example.org`));
              // Still inside the batch: nothing is committed yet, not even the works before.
              expect(committed(n)).toBe(false);
            })
            .then(() => seenAtResolution.push(committed(n))),
        ),
      );
      expect(seenAtResolution).toEqual(Array.from({ length: 40 }, () => true));
    } finally {
      reader.close();
      await storage.close();
      await drop();
    }
  });

  it("fails queued transactions, rather than hanging, once the storage is closed", async () => {
    const { settings, drop } = await sqlite.newDatabase();
    const storage = await openStorage(settings);
    await storage.close();
    await expect(storage.transaction((tx) => tx.accounts.getUser(alice))).rejects.toThrow();
    await drop();
  });
});

describe("SQLite file settings", () => {
  it("leaves the database in WAL mode", async () => {
    const { settings, drop } = await sqlite.newDatabase();
    if (settings.engine !== "sqlite") throw new Error("unreachable");
    const storage = await openStorage(settings);
    await storage.close();
    const db = new Database(settings.path, { readonly: true });
    try {
      // journal_mode=WAL is persistent in the file; synchronous and foreign_keys are per connection.
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    } finally {
      db.close();
      await drop();
    }
  });
});
