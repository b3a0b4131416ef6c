// The send path's statements run on SQLite's connection without knex (src/storage/knex/sqlite-hot-path.ts):
// they must keep the transaction semantics knex gave them.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStorage } from "../../src/storage/index.js";
import type { Storage } from "../../src/storage/ports.js";
import { messageEvent, room } from "./builders.js";

const ROOM = "!hot:example.org";

describe("SQLite hot path", () => {
  let dir: string;
  let storage: Storage;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "bobbin-hot-path-"));
    storage = await openStorage({ engine: "sqlite", path: join(dir, "homeserver.db") });
    await storage.events.createRoom(room(ROOM));
  });
  afterEach(async () => {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a read outside a transaction waits for an open batch instead of seeing its uncommitted writes", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const batch = storage.transaction(async (tx) => {
      await tx.clientTxns.put("@alice:example.org", "DEV", "t1", "$first", 1);
      await gate;
    });
    // The batch is open and holds the connection with the row written but not committed.
    await new Promise((resolve) => setTimeout(resolve, 30));
    let seen: string | undefined | "pending" = "pending";
    const read = storage.clientTxns.get("@alice:example.org", "DEV", "t1").then((eventId) => (seen = eventId));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(seen).toBe("pending");
    release();
    await batch;
    await read;
    expect(seen).toBe("$first");
    // Idle connection: answered at once, and the first recorded event wins.
    await storage.transaction((tx) => tx.clientTxns.put("@alice:example.org", "DEV", "t1", "$second", 2));
    expect(await storage.clientTxns.get("@alice:example.org", "DEV", "t1")).toBe("$first");
    expect(await storage.clientTxns.get("@alice:example.org", "DEV", "t2")).toBeUndefined();
  });

  it("a failed transaction takes its events and transaction IDs with it, and the log goes on from the committed ones", async () => {
    await storage.transaction((tx) => tx.events.appendEvents([{ eventId: "$m0", pdu: messageEvent(ROOM, "zero"), roomSeq: 0, streamPos: 1 }]));
    await expect(
      storage.transaction(async (tx) => {
        await tx.events.appendEvents([{ eventId: "$m1", pdu: messageEvent(ROOM, "one"), roomSeq: 1, streamPos: 2 }]);
        await tx.clientTxns.put("@alice:example.org", "DEV", "t1", "$m1", 1);
        throw new Error("refused after writing");
      }),
    ).rejects.toThrow("refused after writing");
    expect(await storage.events.getEvent("$m1")).toBeUndefined();
    expect(await storage.clientTxns.get("@alice:example.org", "DEV", "t1")).toBeUndefined();
    // Seq 1 is free again; seq 3 would leave a gap and is refused.
    await expect(storage.transaction((tx) => tx.events.appendEvents([{ eventId: "$gap", pdu: messageEvent(ROOM, "gap"), roomSeq: 3, streamPos: 3 }]))).rejects.toThrow(/expects room_seq 1/);
    await storage.transaction((tx) => tx.events.appendEvents([{ eventId: "$m1b", pdu: messageEvent(ROOM, "one again"), roomSeq: 1, streamPos: 4 }]));
    const stored = await storage.events.getEvent("$m1b");
    expect(stored).toMatchObject({ roomSeq: 1, streamPos: 4, softFailed: false, redactedBy: null });
    expect(stored?.pdu.content).toEqual({ msgtype: "m.text", body: "one again" });
  });
});
