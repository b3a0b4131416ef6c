// The server_keys repository on every engine: SQLite always, PostgreSQL when a server answers.
import { afterAll, describe, expect, it } from "@jest/globals";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStorage, type DatabaseSettings } from "../../../src/storage/index.js";
import type { ServerKeyRow } from "../../../src/storage/ports.js";
import { dropPostgresSchema, postgresUrl } from "../../support/postgres.js";

const dir = mkdtempSync(join(tmpdir(), "bobbin-server-keys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const pgUrl = await postgresUrl();

const engines: Array<[string, () => { settings: DatabaseSettings; drop(): Promise<void> }]> = [
  ["SQLite", () => ({ settings: { engine: "sqlite", path: join(dir, randomBytes(4).toString("hex"), "db") }, drop: async () => {} })],
];
if (pgUrl) {
  engines.push([
    "PostgreSQL",
    () => {
      const schema = `server_keys_${randomBytes(6).toString("hex")}`;
      return { settings: { engine: "postgres", url: pgUrl, schema }, drop: () => dropPostgresSchema(pgUrl, schema) };
    },
  ]);
}

const row = (keyId: string, changes: Partial<ServerKeyRow> = {}): ServerKeyRow => ({
  serverName: "remote.test",
  keyId,
  key: "k".repeat(43),
  validUntilTs: 1_700_000_000_000 + 7 * 86_400_000,
  expiredTs: null,
  fetchedTs: 1_700_000_000_000,
  response: { server_name: "remote.test", valid_until_ts: 1_700_000_000_000, verify_keys: {} },
  ...changes,
});

describe.each(engines)("server_keys on %s", (_name, database) => {
  it("stores rows, replaces them by (server, key ID), never drops others, and survives a reopen", async () => {
    const { settings, drop } = database();
    let storage = await openStorage(settings);
    try {
      await storage.serverKeys.putServerKeys([row("ed25519:a"), row("ed25519:b", { expiredTs: 5 })]);
      await storage.serverKeys.putServerKeys([row("ed25519:a", { fetchedTs: 1_800_000_000_000, key: "n".repeat(43) })]);
      await storage.serverKeys.putServerKeys([]);
      await storage.transaction((tx) => tx.serverKeys.putServerKeys([row("ed25519:c", { serverName: "other.test" })]));
      await storage.close();
      storage = await openStorage(settings);
      expect(await storage.serverKeys.getServerKeys("remote.test")).toEqual([
        row("ed25519:a", { fetchedTs: 1_800_000_000_000, key: "n".repeat(43) }),
        row("ed25519:b", { expiredTs: 5 }),
      ]);
      expect(await storage.serverKeys.getServerKeys("nobody.test")).toEqual([]);
    } finally {
      await storage.close();
      await drop();
    }
  });
});
