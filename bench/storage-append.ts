// Storage bench: 1,000 appendEvent calls, each in its own transaction (the room writer's worst
// case: one event per request), on SQLite with synchronous NORMAL and FULL, and on PostgreSQL when
// DATABASE_URL is set (production uses FULL, see connection.ts). Run: node --import tsx bench/storage-append.ts
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrateDatabase, type DatabaseSettings } from "../src/storage/index.js";
import { createKnex } from "../src/storage/knex/connection.js";
import { createKnexStorage } from "../src/storage/knex/storage.js";
import type { Pdu } from "../src/core/events.js";

const count = 1000;

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

async function run(label: string, settings: DatabaseSettings, synchronous?: "NORMAL" | "FULL"): Promise<void> {
  await migrateDatabase(settings);
  const knex = createKnex(settings);
  if (synchronous) await knex.raw(`PRAGMA synchronous = ${synchronous}`); // one connection: it sticks
  const storage = createKnexStorage(knex, settings.engine);
  const roomId = "!bench:example.org";
  await storage.events.createRoom({ roomId, roomVersion: "I.1", creator: "@bench:example.org", hubServer: "example.org", isPublic: false, createdTs: 0 });
  const started = process.hrtime.bigint();
  for (let n = 0; n < count; n++) {
    await storage.transaction((tx) => tx.events.appendEvent({ eventId: `$bench-${n}`, pdu: message(roomId, n), roomSeq: n, streamPos: n + 1 }));
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(`${label}: ${count} appends in ${ms.toFixed(0)} ms (${((count / ms) * 1000).toFixed(0)}/s, ${(ms / count).toFixed(2)} ms each)`);
  await storage.close();
}

const dir = mkdtempSync(join(tmpdir(), "bobbin-bench-"));
try {
  await run("SQLite WAL synchronous=NORMAL", { engine: "sqlite", path: join(dir, "normal.db") }, "NORMAL");
  await run("SQLite WAL synchronous=FULL  ", { engine: "sqlite", path: join(dir, "full.db") }, "FULL");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
// Only a bench entry point reads the environment, as a test would.
const url = process.env.DATABASE_URL;
if (url) {
  const schema = `bench_${process.pid}`;
  await run("PostgreSQL                   ", { engine: "postgres", url, schema });
  const knex = createKnex({ engine: "postgres", url });
  await knex.raw("DROP SCHEMA ?? CASCADE", [schema]);
  await knex.destroy();
} else {
  console.log("PostgreSQL: skipped (set DATABASE_URL)");
}
