// Storage bench: appendEvent through storage.transaction, the room writer's path, on SQLite as
// configured for production (WAL, group commit, group-commit.ts) and on PostgreSQL when
// DATABASE_URL is set:
// - "1 writer": each transaction waits for the previous one (one event per request, the worst case);
// - "16 writers": 16 rooms appending at once, so the group commit batches concurrent transactions.
// For SQLite it prints the batches (COMMITs), the main thread's busy time per batch (event loop
// utilisation: what a server could not spend on requests), the time inside COMMIT, and how many
// times the WAL restarted after a checkpoint (autocheckpoints run inside a COMMIT, with their own
// fsyncs on the main thread). Run: node --import tsx bench/storage-append.ts
// To measure an older build, copy this file into its bench/ and run it there.
import { mkdtempSync, openSync, readSync, closeSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type BetterSqlite3 from "better-sqlite3";
import type { Knex } from "knex";
import { migrateDatabase, type DatabaseSettings } from "../src/storage/index.js";
import { createKnex } from "../src/storage/knex/connection.js";
import { createKnexStorage } from "../src/storage/knex/storage.js";
import type { Pdu } from "../src/core/events.js";

function message(roomId: string, n: number): Pdu {
  return {
    room_id: roomId,
    type: "m.room.message",
    sender: "@bench:example.org",
    origin_server_ts: 1_700_000_000_000 + n,
    content: { msgtype: "m.text", body: `message ${n} `.padEnd(200, "x") },
    hashes: { sha256: "x".repeat(43) },
    signatures: { "example.org": { "ed25519:a": "s".repeat(86) } },
    auth_events: ["$a", "$b", "$c"],
    prev_events: [`$${n - 1}`],
  };
}

/** Counts and times COMMIT statements on the SQLite connection (knex runs them through prepare). */
async function timeCommits(knex: Knex): Promise<{ count: number; ms: number; slow: number; slowMs: number }> {
  const client = knex.client as { acquireConnection(): Promise<BetterSqlite3.Database>; releaseConnection(c: unknown): Promise<void> };
  const connection = await client.acquireConnection();
  await client.releaseConnection(connection);
  // "slow": over 2 ms, which on this machine means an fsync ran inside COMMIT (a checkpoint's).
  const commits = { count: 0, ms: 0, slow: 0, slowMs: 0 };
  const prepare = connection.prepare.bind(connection);
  connection.prepare = ((sql: string) => {
    const statement = prepare(sql);
    if (sql !== "COMMIT;") return statement;
    return {
      reader: false,
      run(...args: unknown[]) {
        const started = performance.now();
        try {
          return statement.run(...args);
        } finally {
          const ms = performance.now() - started;
          commits.count++;
          commits.ms += ms;
          if (ms > 2) {
            commits.slow++;
            commits.slowMs += ms;
          }
        }
      },
    };
  }) as BetterSqlite3.Database["prepare"];
  return commits;
}

/** The WAL header's checkpoint sequence number: SQLite increments it each time the WAL restarts. */
function walCheckpointSeq(dbPath: string): number {
  const fd = openSync(`${dbPath}-wal`, "r");
  try {
    const header = Buffer.alloc(16);
    readSync(fd, header, 0, 16, 0);
    return header.readUInt32BE(12);
  } finally {
    closeSync(fd);
  }
}

async function run(label: string, settings: DatabaseSettings, writers: number, perWriter: number): Promise<void> {
  await migrateDatabase(settings);
  const knex = createKnex(settings);
  const storage = createKnexStorage(knex, settings.engine);
  const roomIds = Array.from({ length: writers }, (_, w) => `!bench${w}:example.org`);
  for (const roomId of roomIds) {
    await storage.events.createRoom({ roomId, roomVersion: "I.1", creator: "@bench:example.org", hubServer: "example.org", isPublic: false, createdTs: 0 });
  }
  const sqlitePath = settings.engine === "sqlite" ? settings.path : undefined;
  const commits = sqlitePath ? await timeCommits(knex) : undefined;
  const checkpointsBefore = sqlitePath ? walCheckpointSeq(sqlitePath) : 0;
  let streamPos = 0;
  const eluBefore = performance.eventLoopUtilization();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    roomIds.map(async (roomId) => {
      for (let n = 0; n < perWriter; n++) {
        const pos = ++streamPos;
        await storage.transaction((tx) => tx.events.appendEvent({ eventId: `$bench-${roomId}-${n}`, pdu: message(roomId, n), roomSeq: n, streamPos: pos }));
      }
    }),
  );
  const ms = performance.now() - started;
  const elu = performance.eventLoopUtilization(eluBefore);
  const cpu = process.cpuUsage(cpuBefore);
  const events = writers * perWriter;
  const parts = [`${label}: ${events} appends in ${ms.toFixed(0)} ms (${((events / ms) * 1000).toFixed(0)}/s)`, `CPU ${((cpu.user + cpu.system) / 1000 / events).toFixed(3)} ms/event`];
  if (commits && sqlitePath) {
    const batches = commits.count;
    parts.push(
      `${batches} batches (${(events / batches).toFixed(1)} events each)`,
      `main thread busy ${(elu.active / batches).toFixed(3)} ms/batch, ${(elu.active / events).toFixed(3)} ms/event`,
      `COMMIT ${(commits.ms / batches).toFixed(3)} ms/batch (${commits.slow} over 2 ms: ${commits.slowMs.toFixed(0)} ms in all)`,
      `WAL restarts ${walCheckpointSeq(sqlitePath) - checkpointsBefore}`,
    );
  }
  console.log(parts.join("; "));
  await storage.close();
}

const dir = mkdtempSync(join(tmpdir(), "bobbin-bench-"));
try {
  await run("SQLite  1 writer ", { engine: "sqlite", path: join(dir, "one.db") }, 1, 1000);
  await run("SQLite 16 writers", { engine: "sqlite", path: join(dir, "many.db") }, 16, 250);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
// Only a bench entry point reads the environment, as a test would.
const url = process.env.DATABASE_URL;
if (url) {
  const schema = `bench_${process.pid}`;
  await run("PostgreSQL 16 writers", { engine: "postgres", url, schema }, 16, 250);
  const knex = createKnex({ engine: "postgres", url });
  await knex.raw("DROP SCHEMA ?? CASCADE", [schema]);
  await knex.destroy();
} else {
  console.log("PostgreSQL: skipped (set DATABASE_URL)");
}
