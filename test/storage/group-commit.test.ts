// SQLite's group commit syncing the WAL off the main thread (storage/knex/group-commit.ts): the WAL
// sync is injected so a test can hold it, or fail it, and watch what callers and other queries see.
import { fdatasync, fstatSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { jest } from "@jest/globals";
import Database from "better-sqlite3";
import type { Knex } from "knex";
import { migrateDatabase, openStorage } from "../../src/storage/index.js";
import { createAccountsRepo } from "../../src/storage/knex/accounts.js";
import { createKnex } from "../../src/storage/knex/connection.js";
import { createGroupCommit, type SyncFile } from "../../src/storage/knex/group-commit.js";
import { createKnexStorage } from "../../src/storage/knex/storage.js";
import { migrationSource } from "../../src/storage/migrations/index.js";
import type { Storage, StorageTx } from "../../src/storage/ports.js";
import { user } from "./builders.js";

const realSync = promisify(fdatasync);
const userId = (n: number): string => `@u${n}:example.org`;

/** A WAL sync that waits for the test: each call is listed, and synced or failed when told. */
function heldSync(): { sync: SyncFile; calls: Array<{ fd: number; release(): void; fail(error: Error): void }> } {
  const calls: Array<{ fd: number; release(): void; fail(error: Error): void }> = [];
  const sync: SyncFile = (fd) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ fd, release: () => void realSync(fd).then(resolve, reject), fail: reject });
    });
  return { sync, calls };
}

/** Turns the event loop until `condition` holds (the group commit works on immediates). */
async function until(what: string, condition: () => boolean): Promise<void> {
  for (let turn = 0; turn < 2_000; turn++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Lets the event loop run a while, for asserting that something did not happen. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 30));

/** Records the order in which promises settle, as "resolved n" / "rejected n". */
function track<T>(log: string[], name: string, promise: Promise<T>): Promise<T> {
  promise.then(
    () => log.push(`resolved ${name}`),
    () => log.push(`rejected ${name}`),
  );
  return promise;
}

let dir: string;
let path: string;
let knex: Knex;
let storage: Storage;
let reader: Database.Database | undefined;

async function open(sync?: SyncFile): Promise<void> {
  await migrateDatabase({ engine: "sqlite", path });
  knex = createKnex({ engine: "sqlite", path });
  storage = createKnexStorage(knex, "sqlite", { syncWal: sync });
}

/** Whether another connection (another process, a backup) sees the user: committed or not. */
function committed(n: number): boolean {
  reader ??= new Database(path, { readonly: true });
  return reader.prepare("SELECT 1 FROM users WHERE user_id = ?").get(userId(n)) !== undefined;
}

const synchronousOfPool = async (): Promise<number> => ((await knex.raw("PRAGMA synchronous")) as Array<{ synchronous: number }>)[0]!.synchronous;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bobbin-group-commit-"));
  path = join(dir, "homeserver.db");
});

afterEach(async () => {
  reader?.close();
  reader = undefined;
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("SQLite group commit, WAL synced off the main thread", () => {
  // Each test migrates a new database file: seconds on this shared 2-core machine under load.
  jest.setTimeout(30_000);
  it("resolves no caller before the WAL sync that follows its COMMIT completes, and syncs the -wal file", async () => {
    const { sync, calls } = heldSync();
    await open(sync);
    const log: string[] = [];
    const writes = Array.from({ length: 5 }, (_, n) => track(log, String(n), storage.transaction((tx) => tx.accounts.createUser(user(userId(n))))));
    await until("the WAL sync", () => calls.length === 1);
    // Committed (another connection reads it), but not yet durable: nobody is answered.
    expect([0, 1, 2, 3, 4].map(committed)).toEqual([true, true, true, true, true]);
    await settle();
    expect(log).toEqual([]);
    // The descriptor synced is the database's WAL file.
    expect(fstatSync(calls[0]!.fd).ino).toBe(statSync(`${path}-wal`).ino);

    calls[0]!.release();
    await Promise.all(writes);
    expect(log).toEqual(["resolved 0", "resolved 1", "resolved 2", "resolved 3", "resolved 4"]);
    expect(calls).toHaveLength(1);
  });

  it("keeps queries outside transactions waiting until the commit is durable", async () => {
    const { sync, calls } = heldSync();
    await open(sync);
    const write = storage.transaction((tx) => tx.accounts.createUser(user(userId(1))));
    await until("the WAL sync", () => calls.length === 1);
    let seen: string | undefined | null = null;
    const read = storage.accounts.getUser(userId(1)).then((row) => (seen = row?.userId));
    await settle();
    expect(seen).toBeNull();

    calls[0]!.release();
    await Promise.all([write, read]);
    expect(seen).toBe(userId(1));
  });

  it("runs the next batch while the WAL syncs, and resolves it only after a sync begun after its COMMIT", async () => {
    const { sync, calls } = heldSync();
    await open(sync);
    const log: string[] = [];
    const first = track(log, "first", storage.transaction((tx) => tx.accounts.createUser(user(userId(1)))));
    await until("the first sync", () => calls.length === 1);
    const second = track(log, "second", storage.transaction((tx) => tx.accounts.createUser(user(userId(2)))));
    const third = track(log, "third", storage.transaction((tx) => tx.accounts.createUser(user(userId(3)))));
    // Pipelined: committed during the first sync, which began before their COMMIT.
    await until("the second batch's commit", () => committed(3));
    await settle();
    expect(log).toEqual([]);
    expect(calls).toHaveLength(1);

    calls[0]!.release();
    await first;
    await until("the second sync", () => calls.length === 2);
    await settle();
    expect(log).toEqual(["resolved first"]);

    calls[1]!.release();
    await Promise.all([second, third]);
    expect(log).toEqual(["resolved first", "resolved second", "resolved third"]);
  });

  it("rejects a failing work at once and rolls back only its own writes", async () => {
    const { sync, calls } = heldSync();
    await open(sync);
    const log: string[] = [];
    const before = track(log, "before", storage.transaction((tx) => tx.accounts.createUser(user(userId(1)))));
    const failing = track(
      log,
      "failing",
      storage.transaction(async (tx) => {
        await tx.accounts.createUser(user(userId(2)));
        throw new Error("boom");
      }),
    );
    const after = track(log, "after", storage.transaction((tx) => tx.accounts.createUser(user(userId(3)))));
    await expect(failing).rejects.toThrow("boom");
    await until("the WAL sync", () => calls.length === 1);
    await settle();
    expect(log).toEqual(["rejected failing"]);
    expect([1, 2, 3].map(committed)).toEqual([true, false, true]);

    calls[0]!.release();
    await Promise.all([before, after]);
    expect(log).toEqual(["rejected failing", "resolved before", "resolved after"]);
  });

  it("refuses the queries a work left running or started after it settled; the batch commits without them", async () => {
    await open();
    let leftRunning: Promise<unknown> | undefined;
    let kept: StorageTx | undefined;
    const first = storage.transaction(async (tx) => {
      await tx.accounts.createUser(user(userId(1)));
      // Started, not awaited: it would reach the database only after this work returned.
      leftRunning = tx.accounts.createUser(user(userId(2)));
      leftRunning.catch(() => {});
      kept = tx;
    });
    let throughKept: Promise<unknown> | undefined;
    const second = storage.transaction(async (tx) => {
      // The first work's handle, kept beyond it, builds no query any more: not even while
      // another work runs, whose savepoint it would otherwise write into.
      throughKept = kept!.accounts.createUser(user(userId(4)));
      await throughKept.catch(() => {});
      await tx.accounts.createUser(user(userId(3)));
    });
    await Promise.all([first, second]);
    await expect(leftRunning).rejects.toThrow("did not await");
    await expect(throughKept).rejects.toThrow("did not await");
    expect([1, 2, 3, 4].map(committed)).toEqual([true, false, true, false]);
  });

  it("commits a batch under synchronous=NORMAL and gives the connection back under FULL", async () => {
    await open();
    // The group commit itself, whose works get the knex transaction to ask SQLite.
    const groupCommit = createGroupCommit(knex, { maxBatch: 64 });
    const synchronousOf = async (trx: Knex.Transaction): Promise<number> => ((await trx.raw("PRAGMA synchronous")) as Array<{ synchronous: number }>)[0]!.synchronous;
    try {
      expect(await synchronousOfPool()).toBe(2);
      // Two rounds: switching must work every time the connection is taken, not only the first.
      for (const round of [0, 10]) {
        const inBatch = await Promise.all(
          [1, 2].map((n) =>
            groupCommit.transaction(async (trx) => {
              await createAccountsRepo(trx, () => undefined).createUser(user(userId(round + n)));
              return synchronousOf(trx);
            }),
          ),
        );
        expect(inBatch).toEqual([1, 1]);
        // Autocommit writes outside storage.transaction fsync by themselves again.
        expect(await synchronousOfPool()).toBe(2);
        await storage.accounts.createUser(user(userId(round + 3)));
        expect(await synchronousOfPool()).toBe(2);
      }
    } finally {
      groupCommit.close();
    }
  });

  it("after a failed WAL sync, rejects that batch and every later write, and refuses autocommit writes", async () => {
    const { sync, calls } = heldSync();
    await open(sync);
    await storage.accounts.createUser(user(userId(0)));
    const log: string[] = [];
    const first = track(log, "first", storage.transaction((tx) => tx.accounts.createUser(user(userId(1)))));
    await until("the WAL sync", () => calls.length === 1);
    const pipelined = track(log, "pipelined", storage.transaction((tx) => tx.accounts.createUser(user(userId(2)))));
    await until("the pipelined commit", () => committed(2));

    expect(storage.writeFailure()).toBeUndefined();
    calls[0]!.fail(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
    await expect(first).rejects.toThrow(/refuses writes/);
    await expect(first).rejects.toMatchObject({ cause: { code: "EIO" } });
    await expect(pipelined).rejects.toThrow(/refuses writes/);
    expect(log).toEqual(["rejected first", "rejected pipelined"]);
    // What /health reports.
    expect(storage.writeFailure()?.message).toMatch(/refuses writes/);
    // The one sync that failed is not retried: a later fsync could succeed without the lost pages.
    expect(calls).toHaveLength(1);

    await expect(storage.transaction((tx) => tx.accounts.createUser(user(userId(3))))).rejects.toThrow(/refuses writes/);
    // Not rejects.toThrow: better-sqlite3 registers its SqliteError class once per process, so in a
    // jest worker that ran another test file first it is not an Error of this file's realm.
    const refused = await storage.accounts.createUser(user(userId(4))).then(
      () => undefined,
      (error: { message?: string }) => error,
    );
    expect(refused?.message).toMatch(/readonly/);
    // Reads still work; what was durable before the failure is there.
    expect((await storage.accounts.getUser(userId(0)))?.userId).toBe(userId(0));
    expect(calls).toHaveLength(1);
  });

  it("keeps everything it acknowledged across close and reopen", async () => {
    await open();
    const acknowledged: number[] = [];
    await Promise.all(
      Array.from({ length: 200 }, (_, n) =>
        storage.transaction(async (tx) => {
          await tx.accounts.createUser(user(userId(n)));
          if (n % 7 === 3) throw new Error("rolled back");
        }).then(
          () => acknowledged.push(n),
          () => undefined,
        ),
      ),
    );
    expect(acknowledged).toHaveLength(200 - 29);
    await storage.close();

    storage = await openStorage({ engine: "sqlite", path });
    for (let n = 0; n < 200; n++) expect(((await storage.accounts.getUser(userId(n))) !== undefined)).toBe(acknowledged.includes(n));
  });

  it("on an in-memory database, commits without a WAL sync", async () => {
    const { sync, calls } = heldSync();
    knex = createKnex({ engine: "sqlite", path: ":memory:" });
    await knex.migrate.latest({ migrationSource: migrationSource() });
    storage = createKnexStorage(knex, "sqlite", { syncWal: sync });
    await Promise.all([1, 2, 3].map((n) => storage.transaction((tx) => tx.accounts.createUser(user(userId(n))))));
    expect(calls).toHaveLength(0);
    expect((await storage.accounts.getUser(userId(3)))?.userId).toBe(userId(3));
  });
});
