// The storage suite every engine runs (Dendrite's habit: one suite, every engine). Each test gets a
// fresh database from the engine's fixture; `storage.test.ts` runs it once per engine.
import { jest } from "@jest/globals";
import { migrateDatabase, openStorage, type DatabaseSettings } from "../../src/storage/index.js";
import { createKnex } from "../../src/storage/knex/connection.js";
import type { Pdu } from "../../src/core/events.js";
import type { JsonObject } from "../../src/core/json.js";
import type { DestinationRow, Storage, StorageRepos } from "../../src/storage/ports.js";
import {
  alice,
  bob,
  carol,
  createEvent,
  memberEvent,
  messageEvent,
  nameEvent,
  oneTimeKey,
  pdu,
  room,
  RoomLog,
  user,
} from "./builders.js";

export interface EngineFixture {
  readonly engine: "sqlite" | "postgres";
  /** Settings of a new, empty database, and how to remove it afterwards. */
  newDatabase(): Promise<{ settings: DatabaseSettings; drop(): Promise<void> }>;
}

/** Runs the suite on `fixture`, or skips it (the caller has said why) when undefined. */
export function describeStorage(name: string, fixture: EngineFixture | undefined): void {
  (fixture ? describe : describe.skip)(`storage on ${name}`, () => {
    jest.setTimeout(30_000);
    let database: { settings: DatabaseSettings; drop(): Promise<void> };
    let storage: Storage;
    let lastPos: number;
    const nextPos = (): number => ++lastPos;
    const newRoom = async (roomId: string, repos: StorageRepos = storage): Promise<RoomLog> => {
      await repos.events.createRoom(room(roomId));
      return new RoomLog(roomId, nextPos);
    };
    const ids = (events: Array<{ eventId: string }>): string[] => events.map((e) => e.eventId);

    beforeEach(async () => {
      database = await fixture!.newDatabase();
      storage = await openStorage(database.settings);
      lastPos = 0;
    });

    afterEach(async () => {
      await storage.close();
      await database.drop();
    });

    describe("migrations and lifecycle", () => {
      it("reports its engine and starts empty", async () => {
        expect(storage.engine).toBe(fixture!.engine);
        expect(await storage.maxStreamPos()).toBe(0);
      });

      it("applies migrations once: opening again and migrating again apply nothing", async () => {
        await storage.close();
        expect(await migrateDatabase(database.settings)).toEqual({ applied: [] });
        storage = await openStorage(database.settings);
        await storage.accounts.createUser(user(alice));
        await storage.close();
        storage = await openStorage(database.settings);
        expect((await storage.accounts.getUser(alice))?.userId).toBe(alice);
      });

      it("migrateDatabase on an empty database applies the initial schema", async () => {
        await storage.close();
        await database.drop();
        database = await fixture!.newDatabase();
        expect((await migrateDatabase(database.settings)).applied).toEqual(["0001-initial-schema", "0002-server-keys", "0003-forgotten-rooms", "0004-federation", "0005-replica-history", "0006-blocked-rooms", "0007-appservice", "0008-mls", "0009-mls-welcomes", "0010-to-device-stream-index"]);
        storage = await openStorage(database.settings, { migrate: false });
        expect(await storage.maxStreamPos()).toBe(0);
      });

      it("keeps everything across close and reopen (a restart)", async () => {
        const log = await newRoom("!r:example.org");
        await log.append(storage, [createEvent("!r:example.org"), memberEvent("!r:example.org", alice, "join")]);
        await storage.accountData.put(alice, null, "m.direct", { a: 1 }, nextPos());
        await storage.accounts.createUser(user(alice, { displayname: "Alice" }));
        const before = await storage.maxStreamPos();
        await storage.close();

        storage = await openStorage(database.settings);
        expect(await storage.maxStreamPos()).toBe(before);
        expect(before).toBe(3);
        expect((await storage.events.getLastEvent("!r:example.org"))?.roomSeq).toBe(1);
        expect(await storage.events.getMembershipsOfUser(alice)).toEqual(new Map([["!r:example.org", "join"]]));
        expect(await storage.accountData.get(alice, null, "m.direct")).toEqual({ a: 1 });
        expect((await storage.accounts.getUser(alice))?.displayname).toBe("Alice");
      });
    });

    describe("transactions", () => {
      it("commits everything the work wrote", async () => {
        await storage.transaction(async (tx) => {
          await tx.accounts.createUser(user(alice));
          const log = await newRoom("!r:example.org", tx);
          await log.append(tx, [createEvent("!r:example.org")]);
        });
        expect(await storage.accounts.getUser(alice)).toBeDefined();
        expect(await storage.events.getEvent("$r-0")).toBeDefined();
      });

      it("a failed transaction leaves nothing behind and returns the error", async () => {
        const failure = storage.transaction(async (tx) => {
          await tx.accounts.createUser(user(alice));
          const log = await newRoom("!r:example.org", tx);
          await log.append(tx, [createEvent("!r:example.org"), memberEvent("!r:example.org", alice, "join")]);
          await tx.accountData.put(alice, null, "m.direct", {}, nextPos());
          await tx.toDevice.add([{ streamPos: nextPos(), userId: alice, deviceId: "D", sender: bob, type: "m.x", content: {} }]);
          throw new Error("boom");
        });
        await expect(failure).rejects.toThrow("boom");
        expect(await storage.accounts.getUser(alice)).toBeUndefined();
        expect(await storage.events.getRoom("!r:example.org")).toBeUndefined();
        expect(await storage.events.getEvent("$r-0")).toBeUndefined();
        expect(await storage.events.getMembershipsOfUser(alice)).toEqual(new Map());
        expect(await storage.toDevice.getPending(alice, "D", 100, 10)).toEqual([]);
        expect(await storage.maxStreamPos()).toBe(0);
      });

      it("returns the work's result", async () => {
        expect(await storage.transaction(async (tx) => tx.filters.create(alice, { room: {} }))).toMatch(/^[0-9]+$/);
      });

      // SQLite runs concurrent transactions together, one savepoint each, under one commit
      // (group-commit.ts); each must still be atomic and alone in its outcome.
      it("concurrent transactions, some failing, each commit or roll back only their own writes", async () => {
        const count = 150;
        const fails = (n: number): boolean => n % 3 === 1;
        const outcomes = await Promise.allSettled(
          Array.from({ length: count }, (_, n) =>
            storage.transaction(async (tx) => {
              await tx.accounts.createUser(user(`@u${n}:example.org`));
              await tx.aliases.create(`#a${n}:example.org`, "!r:example.org", alice);
              if (n % 2 === 0) await new Promise((resolve) => setImmediate(resolve)); // interleave with arrivals
              await tx.accounts.createAccessToken({ tokenHash: `t${n}`, userId: `@u${n}:example.org`, deviceId: "D", createdTs: n, expiresTs: null });
              if (fails(n)) throw new Error(`work ${n} fails`);
              return n;
            }),
          ),
        );
        for (let n = 0; n < count; n++) {
          const outcome = outcomes[n]!;
          if (fails(n)) {
            expect(outcome).toEqual({ status: "rejected", reason: new Error(`work ${n} fails`) });
            expect(await storage.accounts.getUser(`@u${n}:example.org`)).toBeUndefined();
            expect(await storage.aliases.get(`#a${n}:example.org`)).toBeUndefined();
            expect(await storage.accounts.getAccessToken(`t${n}`)).toBeUndefined();
          } else {
            expect(outcome).toEqual({ status: "fulfilled", value: n });
            expect(await storage.accounts.getUser(`@u${n}:example.org`)).toBeDefined();
            expect(await storage.aliases.get(`#a${n}:example.org`)).toEqual({ roomId: "!r:example.org", creator: alice });
            expect(await storage.accounts.getAccessToken(`t${n}`)).toMatchObject({ createdTs: n });
          }
        }
      });

      it("a transaction failing on a constraint does not undo the concurrent ones", async () => {
        await storage.accounts.createUser(user(alice));
        const outcomes = await Promise.allSettled([
          storage.transaction((tx) => tx.accounts.createUser(user(bob))),
          // The database refuses this one (duplicate primary key) after it wrote a first row.
          storage.transaction(async (tx) => {
            await tx.accounts.createUser(user(carol));
            await tx.accounts.createUser(user(alice));
          }),
          storage.transaction((tx) => tx.aliases.create("#after:example.org", "!r:example.org", bob)),
        ]);
        expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
        expect(await storage.accounts.getUser(bob)).toBeDefined();
        expect(await storage.accounts.getUser(carol)).toBeUndefined();
        expect(await storage.aliases.get("#after:example.org")).toBeDefined();
      });

      it("a transaction started after another resolved sees its writes", async () => {
        await storage.transaction((tx) => tx.accounts.createUser(user(alice)));
        expect(await storage.transaction(async (tx) => (await tx.accounts.getUser(alice))?.userId)).toBe(alice);
      });

      // PostgreSQL runs concurrent transactions on its pool, where no order is promised; SQLite's
      // group commit runs a batch one work after another inside one transaction.
      (fixture?.engine === "sqlite" ? it : it.skip)("on SQLite, queued transactions run in order: a later one sees an earlier one's writes", async () => {
        const first = storage.transaction((tx) => tx.accounts.createUser(user(alice)));
        const second = storage.transaction(async (tx) => (await tx.accounts.getUser(alice))?.userId);
        await first;
        expect(await second).toBe(alice);
      });

      it("announces revoked access once the write has settled", async () => {
        const revocations: unknown[] = [];
        storage.onAccessRevoked((revocation) => revocations.push(revocation));
        await storage.accounts.createUser(user(alice));
        await storage.accounts.updateUser(alice, { displayname: "Alice" });
        expect(revocations).toEqual([]);
        await storage.accounts.deleteAccessToken("ab".repeat(32));
        expect(revocations).toEqual([{ tokenHash: "ab".repeat(32) }]);
        const inTransaction = storage.transaction(async (tx) => {
          await tx.accounts.updateUser(alice, { deactivated: true });
          await tx.accounts.deleteDevices(alice, ["D1"]);
          // Not yet: the transaction has not committed.
          expect(revocations).toHaveLength(1);
        });
        await inTransaction;
        expect(revocations).toEqual([{ tokenHash: "ab".repeat(32) }, { userId: alice }, { userId: alice }]);
        await expect(
          storage.transaction(async (tx) => {
            await tx.accounts.deleteAccessTokensOfUser(bob);
            throw new Error("boom");
          }),
        ).rejects.toThrow("boom");
        expect(revocations.at(-1)).toEqual({ userId: bob });
      });
    });

    describe("rooms", () => {
      it("creates rooms and pages the public directory by room ID", async () => {
        for (const id of ["!c:x", "!a:x", "!b:x", "!d:x"]) await storage.events.createRoom(room(id, { isPublic: id !== "!d:x" }));
        expect(await storage.events.getRoom("!a:x")).toEqual(room("!a:x", { isPublic: true }));
        expect(await storage.events.getRoom("!nope:x")).toBeUndefined();
        const page1 = await storage.events.listPublicRooms({ limit: 2 });
        expect(page1.map((r) => r.roomId)).toEqual(["!a:x", "!b:x"]);
        const page2 = await storage.events.listPublicRooms({ limit: 2, since: "!b:x" });
        expect(page2.map((r) => r.roomId)).toEqual(["!c:x"]);
        await storage.events.setRoomPublic("!d:x", true);
        await storage.events.setRoomPublic("!a:x", false);
        expect((await storage.events.listPublicRooms({ limit: 10 })).map((r) => r.roomId)).toEqual(["!b:x", "!c:x", "!d:x"]);
      });
    });

    describe("room summaries (admin room list)", () => {
      it("lists every room with its member counts and the asked-for state contents", async () => {
        const local = "@dave:example.org";
        const remote = "@erin:elsewhere.test";
        const log = await newRoom("!s:x");
        await log.append(storage, [createEvent("!s:x"), memberEvent("!s:x", local, "join"), memberEvent("!s:x", remote, "join"), memberEvent("!s:x", carol, "invite"), nameEvent("!s:x", "Summit"), messageEvent("!s:x", "hi")]);
        await storage.events.createRoom(room("!empty:x"));
        const summaries = await storage.events.listRoomSummaries({ localServer: "example.org", stateTypes: ["m.room.name", "m.room.topic"] });
        expect(summaries.map((s) => s.room.roomId)).toEqual(["!empty:x", "!s:x"]);
        expect(summaries[0]).toEqual({ room: room("!empty:x"), joinedMembers: 0, joinedLocalMembers: 0, stateEvents: 0, state: {} });
        expect(summaries[1]).toEqual({ room: room("!s:x"), joinedMembers: 2, joinedLocalMembers: 1, stateEvents: 5, state: { "m.room.name": { name: "Summit" } } });
        // A later name replaces the earlier one; a member leaving lowers the counts.
        await log.append(storage, [nameEvent("!s:x", "Valley"), memberEvent("!s:x", local, "leave")]);
        const [, after] = await storage.events.listRoomSummaries({ localServer: "example.org", stateTypes: ["m.room.name"] });
        expect(after).toMatchObject({ joinedMembers: 1, joinedLocalMembers: 0, stateEvents: 5, state: { "m.room.name": { name: "Valley" } } });
      });
    });

    describe("the event log", () => {
      it("appends in order and reads pages forward and backward", async () => {
        const log = await newRoom("!r:x");
        await log.append(storage, [createEvent("!r:x"), memberEvent("!r:x", alice, "join"), ...[1, 2, 3, 4].map((n) => messageEvent("!r:x", `m${n}`))]);
        const last = await storage.events.getLastEvent("!r:x");
        expect(last).toMatchObject({ eventId: "$r-5", roomId: "!r:x", roomSeq: 5, streamPos: 6, redactedBy: null, softFailed: false });
        expect(last?.pdu).toEqual(messageEvent("!r:x", "m4"));

        const forward = await storage.events.getRoomEvents("!r:x", { direction: "forward", limit: 3 });
        expect(ids(forward)).toEqual(["$r-0", "$r-1", "$r-2"]);
        const next = await storage.events.getRoomEvents("!r:x", { afterSeq: 2, direction: "forward", limit: 10 });
        expect(ids(next)).toEqual(["$r-3", "$r-4", "$r-5"]);
        const backward = await storage.events.getRoomEvents("!r:x", { direction: "backward", limit: 2 });
        expect(ids(backward)).toEqual(["$r-5", "$r-4"]);
        const window = await storage.events.getRoomEvents("!r:x", { afterSeq: 1, beforeSeq: 4, direction: "backward", limit: 10 });
        expect(ids(window)).toEqual(["$r-3", "$r-2"]);
        expect(await storage.events.getLastEvent("!empty:x")).toBeUndefined();
      });

      it("refuses a roomSeq the room already has, and stores nothing of that append", async () => {
        // Gaps are the room writer's to prevent (it places each event after its head); storage
        // guarantees one event per (room, seq), whatever the engine.
        const log = await newRoom("!r:x");
        await log.append(storage, [createEvent("!r:x"), memberEvent("!r:x", alice, "join")]);
        const at = (roomSeq: number, eventId: string) => ({ eventId, pdu: nameEvent("!r:x", eventId), roomSeq, streamPos: nextPos() });
        await expect(storage.events.appendEvent(at(0, "$dup0"))).rejects.toThrow(/room_seq/);
        await expect(storage.events.appendEvent(at(1, "$dup1"))).rejects.toThrow(/room_seq/);
        // A gap is refused too.
        await expect(storage.events.appendEvent(at(5, "$gap"))).rejects.toThrow(/expects room_seq 2/);
        expect(await storage.events.getEvent("$gap")).toBeUndefined();
        expect(await storage.events.getEvent("$dup0")).toBeUndefined();
        expect(await storage.events.getEvent("$dup1")).toBeUndefined();
        // Neither refused state event reached the state tables.
        expect(await storage.events.getCurrentStateEvent("!r:x", "m.room.name", "")).toBeUndefined();
        expect(await storage.events.getStateEventBefore("!r:x", 10, "m.room.name", "")).toBeUndefined();
        await storage.events.appendEvent(at(2, "$ok"));
        expect((await storage.events.getLastEvent("!r:x"))?.eventId).toBe("$ok");
        expect((await storage.events.getCurrentStateEvent("!r:x", "m.room.name", ""))?.eventId).toBe("$ok");
      });

      it("appends a batch as appendEvent would one by one, and refuses a batch that does not follow the log", async () => {
        // The same history in two rooms: one event at a time in !one, in two batches in !two.
        const history = (roomId: string): Pdu[] => [
          createEvent(roomId),
          memberEvent(roomId, alice, "join"),
          nameEvent(roomId, "A"),
          memberEvent(roomId, bob, "join"),
          messageEvent(roomId, "hi"),
          memberEvent(roomId, bob, "leave"),
          nameEvent(roomId, "B"),
          memberEvent(roomId, bob, "invite"),
        ];
        const one = await newRoom("!one:x");
        await one.append(storage, history("!one:x"));
        await storage.events.createRoom(room("!two:x"));
        await storage.events.forgetRoom(bob, "!two:x");
        const batch = history("!two:x").map((pdu, roomSeq) => ({ eventId: `$two-${roomSeq}`, pdu, roomSeq, streamPos: nextPos(), ...(roomSeq === 6 ? { softFailed: true } : {}) }));
        await storage.events.appendEvents(batch.slice(0, 3));
        await storage.events.appendEvents([]);
        await storage.events.appendEvents(batch.slice(3));

        const summary = async (roomId: string, tag: string) => {
          const strip = (list: Array<{ eventId: string }>) => list.map((e) => e.eventId.replace(tag, "")).sort();
          const before = [];
          for (let seq = 0; seq <= 8; seq++) before.push(strip(await storage.events.getStateBefore(roomId, seq)));
          return { current: strip(await storage.events.getCurrentState(roomId)), before, joined: await storage.events.getMembers(roomId, "join"), invited: await storage.events.getMembers(roomId, "invite") };
        };
        // The soft-failed second name (seq 6) stays out of state in !two only.
        const expected = await summary("!one:x", "$one-");
        expected.current = expected.current.map((id) => (id === "6" ? "2" : id)).sort();
        expected.before = expected.before.map((ids, seq) => (seq >= 7 ? ids.map((id) => (id === "6" ? "2" : id)).sort() : ids));
        expect(await summary("!two:x", "$two-")).toEqual(expected);
        expect(await storage.events.getEvent("$two-6")).toMatchObject({ roomSeq: 6, softFailed: true });
        expect(ids(await storage.events.getRoomEvents("!two:x", { direction: "forward", limit: 20 }))).toEqual(batch.map((e) => e.eventId));
        // bob's invite undid his forgetting the room.
        expect(await storage.events.isRoomForgotten(bob, "!two:x")).toBe(false);

        // A batch that repeats a seq, leaves a gap or strays into another room stores nothing.
        const next = (roomSeq: number, eventId: string, roomId = "!two:x") => ({ eventId, pdu: nameEvent(roomId, eventId), roomSeq, streamPos: nextPos() });
        await expect(storage.events.appendEvents([next(7, "$dup")])).rejects.toThrow(/expects room_seq 8/);
        await expect(storage.events.appendEvents([next(8, "$a"), next(10, "$gap")])).rejects.toThrow(/expects room_seq 9/);
        await expect(storage.events.appendEvents([next(8, "$b"), next(9, "$other", "!one:x")])).rejects.toThrow(/not in room/);
        for (const id of ["$dup", "$a", "$gap", "$b", "$other"]) expect(await storage.events.getEvent(id)).toBeUndefined();
        expect((await storage.events.getCurrentStateEvent("!two:x", "m.room.name", ""))?.eventId).toBe("$two-2");
      });

      it("reads many events by ID at once, skipping unknown IDs and repeats", async () => {
        const log = await newRoom("!g:x");
        const appended = await log.append(storage, [createEvent("!g:x"), memberEvent("!g:x", alice, "join"), nameEvent("!g:x", "A")]);
        await storage.events.redactEvent("$g-2", "$g-1", nameEvent("!g:x", ""));
        const found = await storage.events.getEvents(["$g-2", "$nope", "$g-0", "$g-2"]);
        expect(found.sort((x, y) => x.roomSeq - y.roomSeq)).toEqual([await storage.events.getEvent("$g-0"), await storage.events.getEvent("$g-2")]);
        expect(found[1]).toMatchObject({ eventId: "$g-2", redactedBy: "$g-1" });
        expect(found[0]?.pdu).toEqual(appended[0]?.pdu);
        expect(await storage.events.getEvents([])).toEqual([]);
        const many = Array.from({ length: 1_100 }, (_, i) => `$missing${i}`);
        expect(await storage.events.getEvents([...many, "$g-1"])).toHaveLength(1);
      });

      it("remembers forgotten rooms until the user joins, is invited or knocks again", async () => {
        const log = await newRoom("!f:x");
        await log.append(storage, [createEvent("!f:x"), memberEvent("!f:x", alice, "join"), memberEvent("!f:x", alice, "leave")]);
        expect(await storage.events.isRoomForgotten(alice, "!f:x")).toBe(false);
        await storage.events.forgetRoom(alice, "!f:x");
        await storage.events.forgetRoom(alice, "!f:x");
        expect(await storage.events.isRoomForgotten(alice, "!f:x")).toBe(true);
        expect(await storage.events.isRoomForgotten(bob, "!f:x")).toBe(false);
        // Another user's membership or a message changes nothing; alice's invite clears it.
        await log.append(storage, [memberEvent("!f:x", bob, "join"), nameEvent("!f:x", "n")]);
        expect(await storage.events.isRoomForgotten(alice, "!f:x")).toBe(true);
        await log.append(storage, [memberEvent("!f:x", alice, "invite")]);
        expect(await storage.events.isRoomForgotten(alice, "!f:x")).toBe(false);
      });

      it("answers the state before any seq (5-event room)", async () => {
        const log = await newRoom("!r:x");
        // seq 0 create, 1 join, 2 name A, 3 message, 4 name B
        await log.append(storage, [createEvent("!r:x"), memberEvent("!r:x", alice, "join"), nameEvent("!r:x", "A"), messageEvent("!r:x", "hi"), nameEvent("!r:x", "B")]);
        const stateIds = async (seq: number) => ids(await storage.events.getStateBefore("!r:x", seq)).sort();
        expect(await stateIds(0)).toEqual([]);
        expect(await stateIds(1)).toEqual(["$r-0"]);
        expect(await stateIds(2)).toEqual(["$r-0", "$r-1"]);
        expect(await stateIds(3)).toEqual(["$r-0", "$r-1", "$r-2"]);
        expect(await stateIds(4)).toEqual(["$r-0", "$r-1", "$r-2"]);
        expect(await stateIds(5)).toEqual(["$r-0", "$r-1", "$r-4"]);
        expect(await stateIds(99)).toEqual(["$r-0", "$r-1", "$r-4"]);

        const nameBefore = (seq: number) => storage.events.getStateEventBefore("!r:x", seq, "m.room.name", "");
        expect(await nameBefore(2)).toBeUndefined();
        expect((await nameBefore(3))?.pdu.content).toEqual({ name: "A" });
        expect((await nameBefore(4))?.eventId).toBe("$r-2");
        expect((await nameBefore(5))?.pdu.content).toEqual({ name: "B" });
        expect((await storage.events.getStateEventBefore("!r:x", 5, "m.room.member", alice))?.eventId).toBe("$r-1");
      });

      it("keeps current state and memberships, per room and per user", async () => {
        const r = await newRoom("!r:x");
        const s = await newRoom("!s:x");
        await r.append(storage, [
          createEvent("!r:x"),
          memberEvent("!r:x", alice, "join"),
          memberEvent("!r:x", bob, "invite"),
          memberEvent("!r:x", bob, "join"),
          memberEvent("!r:x", carol, "join"),
          memberEvent("!r:x", carol, "leave"),
          nameEvent("!r:x", "Room R"),
        ]);
        await s.append(storage, [createEvent("!s:x"), memberEvent("!s:x", alice, "join"), memberEvent("!s:x", bob, "invite")]);

        const current = await storage.events.getCurrentState("!r:x");
        expect(ids(current).sort()).toEqual(["$r-0", "$r-1", "$r-3", "$r-5", "$r-6"]);
        expect((await storage.events.getCurrentStateEvent("!r:x", "m.room.member", bob))?.pdu.content).toEqual({ membership: "join" });
        expect(await storage.events.getCurrentStateEvent("!r:x", "m.room.topic", "")).toBeUndefined();

        expect(await storage.events.getMembershipsOfUser(bob)).toEqual(new Map([["!r:x", "join"], ["!s:x", "invite"]]));
        expect(await storage.events.getMembershipsOfUser(carol)).toEqual(new Map([["!r:x", "leave"]]));
        expect(await storage.events.getMembershipsOfUser("@nobody:x")).toEqual(new Map());
        expect(await storage.events.getMembers("!r:x", "join")).toEqual([alice, bob].sort());
        expect(await storage.events.getMembers("!r:x")).toEqual([alice, bob, carol].sort());
        expect(await storage.events.getMembers("!s:x", "invite")).toEqual([bob]);
      });

      it("stores soft-failed events outside state and sync timelines", async () => {
        const log = await newRoom("!r:x");
        await log.append(storage, [createEvent("!r:x"), memberEvent("!r:x", alice, "join")]);
        const [softFailed] = await log.append(storage, [nameEvent("!r:x", "evil")], { softFailed: true });
        await log.append(storage, [messageEvent("!r:x", "after")]);

        expect(await storage.events.getEvent(softFailed!.eventId)).toMatchObject({ softFailed: true, roomSeq: 2 });
        expect(await storage.events.getCurrentStateEvent("!r:x", "m.room.name", "")).toBeUndefined();
        expect(await storage.events.getStateEventBefore("!r:x", 10, "m.room.name", "")).toBeUndefined();
        expect(ids(await storage.events.getEventsInStreamRange(["!r:x"], 0, 100, 10))).toEqual(["$r-0", "$r-1", "$r-3"]);
        // The log itself keeps it (flagged), so room_seq stays contiguous.
        expect((await storage.events.getRoomEvents("!r:x", { direction: "forward", limit: 10 })).map((e) => e.softFailed)).toEqual([false, false, true, false]);
      });

      it("reads the latest events per room in a stream range, ascending", async () => {
        const r = await newRoom("!r:x");
        const s = await newRoom("!s:x");
        await r.append(storage, [createEvent("!r:x")]); // pos 1
        await s.append(storage, [createEvent("!s:x")]); // pos 2
        for (let n = 0; n < 4; n++) {
          await r.append(storage, [messageEvent("!r:x", `r${n}`)]); // pos 3, 5, 7, 9
          await s.append(storage, [messageEvent("!s:x", `s${n}`)]); // pos 4, 6, 8, 10
        }
        const range = await storage.events.getEventsInStreamRange(["!r:x", "!s:x"], 2, 9, 2);
        expect(range.map((e) => [e.eventId, e.streamPos])).toEqual([
          ["$s-2", 6],
          ["$r-3", 7],
          ["$s-3", 8],
          ["$r-4", 9],
        ]);
        expect(ids(await storage.events.getEventsInStreamRange(["!r:x"], 0, 4, 10))).toEqual(["$r-0", "$r-1"]);
        expect(await storage.events.getEventsInStreamRange([], 0, 100, 10)).toEqual([]);
        expect(await storage.events.getEventsInStreamRange(["!s:x"], 10, 100, 10)).toEqual([]);
      });

      it("reports a user's membership changes by stream range", async () => {
        const r = await newRoom("!r:x");
        const s = await newRoom("!s:x");
        await r.append(storage, [createEvent("!r:x"), memberEvent("!r:x", alice, "join")]); // 1, 2
        await s.append(storage, [createEvent("!s:x"), memberEvent("!s:x", bob, "invite")]); // 3, 4
        await r.append(storage, [memberEvent("!r:x", bob, "join"), messageEvent("!r:x", "hi", bob)]); // 5, 6
        await r.append(storage, [memberEvent("!r:x", bob, "leave")]); // 7
        await s.append(storage, [memberEvent("!s:x", bob, "join")]); // 8

        expect(await storage.events.getMembershipChanges(bob, 0, 100)).toEqual([
          { roomId: "!s:x", membership: "invite", streamPos: 4, eventId: "$s-1" },
          { roomId: "!r:x", membership: "join", streamPos: 5, eventId: "$r-2" },
          { roomId: "!r:x", membership: "leave", streamPos: 7, eventId: "$r-4" },
          { roomId: "!s:x", membership: "join", streamPos: 8, eventId: "$s-2" },
        ]);
        expect((await storage.events.getMembershipChanges(bob, 4, 7)).map((c) => c.streamPos)).toEqual([5, 7]);
        expect(await storage.events.getMembershipChanges(bob, 8, 100)).toEqual([]);
        expect((await storage.events.getMembershipChanges(alice, 0, 100)).map((c) => c.eventId)).toEqual(["$r-1"]);
      });

      it("stores the redacted copy of a redacted event and keeps it in state", async () => {
        const log = await newRoom("!r:x");
        await log.append(storage, [createEvent("!r:x"), nameEvent("!r:x", "secret"), messageEvent("!r:x", "oops")]);
        const [redaction] = await log.append(storage, [pdu("!r:x", "m.room.redaction", {}, {})]);
        const redactedName = { ...nameEvent("!r:x", "secret"), content: {} };
        await storage.events.redactEvent("$r-1", redaction!.eventId, redactedName);

        const stored = await storage.events.getEvent("$r-1");
        expect(stored).toMatchObject({ redactedBy: "$r-3", pdu: redactedName });
        expect((await storage.events.getCurrentStateEvent("!r:x", "m.room.name", ""))?.pdu.content).toEqual({});
        expect((await storage.events.getEvent("$r-2"))?.redactedBy).toBeNull();
      });
    });

    describe("client transaction IDs, aliases, filters", () => {
      it("remembers the first event of a client transaction", async () => {
        expect(await storage.clientTxns.get(alice, "D1", "t1")).toBeUndefined();
        await storage.clientTxns.put(alice, "D1", "t1", "$first", 1);
        await storage.clientTxns.put(alice, "D1", "t1", "$retry", 2);
        expect(await storage.clientTxns.get(alice, "D1", "t1")).toBe("$first");
        expect(await storage.clientTxns.get(alice, "D2", "t1")).toBeUndefined();
        expect(await storage.clientTxns.get(bob, "D1", "t1")).toBeUndefined();
      });

      it("keeps an alias unique, also inside a transaction that goes on", async () => {
        expect(await storage.aliases.create("#a:x", "!r:x", alice)).toBe(true);
        const second = await storage.transaction(async (tx) => {
          const again = await tx.aliases.create("#a:x", "!s:x", bob);
          // A refused alias must not poison the transaction (PostgreSQL aborts on errors).
          await tx.aliases.create("#b:x", "!r:x", bob);
          return again;
        });
        expect(second).toBe(false);
        expect(await storage.aliases.get("#a:x")).toEqual({ roomId: "!r:x", creator: alice });
        expect(await storage.aliases.listForRoom("!r:x")).toEqual(["#a:x", "#b:x"]);
        expect(await storage.aliases.delete("#a:x")).toBe(true);
        expect(await storage.aliases.delete("#a:x")).toBe(false);
        expect(await storage.aliases.get("#a:x")).toBeUndefined();
        expect(await storage.aliases.create("#a:x", "!s:x", bob)).toBe(true);
      });

      it("round-trips filters, visible to their owner only", async () => {
        const filter = { room: { timeline: { limit: 10, types: ["m.room.message"] } }, event_fields: ["content.body"] };
        const id = await storage.filters.create(alice, filter);
        const other = await storage.filters.create(alice, {});
        expect(other).not.toBe(id);
        expect(await storage.filters.get(alice, id)).toEqual(filter);
        expect(await storage.filters.get(bob, id)).toBeUndefined();
        expect(await storage.filters.get(alice, "not-a-number")).toBeUndefined();
        expect(await storage.filters.get(alice, "99999999")).toBeUndefined();
      });
    });

    describe("per-user streams", () => {
      it("keeps global and room account data, replaced by newer puts, by stream range", async () => {
        await storage.accountData.put(alice, null, "m.direct", { v: 1 }, nextPos()); // 1
        await storage.accountData.put(alice, "!r:x", "m.tag", { t: 1 }, nextPos()); // 2
        await storage.accountData.put(bob, null, "m.direct", { bob: true }, nextPos()); // 3
        await storage.accountData.put(alice, null, "m.direct", { v: 2 }, nextPos()); // 4

        expect(await storage.accountData.get(alice, null, "m.direct")).toEqual({ v: 2 });
        expect(await storage.accountData.get(alice, "!r:x", "m.tag")).toEqual({ t: 1 });
        expect(await storage.accountData.get(alice, "!r:x", "m.direct")).toBeUndefined();
        expect(await storage.accountData.get(alice, null, "m.tag")).toBeUndefined();

        expect(await storage.accountData.getChanged(alice, 0, 4)).toEqual([
          { roomId: "!r:x", type: "m.tag", content: { t: 1 } },
          { roomId: null, type: "m.direct", content: { v: 2 } },
        ]);
        expect(await storage.accountData.getChanged(alice, 2, 4)).toEqual([{ roomId: null, type: "m.direct", content: { v: 2 } }]);
        expect(await storage.accountData.getChanged(alice, 0, 3)).toEqual([{ roomId: "!r:x", type: "m.tag", content: { t: 1 } }]);
      });

      it("replaces a user's receipt per room, type and thread", async () => {
        const receipt = (eventId: string, threadId: string | null = null) => ({
          roomId: "!r:x",
          userId: alice,
          receiptType: "m.read",
          threadId,
          eventId,
          ts: 1000,
          streamPos: nextPos(),
        });
        await storage.receipts.put(receipt("$1")); // 1
        await storage.receipts.put({ ...receipt("$1"), userId: bob }); // 2
        await storage.receipts.put(receipt("$2")); // 3
        await storage.receipts.put(receipt("$t1", "$thread")); // 4
        await storage.receipts.put({ ...receipt("$other"), roomId: "!s:x" }); // 5

        const all = await storage.receipts.getChanged(["!r:x"], 0, 10);
        expect(all).toEqual([
          { roomId: "!r:x", userId: bob, receiptType: "m.read", threadId: null, eventId: "$1", ts: 1000, streamPos: 2 },
          { roomId: "!r:x", userId: alice, receiptType: "m.read", threadId: null, eventId: "$2", ts: 1000, streamPos: 3 },
          { roomId: "!r:x", userId: alice, receiptType: "m.read", threadId: "$thread", eventId: "$t1", ts: 1000, streamPos: 4 },
        ]);
        expect((await storage.receipts.getChanged(["!r:x", "!s:x"], 3, 5)).map((r) => r.eventId)).toEqual(["$t1", "$other"]);
        expect(await storage.receipts.getChanged([], 0, 10)).toEqual([]);
      });

      it("holds to-device messages until the device syncs past them", async () => {
        const message = (deviceId: string, n: number) => ({ streamPos: nextPos(), userId: alice, deviceId, sender: bob, type: "m.test", content: { n } });
        await storage.toDevice.add([message("D1", 1), message("D1", 2), message("D2", 3), message("D1", 4)]); // 1..4

        const pending = await storage.toDevice.getPending(alice, "D1", 4, 10);
        expect(pending.map((m) => m.content.n)).toEqual([1, 2, 4]);
        expect(pending[0]).toEqual({ streamPos: 1, userId: alice, deviceId: "D1", sender: bob, type: "m.test", content: { n: 1 } });
        expect((await storage.toDevice.getPending(alice, "D1", 4, 2)).map((m) => m.streamPos)).toEqual([1, 2]);
        expect((await storage.toDevice.getPending(alice, "D1", 3, 10)).map((m) => m.streamPos)).toEqual([1, 2]);

        await storage.toDevice.deleteUpTo(alice, "D1", 2);
        expect((await storage.toDevice.getPending(alice, "D1", 10, 10)).map((m) => m.streamPos)).toEqual([4]);
        expect((await storage.toDevice.getPending(alice, "D2", 10, 10)).map((m) => m.streamPos)).toEqual([3]);
      });

      it("never lets maxStreamPos go back when acknowledged messages are deleted", async () => {
        await storage.accountData.put(alice, null, "m.direct", {}, nextPos()); // 1
        await storage.toDevice.add([{ streamPos: nextPos(), userId: alice, deviceId: "D1", sender: bob, type: "m.test", content: {} }]); // 2
        expect(await storage.maxStreamPos()).toBe(2);
        // A bogus token far ahead deletes the message but does not move the stream to it.
        await storage.toDevice.deleteUpTo(alice, "D1", 1_000_000);
        expect(await storage.toDevice.getPending(alice, "D1", 10, 10)).toEqual([]);
        expect(await storage.maxStreamPos()).toBe(2);
      });

      it("maxStreamPos is the highest position in any stream table", async () => {
        const log = await newRoom("!r:x");
        await log.append(storage, [createEvent("!r:x")]);
        expect(await storage.maxStreamPos()).toBe(1);
        await storage.receipts.put({ roomId: "!r:x", userId: alice, receiptType: "m.read", threadId: null, eventId: "$r-0", ts: 1, streamPos: 7 });
        expect(await storage.maxStreamPos()).toBe(7);
        await storage.keys.putDeviceKeys(alice, "D1", {}, 9);
        expect(await storage.maxStreamPos()).toBe(9);
        await storage.keys.markDeviceListChanged(alice, 11);
        expect(await storage.maxStreamPos()).toBe(11);
        await storage.accountData.put(alice, null, "m.x", {}, 12);
        expect(await storage.maxStreamPos()).toBe(12);
        await storage.toDevice.add([{ streamPos: 13, userId: alice, deviceId: "D1", sender: bob, type: "m.test", content: {} }]);
        expect(await storage.maxStreamPos()).toBe(13);
        // Large positions and timestamps come back as numbers on every engine.
        await storage.accountData.put(alice, null, "m.y", {}, 2 ** 40);
        expect(await storage.maxStreamPos()).toBe(2 ** 40);
      });
    });

    describe("accounts", () => {
      it("creates, finds, updates and lists users", async () => {
        await storage.accounts.createUser(user(alice, { displayname: "Alice Liddell", isAdmin: true, passwordHash: "$scrypt$x" }));
        await storage.accounts.createUser(user(bob, { isGuest: true }));
        await storage.accounts.createUser(user(carol, { deactivated: true, displayname: "100%_sure" }));

        expect(await storage.accounts.getUser(alice)).toEqual(user(alice, { displayname: "Alice Liddell", isAdmin: true, passwordHash: "$scrypt$x" }));
        expect((await storage.accounts.getUserByLocalpart("bob"))?.isGuest).toBe(true);
        expect(await storage.accounts.getUserByLocalpart("Bob")).toBeUndefined();

        await storage.accounts.updateUser(alice, { displayname: null, avatarUrl: "mxc://x/y", isAdmin: false });
        expect(await storage.accounts.getUser(alice)).toMatchObject({ displayname: null, avatarUrl: "mxc://x/y", isAdmin: false, passwordHash: "$scrypt$x" });

        const all = await storage.accounts.listUsers({ limit: 2 });
        expect(all.total).toBe(3);
        expect(all.users.map((u) => u.userId)).toEqual([alice, bob]);
        expect((await storage.accounts.listUsers({ from: 2, limit: 2 })).users.map((u) => u.userId)).toEqual([carol]);
        expect(await storage.accounts.listUsers({ limit: 10, includeGuests: false, includeDeactivated: false })).toMatchObject({ total: 1, users: [{ userId: alice }] });
        expect((await storage.accounts.listUsers({ limit: 10, nameContains: "CAR" })).users.map((u) => u.userId)).toEqual([carol]);
      });

      it("searches users by ID or display name, case-insensitively, taking % and _ literally", async () => {
        await storage.accounts.createUser(user(alice, { displayname: "Alice Liddell" }));
        await storage.accounts.createUser(user(bob, { displayname: "100%_sure" }));
        await storage.accounts.createUser(user(carol, { deactivated: true, displayname: "Alice's cat" }));
        expect((await storage.accounts.searchUsers("LIDDELL", 10)).map((u) => u.userId)).toEqual([alice]);
        expect((await storage.accounts.searchUsers("example.org", 10)).map((u) => u.userId)).toEqual([alice, bob]);
        expect((await storage.accounts.searchUsers("0%_s", 10)).map((u) => u.userId)).toEqual([bob]);
        expect(await storage.accounts.searchUsers("%", 10)).toHaveLength(1);
        expect(await storage.accounts.searchUsers("example", 1)).toHaveLength(1);
      });

      it("keeps devices and access tokens", async () => {
        await storage.accounts.createUser(user(alice));
        const device = { userId: alice, deviceId: "D1", displayName: "phone", lastSeenTs: null, lastSeenIp: null, createdTs: 5 };
        await storage.accounts.upsertDevice(device);
        await storage.accounts.upsertDevice({ ...device, deviceId: "D0", displayName: null });
        expect(await storage.accounts.getDevice(alice, "D1")).toEqual(device);
        await storage.accounts.updateDevice(alice, "D1", { lastSeenTs: 1_700_000_000_123, lastSeenIp: "10.0.0.1" });
        expect(await storage.accounts.getDevice(alice, "D1")).toEqual({ ...device, lastSeenTs: 1_700_000_000_123, lastSeenIp: "10.0.0.1" });
        await storage.accounts.upsertDevice({ ...device, displayName: "tablet", createdTs: 999 });
        expect(await storage.accounts.getDevice(alice, "D1")).toMatchObject({ displayName: "tablet", createdTs: 5 });
        expect((await storage.accounts.listDevices(alice)).map((d) => d.deviceId)).toEqual(["D0", "D1"]);

        const token = { tokenHash: "ab".repeat(32), userId: alice, deviceId: "D1", createdTs: 1, expiresTs: null };
        await storage.accounts.createAccessToken(token);
        await storage.accounts.createAccessToken({ ...token, tokenHash: "cd".repeat(32), deviceId: "D0", expiresTs: 2 ** 42 });
        expect(await storage.accounts.getAccessToken(token.tokenHash)).toEqual(token);
        expect((await storage.accounts.getAccessToken("cd".repeat(32)))?.expiresTs).toBe(2 ** 42);
        await storage.accounts.deleteAccessToken(token.tokenHash);
        expect(await storage.accounts.getAccessToken(token.tokenHash)).toBeUndefined();
        await storage.accounts.deleteAccessTokensOfUser(alice);
        expect(await storage.accounts.getAccessToken("cd".repeat(32))).toBeUndefined();
      });

      it("deleting devices deletes their tokens, keys and inbox, and nothing of other devices", async () => {
        await storage.accounts.createUser(user(alice));
        for (const deviceId of ["D1", "D2", "D3"]) {
          await storage.accounts.upsertDevice({ userId: alice, deviceId, displayName: null, lastSeenTs: null, lastSeenIp: null, createdTs: 1 });
          await storage.accounts.createAccessToken({ tokenHash: `token-${deviceId}`, userId: alice, deviceId, createdTs: 1, expiresTs: null });
          await storage.keys.putDeviceKeys(alice, deviceId, { device_id: deviceId }, nextPos());
          await storage.keys.addOneTimeKeys([oneTimeKey(alice, deviceId, 1), oneTimeKey(alice, deviceId, 2)]);
          await storage.keys.setFallbackKey(oneTimeKey(alice, deviceId, 9, { fallback: true }));
          await storage.toDevice.add([{ streamPos: nextPos(), userId: alice, deviceId, sender: bob, type: "m.test", content: {} }]);
        }
        const before = await storage.maxStreamPos();

        await storage.transaction(async (tx) => {
          await tx.accounts.deleteDevices(alice, ["D1", "D3"]);
          await tx.keys.markDeviceListChanged(alice, nextPos());
        });

        expect((await storage.accounts.listDevices(alice)).map((d) => d.deviceId)).toEqual(["D2"]);
        expect(await storage.accounts.getAccessToken("token-D1")).toBeUndefined();
        expect(await storage.accounts.getAccessToken("token-D2")).toBeDefined();
        expect((await storage.keys.getDeviceKeys([alice])).map((k) => k.deviceId)).toEqual(["D2"]);
        expect(await storage.keys.countOneTimeKeys(alice, "D1")).toEqual({});
        expect(await storage.keys.unusedFallbackAlgorithms(alice, "D1")).toEqual([]);
        expect(await storage.keys.claimKey(alice, "D3", "signed_curve25519")).toBeUndefined();
        expect(await storage.keys.countOneTimeKeys(alice, "D2")).toEqual({ signed_curve25519: 2 });
        expect(await storage.toDevice.getPending(alice, "D3", 100, 10)).toEqual([]);
        expect(await storage.toDevice.getPending(alice, "D2", 100, 10)).toHaveLength(1);
        expect(await storage.keys.getDeviceListChanges([alice, bob], before, before + 1)).toEqual([alice]);
        // D3's inbox held the highest position; deleting it must not move the stream back.
        expect(await storage.maxStreamPos()).toBe(before + 1);
        await storage.accounts.deleteDevices(alice, []);
      });
    });

    describe("end-to-end keys", () => {
      it("keeps device keys and reports device-list changes by stream range", async () => {
        await storage.keys.putDeviceKeys(alice, "D1", { algorithms: ["a"] }, nextPos()); // 1
        await storage.keys.putDeviceKeys(bob, "B1", { algorithms: ["b"] }, nextPos()); // 2
        await storage.keys.putDeviceKeys(alice, "D1", { algorithms: ["a2"] }, nextPos()); // 3
        await storage.keys.markDeviceListChanged(carol, nextPos()); // 4

        expect(await storage.keys.getDeviceKeys([alice, bob, carol])).toEqual([
          { userId: alice, deviceId: "D1", keys: { algorithms: ["a2"] } },
          { userId: bob, deviceId: "B1", keys: { algorithms: ["b"] } },
        ]);
        expect(await storage.keys.getDeviceKeys([])).toEqual([]);
        expect(await storage.keys.getDeviceListChanges([alice, bob, carol], 0, 4)).toEqual([alice, bob, carol].sort());
        expect(await storage.keys.getDeviceListChanges([alice, bob, carol], 2, 3)).toEqual([alice]);
        expect(await storage.keys.getDeviceListChanges([bob], 2, 4)).toEqual([]);
        expect(await storage.keys.getDeviceListChanges([carol], 3, 4)).toEqual([carol]);
      });

      it("hands out one-time keys once, then the fallback key", async () => {
        await storage.keys.addOneTimeKeys([oneTimeKey(alice, "D1", 1), oneTimeKey(alice, "D1", 2), oneTimeKey(alice, "D1", 3, { algorithm: "other", keyId: "other:K3" })]);
        // A re-upload of the same key ID is ignored.
        await storage.keys.addOneTimeKeys([oneTimeKey(alice, "D1", 1, { key: "changed" })]);
        expect(await storage.keys.countOneTimeKeys(alice, "D1")).toEqual({ signed_curve25519: 2, other: 1 });
        expect(await storage.keys.unusedFallbackAlgorithms(alice, "D1")).toEqual([]);

        await storage.keys.setFallbackKey(oneTimeKey(alice, "D1", 8, { fallback: true }));
        await storage.keys.setFallbackKey(oneTimeKey(alice, "D1", 9, { fallback: true }));
        expect(await storage.keys.unusedFallbackAlgorithms(alice, "D1")).toEqual(["signed_curve25519"]);

        const first = await storage.keys.claimKey(alice, "D1", "signed_curve25519");
        expect(first).toEqual(oneTimeKey(alice, "D1", 1));
        expect((await storage.keys.claimKey(alice, "D1", "signed_curve25519"))?.keyId).toBe("signed_curve25519:K2");
        expect(await storage.keys.countOneTimeKeys(alice, "D1")).toEqual({ other: 1 });

        // None left: the (latest) fallback key, as often as asked, now marked used.
        const fallback = await storage.keys.claimKey(alice, "D1", "signed_curve25519");
        expect(fallback).toEqual(oneTimeKey(alice, "D1", 9, { fallback: true }));
        expect(await storage.keys.claimKey(alice, "D1", "signed_curve25519")).toEqual(fallback);
        expect(await storage.keys.unusedFallbackAlgorithms(alice, "D1")).toEqual([]);
        // A new fallback key is unused again.
        await storage.keys.setFallbackKey(oneTimeKey(alice, "D1", 10, { fallback: true }));
        expect(await storage.keys.unusedFallbackAlgorithms(alice, "D1")).toEqual(["signed_curve25519"]);

        expect(await storage.keys.claimKey(alice, "D1", "unknown")).toBeUndefined();
        expect(await storage.keys.claimKey(alice, "D2", "signed_curve25519")).toBeUndefined();
      });

      it("never hands out a one-time key twice under concurrent claims", async () => {
        const keys = Array.from({ length: 10 }, (_, n) => oneTimeKey(alice, "D1", n));
        await storage.keys.addOneTimeKeys(keys);
        await storage.keys.setFallbackKey(oneTimeKey(alice, "D1", 99, { fallback: true }));

        // Half claim on the pool directly, half inside transactions that hold their row locks a
        // moment longer, so claims really overlap on PostgreSQL.
        const claims = await Promise.all(
          Array.from({ length: 20 }, (_, n) =>
            n % 2 === 0
              ? storage.keys.claimKey(alice, "D1", "signed_curve25519")
              : storage.transaction(async (tx) => {
                  const claimed = await tx.keys.claimKey(alice, "D1", "signed_curve25519");
                  await new Promise((resolve) => setTimeout(resolve, 5));
                  return claimed;
                }),
          ),
        );
        const oneTime = claims.filter((k) => k && !k.fallback).map((k) => k!.keyId);
        const fallbacks = claims.filter((k) => k?.fallback);
        expect(new Set(oneTime).size).toBe(10);
        expect(oneTime.sort()).toEqual(keys.map((k) => k.keyId).sort());
        expect(fallbacks).toHaveLength(10);
        expect(new Set(fallbacks.map((k) => k!.keyId))).toEqual(new Set(["signed_curve25519:K99"]));
        expect(await storage.keys.countOneTimeKeys(alice, "D1")).toEqual({});
      });
    });

    describe("blocked rooms", () => {
      it("blocks, keeps the first record when blocked again, unblocks, and survives a restart", async () => {
        expect(await storage.blockedRooms.get("!r:example.org")).toBeUndefined();
        await storage.blockedRooms.block("!r:example.org", alice, 1_700_000_000_000);
        await storage.blockedRooms.block("!r:example.org", bob, 1_700_000_000_999);
        expect(await storage.blockedRooms.get("!r:example.org")).toEqual({ roomId: "!r:example.org", blockedBy: alice, blockedTs: 1_700_000_000_000 });
        expect(await storage.blockedRooms.get("!other:example.org")).toBeUndefined();
        await storage.close();
        storage = await openStorage(database.settings);
        expect((await storage.blockedRooms.get("!r:example.org"))?.blockedBy).toBe(alice);
        expect(await storage.blockedRooms.unblock("!r:example.org")).toBe(true);
        expect(await storage.blockedRooms.unblock("!r:example.org")).toBe(false);
        expect(await storage.blockedRooms.get("!r:example.org")).toBeUndefined();
      });

      it("blocks inside a transaction that rolls back: nothing is blocked", async () => {
        await expect(
          storage.transaction(async (tx) => {
            await tx.blockedRooms.block("!r:example.org", alice, 1);
            throw new Error("abort");
          }),
        ).rejects.toThrow("abort");
        expect(await storage.blockedRooms.get("!r:example.org")).toBeUndefined();
      });
    });

    describe("federation queues", () => {
      const hs1 = "one.example";
      const hs2 = "two.example";
      const queued = (destination: string, events: Array<{ eventId: string; streamPos: number }>) =>
        events.map((e) => ({ destination, streamPos: e.streamPos, eventId: e.eventId }));
      const positions = (pdus: Array<{ streamPos: number }>): number[] => pdus.map((p) => p.streamPos);

      it("hands out each destination's PDUs in stream order, as stored (redacted copy included)", async () => {
        const log = await newRoom("!q:x");
        const events = await log.append(storage, [createEvent("!q:x"), memberEvent("!q:x", alice, "join"), messageEvent("!q:x", "secret"), messageEvent("!q:x", "m3")]);
        // Queued out of order, and in two calls: the queue orders by stream position.
        await storage.federation.enqueuePdus(queued(hs1, [events[3]!, events[1]!]));
        await storage.federation.enqueuePdus([...queued(hs1, [events[0]!, events[2]!]), ...queued(hs2, [events[2]!])]);
        const [redaction] = await log.append(storage, [pdu("!q:x", "m.room.redaction", {}, {})]);
        const redacted = { ...messageEvent("!q:x", "secret"), content: {} };
        await storage.events.redactEvent("$q-2", redaction!.eventId, redacted);

        const all = await storage.federation.peekPdus(hs1, 10);
        expect(all.map((p) => p.eventId)).toEqual(["$q-0", "$q-1", "$q-2", "$q-3"]);
        expect(positions(all)).toEqual([1, 2, 3, 4]);
        expect(all[0]!.pdu).toEqual(createEvent("!q:x"));
        expect(all[2]!.pdu).toEqual(redacted);
        expect(positions(await storage.federation.peekPdus(hs1, 2))).toEqual([1, 2]);
        expect(positions(await storage.federation.peekPdus(hs2, 10))).toEqual([3]);
        expect(await storage.federation.peekPdus("none.example", 10)).toEqual([]);
      });

      it("acknowledges only up to the position, only for that destination; enqueueing again is harmless", async () => {
        const log = await newRoom("!q:x");
        const events = await log.append(storage, [createEvent("!q:x"), memberEvent("!q:x", alice, "join"), nameEvent("!q:x", "n"), messageEvent("!q:x", "m")]);
        const rows = [...queued(hs1, events), ...queued(hs2, events)];
        await storage.federation.enqueuePdus(rows);
        // The same rows again (a retried transaction of the room writer): ignored, not an error.
        await storage.federation.enqueuePdus(rows);
        await storage.federation.enqueuePdus([]);
        expect(await storage.federation.countQueuedPdus(hs1)).toBe(4);

        await storage.federation.ackPdus(hs1, 2);
        expect(positions(await storage.federation.peekPdus(hs1, 10))).toEqual([3, 4]);
        expect(positions(await storage.federation.peekPdus(hs2, 10))).toEqual([1, 2, 3, 4]);
        expect(await storage.federation.countQueuedPdus(hs1)).toBe(2);
        expect(await storage.federation.countQueuedPdus(hs2)).toBe(4);
        expect(await storage.federation.countQueuedPdus("none.example")).toBe(0);
        // An acknowledgement below what is left changes nothing; one past the end empties it.
        await storage.federation.ackPdus(hs1, 1);
        expect(await storage.federation.countQueuedPdus(hs1)).toBe(2);
        await storage.federation.ackPdus(hs1, 99);
        expect(await storage.federation.peekPdus(hs1, 10)).toEqual([]);
        expect(await storage.federation.countQueuedPdus(hs2)).toBe(4);
      });

      it("queues enough PDUs for a large room in one call (several insert statements)", async () => {
        const log = await newRoom("!big:x");
        const [event] = await log.append(storage, [createEvent("!big:x")]);
        const destinations = Array.from({ length: 1_203 }, (_, n) => `hs${String(n).padStart(4, "0")}.example`);
        await storage.federation.enqueuePdus(destinations.map((destination) => ({ destination, streamPos: event!.streamPos, eventId: event!.eventId })));
        expect(await storage.federation.destinationsWithBacklog()).toEqual(destinations);
        expect((await storage.federation.peekPdus("hs1202.example", 5)).map((p) => p.eventId)).toEqual([event!.eventId]);
      });

      /** Rows of a table, read on a connection of its own (the layout, not only the behaviour). */
      const countRows = async (table: string): Promise<number> => {
        const knex = createKnex(database.settings);
        try {
          const row = (await knex(table).count({ n: "*" }).first()) as { n: unknown } | undefined;
          return Number(row?.n);
        } finally {
          await knex.destroy();
        }
      };
      const messages = (roomId: string, count: number) => Array.from({ length: count }, (_, n) => messageEvent(roomId, `m${n}`));

      it("queues a destination that joins only the events whose destinations name it, from then on", async () => {
        const log = await newRoom("!j:x");
        const events = await log.append(storage, [createEvent("!j:x"), ...messages("!j:x", 4)]);
        await storage.federation.enqueuePdus(queued(hs1, events.slice(0, 3)));
        // hs2 joins at the fourth event: the events before it were never queued for it.
        await storage.federation.enqueuePdus([...queued(hs1, events.slice(3)), ...queued(hs2, events.slice(3))]);
        expect(positions(await storage.federation.peekPdus(hs2, 10))).toEqual([4, 5]);
        expect(await storage.federation.countQueuedPdus(hs2)).toBe(2);
        expect(positions(await storage.federation.peekPdus(hs1, 10))).toEqual([1, 2, 3, 4, 5]);
        await storage.federation.ackPdus(hs2, 5);
        expect(await storage.federation.peekPdus(hs2, 10)).toEqual([]);
        expect(await storage.federation.countQueuedPdus(hs2)).toBe(0);
        expect(await storage.federation.destinationsWithBacklog()).toEqual([hs1]);
      });

      it("finds a destination's few PDUs behind many queued for other servers", async () => {
        const busy = await newRoom("!busy:x");
        const quiet = await newRoom("!quiet:x");
        const before = await busy.append(storage, [createEvent("!busy:x"), ...messages("!busy:x", 60)]);
        const [first] = await quiet.append(storage, [createEvent("!quiet:x")]);
        const after = await busy.append(storage, messages("!busy:x", 100));
        const [last] = await quiet.append(storage, [messageEvent("!quiet:x", "hello")]);
        await storage.federation.enqueuePdus(queued(hs1, [...before, ...after]));
        await storage.federation.enqueuePdus(queued(hs2, [first!, last!]));
        const found = await storage.federation.peekPdus(hs2, 2);
        expect(found.map((p) => p.eventId)).toEqual([first!.eventId, last!.eventId]);
        expect(found.map((p) => p.pdu)).toEqual([createEvent("!quiet:x"), messageEvent("!quiet:x", "hello")]);
        expect(await storage.federation.countQueuedPdus(hs2)).toBe(2);
        await storage.federation.ackPdus(hs2, first!.streamPos);
        expect(positions(await storage.federation.peekPdus(hs2, 2))).toEqual([last!.streamPos]);
        expect(positions(await storage.federation.peekPdus(hs1, 3))).toEqual(positions(before.slice(0, 3)));
      });

      it("still sends an event that commits after a later one its destination acknowledged", async () => {
        const log = await newRoom("!l:x");
        const events = await log.append(storage, [createEvent("!l:x"), ...messages("!l:x", 2)]);
        // Positions 1 and 3 commit first and are sent; 2 (from a slower transaction) commits after.
        await storage.federation.enqueuePdus([...queued(hs1, [events[0]!, events[2]!])]);
        await storage.federation.ackPdus(hs1, 3);
        await storage.federation.enqueuePdus([...queued(hs1, [events[1]!]), ...queued(hs2, [events[1]!])]);
        expect(positions(await storage.federation.peekPdus(hs1, 10))).toEqual([2]);
        expect(positions(await storage.federation.peekPdus(hs2, 10))).toEqual([2]);
        expect(await storage.federation.countQueuedPdus(hs1)).toBe(1);
        expect(await storage.federation.destinationsWithBacklog()).toEqual([hs1, hs2]);
        await storage.federation.ackPdus(hs1, 2);
        expect(await storage.federation.peekPdus(hs1, 10)).toEqual([]);
        expect(await storage.federation.destinationsWithBacklog()).toEqual([hs2]);

        // An event queued again with one more destination: queued for that one too, once each.
        await storage.federation.enqueuePdus([...queued(hs2, [events[2]!]), ...queued("c.example", [events[2]!])]);
        expect(positions(await storage.federation.peekPdus("c.example", 10))).toEqual([3]);
        expect(positions(await storage.federation.peekPdus(hs2, 10))).toEqual([2, 3]);
        expect(await storage.federation.peekPdus(hs1, 10)).toEqual([]);
      });

      it("prunes the events every destination acknowledged and keeps the others", async () => {
        const a = await newRoom("!a:x");
        const b = await newRoom("!b:x");
        const early = await a.append(storage, [createEvent("!a:x")]);
        // gone.example was only ever sent the first event: its cursor stays there, yet it must not
        // keep later events of rooms it is not in.
        await storage.federation.enqueuePdus(queued("gone.example", early));
        await storage.federation.ackPdus("gone.example", early[0]!.streamPos);
        const roomA = await a.append(storage, messages("!a:x", 4));
        const roomB = await b.append(storage, [createEvent("!b:x"), ...messages("!b:x", 1)]);
        await storage.federation.enqueuePdus([...queued(hs1, roomA), ...queued(hs2, roomA)]);
        await storage.federation.enqueuePdus(queued("c.example", roomB));
        await storage.federation.ackPdus(hs1, roomA[3]!.streamPos);
        await storage.federation.ackPdus(hs2, roomA[1]!.streamPos);

        // The first event and room A's first two: acknowledged by all they were queued for. (An
        // acknowledgement may have pruned already: ackPdus prunes now and then.)
        await storage.federation.pruneOutbox();
        expect(await countRows("federation_outbox_events")).toBe(4);
        expect(await storage.federation.pruneOutbox()).toBe(0);
        expect((await storage.federation.peekPdus(hs2, 10)).map((p) => p.eventId)).toEqual(ids(roomA.slice(2)));
        expect((await storage.federation.peekPdus("c.example", 10)).map((p) => p.eventId)).toEqual(ids(roomB));
        expect(await storage.federation.peekPdus(hs1, 10)).toEqual([]);

        await storage.federation.ackPdus(hs2, roomA[3]!.streamPos);
        await storage.federation.ackPdus("c.example", roomB[0]!.streamPos);
        await storage.federation.pruneOutbox();
        expect(await countRows("federation_outbox_events")).toBe(1);
        expect((await storage.federation.peekPdus("c.example", 10)).map((p) => p.eventId)).toEqual(ids(roomB.slice(1)));
        expect(await storage.federation.destinationsWithBacklog()).toEqual(["c.example"]);
        await storage.federation.ackPdus("c.example", roomB[1]!.streamPos);
        await storage.federation.pruneOutbox();
        expect(await countRows("federation_outbox_events")).toBe(0);
        expect(await storage.federation.destinationsWithBacklog()).toEqual([]);
      });

      it("stores one row per event and a set of destinations shared by many events once", async () => {
        const log = await newRoom("!s:x");
        const events = await log.append(storage, [createEvent("!s:x"), ...messages("!s:x", 39)]);
        const servers = Array.from({ length: 50 }, (_, n) => `hs${n}.example`);
        // One transaction per event, all at once (parallel transactions on PostgreSQL): the first
        // ones race to store the new set.
        await Promise.all(
          events.map((event) => storage.transaction((tx) => tx.federation.enqueuePdus(servers.map((destination) => ({ destination, streamPos: event.streamPos, eventId: event.eventId }))))),
        );
        expect(await countRows("federation_outbox_events")).toBe(40);
        expect(await countRows("federation_dest_sets")).toBe(1);
        expect(await countRows("federation_outbox_extra_pdus")).toBe(0);
        expect(await storage.federation.countQueuedPdus("hs49.example")).toBe(40);
        expect(positions(await storage.federation.peekPdus("hs7.example", 50))).toEqual(events.map((e) => e.streamPos));
        // Another set (one server fewer) is a second row, whatever the number of events.
        const later = await log.append(storage, messages("!s:x", 3));
        for (const event of later) await storage.federation.enqueuePdus(servers.slice(1).map((destination) => ({ destination, streamPos: event.streamPos, eventId: event.eventId })));
        expect(await countRows("federation_dest_sets")).toBe(2);
        expect(await storage.federation.countQueuedPdus("hs0.example")).toBe(40);
        expect(await storage.federation.countQueuedPdus("hs1.example")).toBe(43);
      });

      it("hands out EDUs in insertion order with ascending ids, and acknowledges per destination", async () => {
        await storage.federation.enqueueEdus([
          { destination: hs1, edu: { edu_type: "m.typing", content: { n: 1 } } },
          { destination: hs2, edu: { edu_type: "m.typing", content: { n: 2 } } },
          { destination: hs1, edu: { edu_type: "m.receipt", content: { n: 3 } } },
        ]);
        await storage.federation.enqueueEdus([{ destination: hs1, edu: { edu_type: "m.presence", content: { n: 4 } } }]);
        const edus = await storage.federation.peekEdus(hs1, 10);
        expect(edus.map((e) => e.edu)).toEqual([
          { edu_type: "m.typing", content: { n: 1 } },
          { edu_type: "m.receipt", content: { n: 3 } },
          { edu_type: "m.presence", content: { n: 4 } },
        ]);
        expect(edus.every((e) => e.destination === hs1)).toBe(true);
        const ids = edus.map((e) => e.id);
        expect([...ids].sort((a, b) => a - b)).toEqual(ids);
        expect(new Set(ids).size).toBe(3);
        expect((await storage.federation.peekEdus(hs1, 2)).map((e) => e.id)).toEqual(ids.slice(0, 2));

        await storage.federation.ackEdus(hs1, ids[1]!);
        expect((await storage.federation.peekEdus(hs1, 10)).map((e) => e.id)).toEqual([ids[2]]);
        expect((await storage.federation.peekEdus(hs2, 10)).map((e) => e.edu)).toEqual([{ edu_type: "m.typing", content: { n: 2 } }]);
        // An EDU that could never be signed (canonical JSON has no floats) is refused when queued.
        await expect(storage.federation.enqueueEdus([{ destination: hs1, edu: { edu_type: "x", content: { f: 1.5 } } }])).rejects.toThrow(/canonical/);
      });

      it("lists the destinations with a backlog of PDUs or EDUs, and survives a restart", async () => {
        const log = await newRoom("!q:x");
        const events = await log.append(storage, [createEvent("!q:x"), memberEvent("!q:x", alice, "join")]);
        expect(await storage.federation.destinationsWithBacklog()).toEqual([]);
        await storage.federation.enqueuePdus([...queued("c.example", events), ...queued(hs1, events)]);
        await storage.federation.enqueueEdus([{ destination: hs2, edu: { edu_type: "m.typing", content: {} } }, { destination: hs1, edu: { edu_type: "m.typing", content: {} } }]);
        expect(await storage.federation.destinationsWithBacklog()).toEqual(["c.example", hs1, hs2]);

        await storage.close();
        storage = await openStorage(database.settings);
        expect(await storage.federation.destinationsWithBacklog()).toEqual(["c.example", hs1, hs2]);
        await storage.federation.ackPdus(hs1, events[1]!.streamPos);
        expect(await storage.federation.destinationsWithBacklog()).toEqual(["c.example", hs1, hs2]);
        const [edu] = await storage.federation.peekEdus(hs1, 1);
        await storage.federation.ackEdus(hs1, edu!.id);
        await storage.federation.ackPdus("c.example", events[0]!.streamPos);
        expect(await storage.federation.destinationsWithBacklog()).toEqual(["c.example", hs2]);
      });

      it("queues in the same transaction as the event: a rolled-back append queues nothing", async () => {
        await expect(
          storage.transaction(async (tx) => {
            const log = await newRoom("!t:x", tx);
            const events = await log.append(tx, [createEvent("!t:x")]);
            await tx.federation.enqueuePdus(queued(hs1, events));
            await tx.federation.enqueueEdus([{ destination: hs1, edu: { edu_type: "m.typing", content: {} } }]);
            throw new Error("rollback");
          }),
        ).rejects.toThrow("rollback");
        expect(await storage.federation.destinationsWithBacklog()).toEqual([]);
      });

      it("keeps each destination's retry state, replaced by put, listed in pages", async () => {
        const dest = (destination: string, overrides: Partial<DestinationRow> = {}): DestinationRow => ({
          destination,
          failures: 0,
          retryAtTs: null,
          lastError: null,
          lastSuccessTs: null,
          ...overrides,
        });
        expect(await storage.federation.getDestination(hs1)).toBeUndefined();
        await storage.federation.putDestination(dest(hs1, { failures: 3, retryAtTs: 1_700_000_060_000, lastError: "ECONNREFUSED" }));
        expect(await storage.federation.getDestination(hs1)).toEqual(dest(hs1, { failures: 3, retryAtTs: 1_700_000_060_000, lastError: "ECONNREFUSED" }));
        await storage.federation.putDestination(dest(hs1, { lastSuccessTs: 1_700_000_100_000 }));
        expect(await storage.federation.getDestination(hs1)).toEqual(dest(hs1, { lastSuccessTs: 1_700_000_100_000 }));

        await storage.federation.putDestination(dest("c.example"));
        await storage.federation.putDestination(dest(hs2, { failures: 1 }));
        const names = (rows: DestinationRow[]): string[] => rows.map((r) => r.destination);
        expect(names(await storage.federation.listDestinations({ limit: 2 }))).toEqual(["c.example", hs1]);
        expect(names(await storage.federation.listDestinations({ from: hs1, limit: 2 }))).toEqual([hs2]);
        expect(await storage.federation.listDestinations({ from: hs2, limit: 2 })).toEqual([]);
        expect((await storage.federation.listDestinations({ limit: 10 }))[2]).toEqual(dest(hs2, { failures: 1 }));
      });

      it("replays the first response of an inbound transaction and forgets old ones", async () => {
        const txn = (origin: string, txnId: string, receivedTs: number, pdus: JsonObject = {}) => ({ origin, txnId, response: { pdus }, receivedTs });
        expect(await storage.federation.getInboundTxn(hs1, "t1")).toBeUndefined();
        await storage.federation.putInboundTxn(txn(hs1, "t1", 1_000, { $a: {} }));
        // A second put of the same (origin, txnId), as a concurrent duplicate would: the first stays.
        await storage.federation.putInboundTxn(txn(hs1, "t1", 1_500, { $a: { error: "late" } }));
        await storage.federation.putInboundTxn(txn(hs2, "t1", 2_000));
        await storage.federation.putInboundTxn(txn(hs1, "t2", 3_000));
        expect(await storage.federation.getInboundTxn(hs1, "t1")).toEqual(txn(hs1, "t1", 1_000, { $a: {} }));
        expect(await storage.federation.getInboundTxn(hs2, "t1")).toEqual(txn(hs2, "t1", 2_000));

        expect(await storage.federation.pruneInboundTxns(2_000)).toBe(1);
        expect(await storage.federation.getInboundTxn(hs1, "t1")).toBeUndefined();
        expect(await storage.federation.getInboundTxn(hs2, "t1")).toBeDefined();
        expect(await storage.federation.pruneInboundTxns(2_000)).toBe(0);
        expect(await storage.federation.pruneInboundTxns(10_000)).toBe(2);
        expect(await storage.federation.getInboundTxn(hs1, "t2")).toBeUndefined();
      });

      it("remembers which event each completed LPDU became; the first completion stands", async () => {
        expect(await storage.federation.getCompletedLpdu("$lpdu1")).toBeUndefined();
        await storage.federation.putCompletedLpdu("$lpdu1", "$event1", hs1, 1_000);
        await storage.federation.putCompletedLpdu("$lpdu2", "$event2", hs2, 2_000);
        await storage.federation.putCompletedLpdu("$lpdu1", "$other", hs1, 3_000);
        expect(await storage.federation.getCompletedLpdu("$lpdu1")).toBe("$event1");
        expect(await storage.federation.getCompletedLpdu("$lpdu2")).toBe("$event2");
      });

      it("records and finds completed LPDUs in batches; the first completion still stands", async () => {
        await storage.federation.putCompletedLpdu("$b1", "$first", hs1, 1_000);
        await storage.federation.putCompletedLpdus([], hs1, 1_500);
        await storage.federation.putCompletedLpdus(
          [
            { lpduId: "$b1", eventId: "$again" },
            { lpduId: "$b2", eventId: "$e2" },
            { lpduId: "$b3", eventId: "$e3" },
          ],
          hs2,
          2_000,
        );
        expect(await storage.federation.getCompletedLpdus(["$b1", "$b2", "$b3", "$b2", "$unknown"])).toEqual(
          new Map([
            ["$b1", "$first"],
            ["$b2", "$e2"],
            ["$b3", "$e3"],
          ]),
        );
        expect(await storage.federation.getCompletedLpdus([])).toEqual(new Map());
        // More IDs than one statement binds.
        const many = Array.from({ length: 1_203 }, (_, i) => ({ lpduId: `$m${i}`, eventId: `$x${i}` }));
        await storage.federation.putCompletedLpdus(many, hs1, 3_000);
        const found = await storage.federation.getCompletedLpdus(many.map((row) => row.lpduId));
        expect(found.size).toBe(1_203);
        expect(found.get("$m1202")).toBe("$x1202");
      });

      it("records hub violations, listed by room or all, in the order found", async () => {
        const violation = (roomId: string, eventId: string, detectedTs: number) => ({ roomId, eventId, hubServer: "hub.example", reason: "auth rule 4.1 failed", detectedTs });
        expect(await storage.federation.listHubViolations()).toEqual([]);
        await storage.federation.addHubViolation(violation("!b:x", "$1", 3_000));
        await storage.federation.addHubViolation(violation("!a:x", "$2", 2_000));
        await storage.federation.addHubViolation(violation("!b:x", "$3", 1_000));
        expect(await storage.federation.listHubViolations("!b:x")).toEqual([violation("!b:x", "$1", 3_000), violation("!b:x", "$3", 1_000)]);
        expect(await storage.federation.listHubViolations("!a:x")).toEqual([violation("!a:x", "$2", 2_000)]);
        expect(await storage.federation.listHubViolations("!none:x")).toEqual([]);
        expect((await storage.federation.listHubViolations()).map((v) => v.eventId)).toEqual(["$1", "$2", "$3"]);
      });
    });
  });
}
