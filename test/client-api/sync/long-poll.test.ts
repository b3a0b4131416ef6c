// Long-polling /sync (Client-Server API "Syncing"): when a request may wait without computing an
// answer, and that a long-poll whose client has gone stops waiting. Over real HTTP, with the
// server's own gauge of syncs in progress.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startHomeserver, type Homeserver } from "../../../src/app/homeserver.js";
import { nothingNewSince, type SyncRequest } from "../../../src/client-api/sync/build-response.js";
import { parseSyncFilter } from "../../../src/client-api/sync/filter.js";
import { TypingTracker } from "../../../src/client-api/sync/typing.js";
import { freePort, sqliteHomeserverSettings } from "../../support/test-server.js";
import { waitFor } from "../../support/wait.js";

describe("nothingNewSince: a long-poll at the current token may wait without computing", () => {
  const typing = new TypingTracker(() => 1_000, () => undefined);
  afterAll(() => typing.close());
  const rooms: ReadonlyMap<string, string> = new Map([
    ["!joined:x", "join"],
    ["!invited:x", "invite"],
  ]);
  const request = (since: { streamPos: number; typingSerial: number } | undefined, fullState = false): SyncRequest => ({
    userId: "@a:x",
    deviceId: "DEV",
    filter: parseSyncFilter(undefined),
    fullState,
    ...(since ? { since } : {}),
  });

  test("only a token already at the stream's end, without full_state, has nothing new", () => {
    const readers = { typing, toDeviceBacklog: new Set<string>() };
    const serial = typing.currentSerial;
    expect(nothingNewSince(readers, request({ streamPos: 5, typingSerial: serial }), rooms, 5, serial)).toBe(true);
    // A token ahead of the stream (a restored database) has an empty window too.
    expect(nothingNewSince(readers, request({ streamPos: 9, typingSerial: serial }), rooms, 5, serial)).toBe(true);
    expect(nothingNewSince(readers, request({ streamPos: 4, typingSerial: serial }), rooms, 5, serial)).toBe(false);
    expect(nothingNewSince(readers, request(undefined), rooms, 5, serial)).toBe(false);
    expect(nothingNewSince(readers, request({ streamPos: 5, typingSerial: serial }, true), rooms, 5, serial)).toBe(false);
  });

  test("to-device messages left over from the last sync are read again, whatever the token", () => {
    // SyncReaders.toDeviceBacklog names devices as `user\0device`.
    const readers = { typing, toDeviceBacklog: new Set(["@a:x\u0000DEV"]) };
    expect(nothingNewSince(readers, request({ streamPos: 5, typingSerial: typing.currentSerial }), rooms, 5, typing.currentSerial)).toBe(false);
  });

  test("typing since the token counts in the user's rooms only", () => {
    const readers = { typing, toDeviceBacklog: new Set<string>() };
    const token = { streamPos: 5, typingSerial: typing.currentSerial };
    typing.setTyping("!elsewhere:x", "@b:x", true, 10_000);
    expect(nothingNewSince(readers, request(token), rooms, 5, typing.currentSerial)).toBe(true);
    typing.setTyping("!invited:x", "@b:x", true, 10_000);
    expect(nothingNewSince(readers, request(token), rooms, 5, typing.currentSerial)).toBe(false);
    // A typing serial from before a restart is below every new one: nothing typed since counts as new.
    expect(nothingNewSince(readers, request({ streamPos: 5, typingSerial: 0 }), new Map([["!joined:x", "join"]]), 5, typing.currentSerial)).toBe(true);
  });
});

describe("long-polls over HTTP", () => {
  let dataDir: string;
  let homeserver: Homeserver;
  let baseUrl: string;
  let metricsPort: number;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "bobbin-long-poll-"));
    metricsPort = await freePort();
    homeserver = await startHomeserver(sqliteHomeserverSettings(dataDir, { metrics: { host: "127.0.0.1", port: metricsPort } }));
    baseUrl = `${homeserver.urls[0]!}/_matrix/client/v3`;
  });
  afterAll(async () => {
    await homeserver.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function syncsInProgress(): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return Number(/^bobbin_sync_requests_in_progress (\S+)$/m.exec(text)?.[1]);
  }

  async function register(username: string): Promise<string> {
    const post = (body: unknown) => fetch(`${baseUrl}/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const first = (await (await post({ username, password: "correct horse" })).json()) as { session: string };
    return ((await (await post({ username, password: "correct horse", auth: { type: "m.login.dummy", session: first.session } })).json()) as { access_token: string }).access_token;
  }

  // `any`: the test reads a few fields of the sync response.
  async function call(token: string, method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<any> {
    const response = await fetch(`${baseUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }), ...(signal ? { signal } : {}) });
    expect(response.status).toBe(200);
    return response.json();
  }

  test("a long-poll whose client goes away stops waiting", async () => {
    const token = await register("leaver");
    const start = await call(token, "GET", "/sync?timeout=0");
    const abort = new AbortController();
    const polling = call(token, "GET", `/sync?timeout=60000&since=${start.next_batch}`, undefined, abort.signal).catch((error: Error) => error.name);
    await waitFor("the long-poll to be waiting", async () => ((await syncsInProgress()) === 1 ? true : undefined));
    abort.abort();
    expect(await polling).toBe("AbortError");
    // Well before its 60 s timeout.
    await waitFor("the long-poll to end", async () => ((await syncsInProgress()) === 0 ? true : undefined), 5_000);
  });

  test("a long-poll from a token older than a typing change returns it at once", async () => {
    const alice = await register("typist-a");
    const bob = await register("typist-b");
    const roomId = (await call(alice, "POST", "/createRoom", { preset: "public_chat" })).room_id as string;
    await call(bob, "POST", `/join/${encodeURIComponent(roomId)}`, {});
    const bobId = (await call(bob, "GET", "/account/whoami")).user_id as string;
    const start = await call(alice, "GET", "/sync?timeout=0");
    // Typing moves no stream position: only the token's typing serial is behind.
    await call(bob, "PUT", `/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(bobId)}`, { typing: true, timeout: 10_000 });
    const started = Date.now();
    const answer = await call(alice, "GET", `/sync?timeout=20000&since=${start.next_batch}`);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(answer.rooms.join[roomId].ephemeral.events).toContainEqual({ type: "m.typing", content: { user_ids: [bobId] } });
  });
});
