// Prometheus metrics on a real homeserver: its own listener, scraped over HTTP as Prometheus does.
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startHomeserver, type Homeserver, type HomeserverSettings } from "../../src/app/homeserver.js";
import { createMetrics } from "../../src/admin/metrics.js";
import { freePort, sqliteHomeserverSettings } from "../support/test-server.js";
import { waitFor } from "../support/wait.js";

let dataDir: string;
let homeserver: Homeserver;
let baseUrl: string;
let metricsPort: number;

function settings(overrides: Partial<HomeserverSettings> = {}): HomeserverSettings {
  return sqliteHomeserverSettings(dataDir, {
    // Plain HTTP to localhost:1 (a server name with an explicit port: no discovery) fails at once (connection refused): a destination in backoff.
    federation: { allowInsecureHttp: true, trustedKeyServers: [] },
    ...overrides,
  });
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "bobbin-metrics-"));
  metricsPort = await freePort();
  homeserver = await startHomeserver(settings({ metrics: { host: "127.0.0.1", port: metricsPort } }));
  baseUrl = homeserver.urls[0]!;
  expect(homeserver.metricsUrl).toBe(`http://127.0.0.1:${metricsPort}`);
});

afterAll(async () => {
  await homeserver.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function scrape(): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

/** The value of one sample, e.g. `bobbin_http_requests_total{method="GET",...}`; undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) return Number(match[3]);
  }
  return undefined;
}

async function register(localpart: string): Promise<{ token: string; userId: string }> {
  const post = (body: unknown) => fetch(`${baseUrl}/_matrix/client/v3/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const first = (await (await post({ username: localpart, password: "correct horse" })).json()) as { session?: string };
  const done = await post({ username: localpart, password: "correct horse", auth: { type: "m.login.dummy", session: first.session } });
  expect(done.status).toBe(200);
  const body = (await done.json()) as { access_token: string; user_id: string };
  return { token: body.access_token, userId: body.user_id };
}

function authed(token: string, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${baseUrl}${path}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
}

describe("metrics listener", () => {
  it("serves the process metrics and only /metrics", async () => {
    const text = await scrape();
    expect(sample(text, "process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(text).toContain("# TYPE bobbin_http_request_duration_seconds histogram");
    expect((await fetch(`http://127.0.0.1:${metricsPort}/`)).status).toBe(404);
  });

  it("counts a client request under its route pattern, not its path", async () => {
    const labels = { method: "GET", route: "/_matrix/client/versions", status_class: "2xx" };
    const before = sample(await scrape(), "bobbin_http_requests_total", labels) ?? 0;
    expect((await fetch(`${baseUrl}/_matrix/client/versions`)).status).toBe(200);
    expect((await fetch(`${baseUrl}/_matrix/client/versions`)).status).toBe(200);
    const text = await scrape();
    expect(sample(text, "bobbin_http_requests_total", labels)).toBe(before + 2);
    expect(sample(text, "bobbin_http_request_duration_seconds_count", labels)).toBe(before + 2);
    // An unknown path is one series, whatever the path.
    expect((await fetch(`${baseUrl}/nothing/${randomBytes(4).toString("hex")}`)).status).toBe(404);
    expect(sample(await scrape(), "bobbin_http_requests_total", { method: "GET", route: "unmatched", status_class: "4xx" })).toBeGreaterThanOrEqual(1);
  });

  it("labels a request that fails with its whole route, mount included", async () => {
    const labels = { method: "POST", route: "/_matrix/client/v3/login", status_class: "4xx" };
    const before = sample(await scrape(), "bobbin_http_requests_total", labels) ?? 0;
    const failed = await fetch(`${baseUrl}/_matrix/client/v3/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "m.login.password", user: "nobody", password: "wrong" }) });
    expect(failed.status).toBeGreaterThanOrEqual(400);
    expect(sample(await scrape(), "bobbin_http_requests_total", labels)).toBe(before + 1);
  });

  it("labels a parameterised route by its pattern and counts the events persisted in a room hosted here", async () => {
    const { token } = await register(`alice${randomBytes(3).toString("hex")}`);
    const before = sample(await scrape(), "bobbin_events_persisted_total", { room_kind: "hosted" }) ?? 0;
    const created = await authed(token, "POST", "/_matrix/client/v3/createRoom", {});
    expect(created.status).toBe(200);
    const { room_id: roomId } = (await created.json()) as { room_id: string };
    const afterCreate = sample(await scrape(), "bobbin_events_persisted_total", { room_kind: "hosted" }) ?? 0;
    // Create, the creator's join, power levels, join rules, history visibility at least.
    expect(afterCreate - before).toBeGreaterThanOrEqual(5);
    const sent = await authed(token, "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, { msgtype: "m.text", body: "hi" });
    expect(sent.status).toBe(200);
    const text = await scrape();
    expect(sample(text, "bobbin_events_persisted_total", { room_kind: "hosted" })).toBe(afterCreate + 1);
    expect(sample(text, "bobbin_events_persisted_total", { room_kind: "replica" }) ?? 0).toBe(0);
    expect(text).toMatch(/bobbin_http_requests_total\{method="PUT",route="\/_matrix\/client\/v3\/rooms\/:roomId\/send\/:eventType\/:txnId",status_class="2xx"\} 1/);
  });

  it("reports a destination that cannot be reached, with its failures and backoff", async () => {
    const { token } = await register(`bob${randomBytes(3).toString("hex")}`);
    // A to-device message for a user of another server is queued for that server.
    const sent = await authed(token, "PUT", "/_matrix/client/v3/sendToDevice/m.test/txn1", { messages: { "@carol:localhost:1": { DEVICE: { hello: "world" } } } });
    expect(sent.status).toBe(200);
    const destination = { destination: "localhost:1" };
    const text = await waitFor("a failed transaction to localhost:1", async () => {
      const scraped = await scrape();
      return (sample(scraped, "bobbin_federation_destination_failures", destination) ?? 0) >= 1 ? scraped : undefined;
    });
    expect(sample(text, "bobbin_federation_destination_phase", { ...destination, phase: "backoff" })).toBe(1);
    expect(sample(text, "bobbin_federation_destination_phase", { ...destination, phase: "sending" })).toBe(0);
    expect(sample(text, "bobbin_federation_queued_lpdus", destination)).toBe(0);
    expect(sample(text, "bobbin_federation_destinations")).toBeGreaterThanOrEqual(1);
  });

  it("counts a /sync long-poll while it waits", async () => {
    const { token, userId } = await register(`dan${randomBytes(3).toString("hex")}`);
    const first = (await (await authed(token, "GET", "/_matrix/client/v3/sync")).json()) as { next_batch: string };
    expect(sample(await scrape(), "bobbin_sync_requests_in_progress")).toBe(0);
    const polling = authed(token, "GET", `/_matrix/client/v3/sync?timeout=30000&since=${encodeURIComponent(first.next_batch)}`).catch(() => undefined);
    await waitFor("the long-poll to be counted", async () => ((sample(await scrape(), "bobbin_sync_requests_in_progress") ?? 0) === 1 ? true : undefined));
    // Something for the long-poll: it answers, and the gauge goes back down.
    expect((await authed(token, "PUT", `/_matrix/client/v3/user/${encodeURIComponent(userId)}/account_data/m.test`, { a: 1 })).status).toBe(200);
    const answered = await polling;
    expect(answered?.status).toBe(200);
    await waitFor("the gauge to go down", async () => ((sample(await scrape(), "bobbin_sync_requests_in_progress") ?? 0) === 0 ? true : undefined));
  });
});

describe("database pool and MLS commits", () => {
  it("reports the pool's connections in use, idle and waited for, as they change", async () => {
    const pool = (text: string) => ["used", "free", "pending"].map((state) => sample(text, "bobbin_database_connections", { state }));
    // SQLite: one connection, idle between requests.
    expect(pool(await scrape())).toEqual([0, 1, 0]);
    let release!: () => void;
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const transaction = homeserver.storage.transaction(async () => {
      held();
      await new Promise<void>((resolve) => (release = resolve));
    });
    await holding;
    // A query waits for the one connection the transaction holds.
    const waiting = homeserver.storage.maxStreamPos();
    await waitFor("the query to wait for a connection", async () => (pool(await scrape())[2] === 1 ? true : undefined));
    expect(pool(await scrape())).toEqual([1, 0, 1]);
    release();
    await transaction;
    await waiting;
    expect(pool(await scrape())).toEqual([0, 1, 0]);
  });

  it("counts MLS commits by outcome, both series present from the start", async () => {
    const text = await scrape();
    expect(sample(text, "bobbin_mls_commits_total", { outcome: "accepted" })).toBe(0);
    expect(sample(text, "bobbin_mls_commits_total", { outcome: "rejected" })).toBe(0);
    const metrics = createMetrics({ serverName: "localhost", processMetrics: false });
    metrics.countMlsCommit("accepted");
    metrics.countMlsCommit("accepted");
    metrics.countMlsCommit("rejected");
    const counted = await metrics.registry.metrics();
    expect(sample(counted, "bobbin_mls_commits_total", { outcome: "accepted" })).toBe(2);
    expect(sample(counted, "bobbin_mls_commits_total", { outcome: "rejected" })).toBe(1);
  });
});

describe("metrics disabled", () => {
  it("opens no metrics listener", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bobbin-metrics-off-"));
    const server = await startHomeserver({ ...settings(), database: { engine: "sqlite", path: join(dir, "homeserver.db") } });
    try {
      expect(server.metricsUrl).toBeUndefined();
      // Nor are they served on the API listener.
      expect((await fetch(`${server.urls[0]!}/metrics`)).status).toBe(404);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
