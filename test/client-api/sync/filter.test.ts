// Sync filters resolved once and kept (sync/filter.ts SyncFilterCache), on a real SQLite store.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SyncFilterCache } from "../../../src/client-api/sync/filter.js";
import { openStorage } from "../../../src/storage/index.js";
import type { FiltersRepo, Storage } from "../../../src/storage/ports.js";

let dir: string;
let storage: Storage;
/** The store's filters, counting the reads that reach it. */
let filters: FiltersRepo & { reads: number };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bobbin-sync-filter-"));
  storage = await openStorage({ engine: "sqlite", path: join(dir, "homeserver.db") });
  filters = {
    reads: 0,
    create: (userId, filter) => storage.transaction((tx) => tx.filters.create(userId, filter)),
    get(userId, filterId) {
      this.reads += 1;
      return storage.filters.get(userId, filterId);
    },
  };
});
afterAll(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

const INLINE = JSON.stringify({ room: { timeline: { limit: 50, types: ["m.room.message"] } }, presence: { types: [] } });

test("an inline filter is parsed once and shared, frozen, by every sync that sends the same text", async () => {
  const cache = new SyncFilterCache(filters);
  const first = await cache.resolve("@alice:x", INLINE);
  expect(first.timeline.limit).toBe(50);
  expect(first.timeline.types).toEqual(["m.room.message"]);
  // Inline JSON says everything itself: another user sending the same text gets the same filter.
  expect(await cache.resolve("@bob:x", INLINE)).toBe(first);
  expect(Object.isFrozen(first) && Object.isFrozen(first.timeline) && Object.isFrozen(first.timeline.types)).toBe(true);
  expect(() => (first.timeline.types as string[]).push("m.room.member")).toThrow(TypeError);
  // No filter at all: the defaults, also kept.
  expect(await cache.resolve("@alice:x", undefined)).toBe(await cache.resolve("@alice:x", ""));
});

test("bad inline JSON is refused every time, not remembered", async () => {
  const cache = new SyncFilterCache(filters);
  for (let i = 0; i < 2; i++) await expect(cache.resolve("@alice:x", "{not json")).rejects.toMatchObject({ errcode: "M_BAD_JSON", httpStatus: 400 });
});

test("an uploaded filter is read once per owner, and stays the owner's only", async () => {
  const cache = new SyncFilterCache(filters);
  const filterId = await filters.create("@alice:x", { room: { timeline: { limit: 3 } } });
  const readsBefore = filters.reads;
  const first = await cache.resolve("@alice:x", filterId);
  expect(first.timeline.limit).toBe(3);
  expect(await cache.resolve("@alice:x", filterId)).toBe(first);
  expect(filters.reads - readsBefore).toBe(1);
  // Filter IDs are checked against their owner (Client-Server API "Filtering"): the cache must not hand it to anyone else.
  await expect(cache.resolve("@mallory:x", filterId)).rejects.toMatchObject({ errcode: "M_NOT_FOUND", httpStatus: 404 });
  await expect(cache.resolve("@alice:x", "999999")).rejects.toMatchObject({ errcode: "M_NOT_FOUND" });
});

test("past its capacity the oldest filter is dropped and read again when asked for", async () => {
  const cache = new SyncFilterCache(filters, 2);
  const ids = [];
  for (let i = 1; i <= 3; i++) ids.push(await filters.create("@alice:x", { room: { timeline: { limit: i } } }));
  const readsBefore = filters.reads;
  for (const id of ids) await cache.resolve("@alice:x", id);
  expect(filters.reads - readsBefore).toBe(3);
  // The newest two are kept; the first was dropped.
  expect((await cache.resolve("@alice:x", ids[2]!)).timeline.limit).toBe(3);
  expect(filters.reads - readsBefore).toBe(3);
  expect((await cache.resolve("@alice:x", ids[0]!)).timeline.limit).toBe(1);
  expect(filters.reads - readsBefore).toBe(4);
});
