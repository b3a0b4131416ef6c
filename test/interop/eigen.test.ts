// Interoperability with eigen-server, the Linearized Matrix reference demo, run as a real process
// on loopback over plain HTTP (its ES_INSECURE_HTTP option). Each server's name advertises the
// port of a recording proxy in front of it, so every federation request between the two is
// captured; a failing test quotes them. docs/interop-eigen.md has the setup and the findings.
//
// Runs only when EIGEN_DIR names a built eigen checkout, e.g.
//   EIGEN_DIR=/tmp/eigen node --experimental-vm-modules node_modules/jest/bin/jest.js test/interop
// EIGEN_TRACE=<file> also writes every recorded exchange to that file.
import { writeFileSync } from "node:fs";
import { jest } from "@jest/globals";
import { decodeBase64 } from "../../src/core/base64.js";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import type { JsonObject } from "../../src/core/json.js";
import { verifyJsonSignatures } from "../../src/core/signing.js";
import { getRoomVersion, LINEARIZED_02 as LM_02 } from "../../src/core/room-versions.js";
import { RoomLog } from "../../src/room-dag/room-log.js";
import { receivePdu } from "../../src/room-dag/pipeline.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";
import { connectEigenUser, dumpHubRoom, eigenEvent, PacketType, parseJson, type EigenUser, type Packet } from "./eigen-client.js";
import { eigenCheckEvents, eigenCheckout, eigenFetchServerKeys, startEigen, type EigenServer } from "./eigen-process.js";
import { describeExchanges, startRecordingProxy, type Exchange, type RecordingProxy } from "./recording-proxy.js";

const checkout = eigenCheckout();
const describeWithEigen =
  "dir" in checkout
    ? describe
    : (name: string, body: () => void): void => {
        const why = `${name} skipped: ${checkout.missing}. Set EIGEN_DIR to a built eigen-server checkout to run it (docs/interop-eigen.md).`;
        console.warn(why);
        describe.skip(why, body);
      };

// Long enough for every wait below (at most 30 s each) to fail first and quote the exchanges.
jest.setTimeout(120_000);

describeWithEigen("interop with eigen-server", () => {
  const exchanges: Exchange[] = [];
  const proxies: RecordingProxy[] = [];
  let bobbin: TestServer;
  let eigen: EigenServer;
  const eigenUsers: EigenUser[] = [];

  beforeAll(async () => {
    const dir = (checkout as { dir: string }).dir;
    const [bobbinPublic, bobbinListen, eigenPublic, eigenListen] = [await freePort(), await freePort(), await freePort(), await freePort()];
    proxies.push(await startRecordingProxy({ port: bobbinPublic, targetPort: bobbinListen, label: "bobbin", exchanges }));
    proxies.push(await startRecordingProxy({ port: eigenPublic, targetPort: eigenListen, label: "eigen", exchanges }));
    bobbin = await startTestServer({
      serverName: `localhost:${bobbinPublic}`,
      port: bobbinListen,
      federation: { allowInsecureHttp: true, trustedKeyServers: [] },
    });
    eigen = await startEigen({ dir, publicPort: eigenPublic, listenPort: eigenListen });
  });

  afterAll(async () => {
    if (process.env.EIGEN_TRACE) writeFileSync(process.env.EIGEN_TRACE, `${describeExchanges(exchanges, 100_000)}\n\n--- eigen output ---\n${eigen?.output() ?? ""}`);
    for (const user of eigenUsers) user.close();
    await eigen?.stop();
    await bobbin?.close();
    for (const proxy of proxies) await proxy.close();
  });

  /** Runs a scenario; on failure, appends the federation exchanges it caused and eigen's last output. */
  async function withTrace(scenario: () => Promise<void>): Promise<void> {
    const firstExchange = exchanges.length;
    const outputBefore = eigen.output().length;
    try {
      await scenario();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const eigenOutput = eigen.output().slice(outputBefore).split("\n").slice(-40).join("\n");
      throw new Error(`${message}\n\n--- federation exchanges ---\n${describeExchanges(exchanges.slice(firstExchange))}\n\n--- eigen output ---\n${eigenOutput}`);
    }
  }

  async function eigenUser(localpart: string): Promise<EigenUser> {
    const user = await connectEigenUser(eigen, localpart);
    eigenUsers.push(user);
    return user;
  }

  /** Polls until `probe` returns a value (not undefined), or fails after `timeoutMs`. */
  async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The Bobbin room timeline as the user's client sees it, oldest first. */
  async function bobbinTimeline(token: string, roomId: string): Promise<Array<Record<string, any>>> {
    const { status, body } = await bobbin.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=500`, { token });
    if (status !== 200) throw new Error(`Bobbin /messages: ${status} ${JSON.stringify(body)}`);
    return [...(body.chunk as Array<Record<string, any>>)].reverse();
  }

  /** `promise`, or a failure naming `what` after `timeoutMs`. */
  async function within<T>(timeoutMs: number, what: string, promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for an eigen packet; an Error packet received meanwhile fails at once with its message. */
  async function expectPacket(user: EigenUser, match: (packet: Packet) => boolean, what: string): Promise<Packet> {
    const packet = await user.waitForPacket((p) => match(p) || p.type === PacketType.Error, what);
    if (packet.type === PacketType.Error && !match(packet)) throw new Error(`eigen answered ${user.userId} with an error instead of ${what}: ${JSON.stringify(packet)}`);
    return packet;
  }

  test("keys both ways: Bobbin's notary serves eigen's keys, eigen's KeyStore accepts Bobbin's", () =>
    withTrace(async () => {
      // eigen's own answer, straight from it.
      const direct = parseJson(await (await fetch(`${eigen.baseUrl}/_matrix/key/v2/server`)).text()) as JsonObject;
      const eigenKeys = direct.verify_keys as Record<string, { key: string }>;
      expect(direct.server_name).toBe(eigen.serverName);

      // Bobbin's notary: fetches it over HTTP, checks it, answers it with its own signature added.
      const notary = await bobbin.request("GET", `/_matrix/key/v2/query/${encodeURIComponent(eigen.serverName)}`);
      expect(notary.status).toBe(200);
      expect(notary.body.server_keys).toHaveLength(1);
      const relayed = notary.body.server_keys[0] as JsonObject;
      expect(relayed.server_name).toBe(eigen.serverName);
      expect(relayed.verify_keys).toEqual(eigenKeys);
      expect(relayed["m.linearized"]).toBe(true);
      const keyOf = (keys: Record<string, { key: string }>) => (_entity: string, keyId: string) => {
        const key = keys[keyId]?.key;
        return key ? nativeEd25519.verifierFromPublicKey(decodeBase64(key)!) : undefined;
      };
      expect(verifyJsonSignatures(relayed, eigen.serverName, keyOf(eigenKeys), "utf16")).toEqual({ ok: true });
      const bobbinOwn = await bobbin.request("GET", "/_matrix/key/v2/server");
      expect(verifyJsonSignatures(relayed, bobbin.serverName, keyOf(bobbinOwn.body.verify_keys), "utf16")).toEqual({ ok: true });
      // The notary really went to eigen (through its proxy) for them.
      expect(exchanges.some((e) => e.to === "eigen" && e.path === "/_matrix/key/v2/server" && e.status === 200)).toBe(true);

      // eigen's KeyStore: fetches Bobbin's /_matrix/key/v2/server, checks server_name and every signature.
      const accepted = await eigenFetchServerKeys(eigen.dir, bobbin.serverName);
      expect(accepted).toEqual({ "ed25519:test": bobbinOwn.body.verify_keys["ed25519:test"].key });
    }));

  test("eigen to eigen (driver check): Bobbin's receive pipeline accepts every event of an eigen room", () =>
    withTrace(async () => {
      // A second eigen as the participant, so that the hub room holds events completed from LPDUs.
      const [publicPort, listenPort] = [await freePort(), await freePort()];
      const proxy = await startRecordingProxy({ port: publicPort, targetPort: listenPort, label: "eigen2", exchanges });
      const eigen2 = await startEigen({ dir: eigen.dir, publicPort, listenPort });
      try {
        const erin = await eigenUser("erin");
        const frank = await connectEigenUser(eigen2, "frank");
        eigenUsers.push(frank);
        const roomId = await erin.createRoom();
        erin.invite(roomId, frank.userId);
        await expectPacket(frank, (p) => p.type === PacketType.RoomInvited && p.roomId === roomId, "frank's invite");
        frank.join(roomId);
        await expectPacket(frank, (p) => p.type === PacketType.RoomJoined && p.roomId === roomId && p.targetUserId === frank.userId, "frank's join");
        frank.sendText(roomId, "from the participant");
        await expectPacket(erin, (p) => p.type === PacketType.Event && p.event?.content?.body === "from the participant", "frank's message at the hub");
        erin.sendText(roomId, "from the hub");
        await expectPacket(frank, (p) => p.type === PacketType.Event && p.event?.content?.body === "from the hub", "erin's message at the participant");

        const dumped = await dumpHubRoom(eigen, roomId);
        expect(dumped.map((e) => [e.type, e.content?.membership ?? e.content?.body ?? ""])).toEqual([
          ["m.room.create", ""],
          ["m.room.member", "join"],
          ["m.room.power_levels", ""],
          ["m.room.join_rules", ""],
          ["m.room.history_visibility", ""],
          ["m.room.member", "invite"],
          ["m.room.member", "join"],
          ["m.room.message", "from the participant"],
          ["m.room.message", "from the hub"],
        ]);
        // Frank's join and message were completed by the hub from LPDUs.
        expect(dumped.filter((e) => e.hub_server === eigen.serverName).map((e) => e.sender)).toEqual([frank.userId, frank.userId]);

        // Bobbin's pure receive pipeline (schema, signatures incl. the LPDU form, both content
        // hashes, reference hash, LM auth rules) on eigen's events, in eigen's order.
        const keys = new Map<string, Record<string, { key: string }>>();
        for (const server of [eigen, eigen2]) {
          keys.set(server.serverName, (parseJson(await (await fetch(`${server.baseUrl}/_matrix/key/v2/server`)).text()) as JsonObject).verify_keys as Record<string, { key: string }>);
        }
        const lookup = (entity: string, keyId: string) => {
          const key = keys.get(entity)?.[keyId]?.key;
          return key ? nativeEd25519.verifierFromPublicKey(decodeBase64(key)!) : undefined;
        };
        const log = new RoomLog(roomId);
        const rules = getRoomVersion(LM_02)!;
        for (const { event_id: eigenId, ...pdu } of dumped) {
          const outcome = receivePdu(pdu, { rules, keys: lookup, stateBefore: log, roomId });
          expect({ eigenId, outcome: outcome.action, eventId: "event" in outcome ? outcome.event.eventId : outcome }).toEqual({ eigenId, outcome: "accept", eventId: eigenId });
          if (outcome.action === "accept") log.append(outcome.event);
        }
      } finally {
        await eigen2.stop();
        await proxy.close();
      }
    }));

  test("eigen's own checks accept every event of a Bobbin hub room, with the same event IDs", () =>
    withTrace(async () => {
      const gina = await bobbin.register("gina");
      const created = await bobbin.request("POST", "/_matrix/client/v3/createRoom", {
        token: gina.accessToken,
        body: { preset: "private_chat", room_version: LM_02, name: "Interop", topic: "eigen checks Bobbin" },
      });
      expect(created.status).toBe(200);
      const roomId = created.body.room_id as string;
      const sent = await bobbin.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, {
        token: gina.accessToken,
        body: { msgtype: "m.text", body: "a message eigen must accept" },
      });
      expect(sent.status).toBe(200);
      const stored = await bobbin.homeserver.storage.events.getRoomEvents(roomId, { direction: "forward", limit: 100 });
      expect(stored.map((e) => e.pdu.type)).toEqual([
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.guest_access",
        "m.room.name",
        "m.room.topic",
        "m.room.message",
      ]);
      // eigen fetches Bobbin's key itself (through the proxy), then checks each event in order.
      const verdicts = await eigenCheckEvents(eigen.dir, stored.map((e) => e.pdu));
      expect(verdicts).toEqual(stored.map((e) => ({ eventId: e.eventId })));
      expect(verdicts[verdicts.length - 1]?.eventId).toBe(sent.body.event_id);
    }));

  test("known difference: eigen's redaction keeps join_rules.allow, so such an event has another ID and fails its signature check", () =>
    withTrace(async () => {
      const hana = await bobbin.register("hana");
      const created = await bobbin.request("POST", "/_matrix/client/v3/createRoom", { token: hana.accessToken, body: { preset: "private_chat", room_version: LM_02 } });
      const roomId = created.body.room_id as string;
      const allow = [{ type: "m.room_membership", room_id: "!elsewhere:example.org" }];
      const changed = await bobbin.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.join_rules`, {
        token: hana.accessToken,
        body: { join_rule: "invite", allow },
      });
      expect(changed.status).toBe(200);
      const stored = await bobbin.homeserver.storage.events.getRoomEvents(roomId, { direction: "forward", limit: 100 });
      const verdicts = await eigenCheckEvents(eigen.dir, stored.map((e) => e.pdu));
      // Everything before agrees; the join_rules event with `allow` does not (the draft keeps only `join_rule`).
      expect(verdicts.slice(0, -1)).toEqual(stored.slice(0, -1).map((e) => ({ eventId: e.eventId })));
      const last = verdicts[verdicts.length - 1]!;
      expect(last.eventId).not.toBe(changed.body.event_id);
      expect(last.error).toMatch(/Signature error/);
    }));

  test("eigen hub, Bobbin participant: invite, join, messages both ways, one timeline", () =>
    withTrace(async () => {
      const bob = await bobbin.register("bob");
      const alice = await eigenUser("alice");
      const roomId = await alice.createRoom();

      // 1. eigen invites @bob: a POST .../invite to Bobbin, which must sign the invite.
      alice.invite(roomId, bob.userId);
      await expectPacket(alice, (p) => p.type === PacketType.RoomInvited && p.roomId === roomId && p.targetUserId === bob.userId, "the invite of bob in the room");
      await eventually(async () => {
        const sync = await bobbin.request("GET", "/_matrix/client/v3/sync?timeout=0", { token: bob.accessToken });
        return sync.body?.rooms?.invite?.[roomId];
      }, "the invite in bob's /sync");

      // 2. Bob accepts: Bobbin does make_join/send_join with the hub.
      const joined = await within(30_000, "Bobbin's answer to bob's /join", bobbin.request("POST", `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { token: bob.accessToken, body: {} }));
      expect(joined).toEqual({ status: 200, body: { room_id: roomId } });
      await expectPacket(alice, (p) => p.type === PacketType.RoomJoined && p.roomId === roomId && p.targetUserId === bob.userId, "bob's join");

      // 3. Messages both ways: Bob's goes to the hub as an LPDU, Alice's comes back as a PDU.
      const sent = await within(30_000, "Bobbin's answer to bob's send", bobbin.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, {
        token: bob.accessToken,
        body: { msgtype: "m.text", body: "hello from Bobbin" },
      }));
      expect(sent.status).toBe(200);
      const fromBob = await expectPacket(alice, (p) => p.type === PacketType.Event && p.event?.content?.body === "hello from Bobbin", "bob's message");
      expect(fromBob.event.sender).toBe(bob.userId);
      alice.sendText(roomId, "hello from eigen");
      await eventually(async () => {
        const timeline = await bobbinTimeline(bob.accessToken, roomId);
        return timeline.find((e) => e.content?.body === "hello from eigen");
      }, "alice's message in bob's timeline");

      // 4. One timeline: same events, same order, same IDs. Bobbin may hold less of the history
      // before its join, never anything eigen lacks, and from the join on exactly the same.
      const eigenIds = (await dumpHubRoom(eigen, roomId)).map((e) => e.event_id as string);
      const bobbinEvents = await bobbinTimeline(bob.accessToken, roomId);
      const bobbinIds = bobbinEvents.map((e) => e.event_id as string);
      expect(bobbinIds.filter((id) => !eigenIds.includes(id))).toEqual([]);
      expect(eigenIds.filter((id) => bobbinIds.includes(id))).toEqual(bobbinIds);
      const bobJoinId = bobbinEvents.find((e) => e.type === "m.room.member" && e.state_key === bob.userId && e.content?.membership === "join")?.event_id;
      expect(bobJoinId).toBeDefined();
      expect(bobbinIds.slice(bobbinIds.indexOf(bobJoinId))).toEqual(eigenIds.slice(eigenIds.indexOf(bobJoinId)));
      expect(sent.body.event_id).toBe(fromBob.event.event_id);
      expect(bobbinEvents.slice(-2).map((e) => [e.sender, e.content?.body])).toEqual([
        [bob.userId, "hello from Bobbin"],
        [alice.userId, "hello from eigen"],
      ]);
    }));

  test("Bobbin hub, eigen participant: invite, join, messages both ways, one timeline", () =>
    withTrace(async () => {
      const carol = await bobbin.register("carol");
      const dave = await eigenUser("dave");
      const created = await bobbin.request("POST", "/_matrix/client/v3/createRoom", {
        token: carol.accessToken,
        body: { preset: "private_chat", room_version: LM_02 },
      });
      expect(created.status).toBe(200);
      const roomId = created.body.room_id as string;

      // 1. Bobbin invites the eigen user: a POST .../invite to eigen, which signs it.
      const invited = await within(30_000, "Bobbin's answer to the invite", bobbin.request("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, {
        token: carol.accessToken,
        body: { user_id: dave.userId },
      }));
      expect(invited).toEqual({ status: 200, body: {} });
      await expectPacket(dave, (p) => p.type === PacketType.RoomInvited && p.roomId === roomId && p.targetUserId === dave.userId, "dave's invite");

      // 2. eigen joins: make_join/send_join against the Bobbin hub.
      dave.join(roomId);
      await expectPacket(dave, (p) => p.type === PacketType.RoomJoined && p.roomId === roomId && p.targetUserId === dave.userId, "dave's own join");
      await eventually(async () => {
        const members = await bobbin.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`, { token: carol.accessToken });
        return members.body?.joined?.[dave.userId];
      }, "dave among the joined members on Bobbin");

      // 3. Messages both ways: Carol's reaches eigen as a PDU; Dave's reaches the hub as an LPDU.
      const sent = await bobbin.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, {
        token: carol.accessToken,
        body: { msgtype: "m.text", body: "hello from the Bobbin hub" },
      });
      expect(sent.status).toBe(200);
      const fromCarol = await expectPacket(dave, (p) => p.type === PacketType.Event && p.event?.content?.body === "hello from the Bobbin hub", "carol's message");
      expect(fromCarol.event.event_id).toBe(sent.body.event_id);
      dave.sendText(roomId, "hello from eigen");
      const fromDave = await expectPacket(dave, (p) => p.type === PacketType.Event && p.event?.content?.body === "hello from eigen", "the hub's echo of dave's message");
      const bobbinEvents = await eventually(async () => {
        const timeline = await bobbinTimeline(carol.accessToken, roomId);
        return timeline.some((e) => e.content?.body === "hello from eigen") ? timeline : undefined;
      }, "dave's message in carol's timeline");

      // 4. One timeline: the messages arrived at eigen in Bobbin's order with Bobbin's IDs, and
      // eigen holds every event from dave's join on, byte for byte the same in its signed fields.
      const bobbinIds = bobbinEvents.map((e) => e.event_id as string);
      const eigenMessageIds = dave.packets.filter((p) => p.type === PacketType.Event && p.event?.room_id === roomId && p.event?.type === "m.room.message").map((p) => p.event.event_id as string);
      expect(eigenMessageIds).toEqual(bobbinEvents.filter((e) => e.type === "m.room.message").map((e) => e.event_id));
      expect(fromDave.event.event_id).toBe(bobbinIds[bobbinIds.length - 1]);
      const daveJoin = bobbinEvents.find((e) => e.type === "m.room.member" && e.state_key === dave.userId && e.content?.membership === "join");
      expect(daveJoin).toBeDefined();
      for (const event of bobbinEvents.slice(bobbinEvents.indexOf(daveJoin!))) {
        const held = await eigenEvent(eigen, event.event_id);
        expect({ id: event.event_id, type: held?.type, content: held?.content }).toEqual({ id: event.event_id, type: event.type, content: event.content });
      }
      // Every state event of the room reached eigen in the send_join response.
      const state = await bobbin.request("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state`, { token: carol.accessToken });
      for (const event of state.body as Array<Record<string, any>>) {
        expect({ id: event.event_id, held: (await eigenEvent(eigen, event.event_id)) !== undefined }).toEqual({ id: event.event_id, held: true });
      }
    }));
});
