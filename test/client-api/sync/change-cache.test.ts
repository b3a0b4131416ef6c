// The stream change cache: what an incremental sync may skip.
import { StreamChangeCache } from "../../../src/client-api/sync/change-cache.js";

test("an entity with no change after the token may be skipped; one changed after it may not", () => {
  const cache = new StreamChangeCache(10);
  cache.record("room_events", ["!a:x"], 12);
  expect(cache.mayHaveChanged("room_events", "!a:x", 11)).toBe(true);
  expect(cache.mayHaveChanged("room_events", "!a:x", 12)).toBe(false);
  expect(cache.mayHaveChanged("room_events", "!b:x", 10)).toBe(false);
  // Streams are separate: receipts in the room were not recorded.
  expect(cache.mayHaveChanged("receipts", "!a:x", 10)).toBe(false);
  // A later position never moves an entity back.
  cache.record("room_events", ["!a:x"], 11);
  expect(cache.mayHaveChanged("room_events", "!a:x", 11)).toBe(true);
});

test("tokens from before start-up (below the floor) count as changed for every entity", () => {
  const cache = new StreamChangeCache(10);
  expect(cache.mayHaveChanged("to_device", "@u:x", 9)).toBe(true);
  expect(cache.mayHaveChanged("to_device", "@u:x", 0)).toBe(true);
  expect(cache.mayHaveChanged("to_device", "@u:x", 10)).toBe(false);
  expect(cache.anyMayHaveChanged("device_lists", ["@a:x", "@b:x"], 10)).toBe(false);
  cache.record("device_lists", ["@b:x"], 11);
  expect(cache.anyMayHaveChanged("device_lists", ["@a:x", "@b:x"], 10)).toBe(true);
});

test("a stream with no change after the token may be skipped as a whole; any entity's change counts", () => {
  const cache = new StreamChangeCache(10);
  expect(cache.streamMayHaveChanged("device_lists", 10)).toBe(false);
  // Below the floor nothing is known.
  expect(cache.streamMayHaveChanged("device_lists", 9)).toBe(true);
  cache.record("device_lists", ["@a:x", "@b:x"], 12);
  cache.record("device_lists", ["@a:x"], 11);
  expect(cache.streamMayHaveChanged("device_lists", 11)).toBe(true);
  expect(cache.streamMayHaveChanged("device_lists", 12)).toBe(false);
  expect(cache.streamMayHaveChanged("receipts", 10)).toBe(false);
});
