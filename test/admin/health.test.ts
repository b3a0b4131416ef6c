// GET /health: on a real homeserver (200 while SQLite answers, 503 once the database is gone), and
// the route alone for a database that hangs.
import type { AddressInfo } from "node:net";
import { createHttpApp } from "../../src/app/http-app.js";
import pino from "pino";
import { healthRoutes } from "../../src/admin/health.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

describe("GET /health on a homeserver", () => {
  let server: TestServer;
  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    await server.close();
  });

  it("answers 200 {status: ok} without authentication while the database answers", async () => {
    const response = await fetch(`${server.baseUrl}/health`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  it("answers 503 once the database cannot be queried", async () => {
    await server.homeserver.storage.close();
    const response = await fetch(`${server.baseUrl}/health`);
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ status: "unavailable", reason: "database" });
  });
});

describe("healthRoutes", () => {
  it("answers 503 when the database does not answer in time", async () => {
    const app = createHttpApp({ logger: pino({ level: "silent" }), maxRequestBytes: 1024, mounts: [["/", healthRoutes({ storage: { maxStreamPos: () => new Promise<number>(() => undefined), writeFailure: () => undefined }, logger: pino({ level: "silent" }), timeoutMs: 100 })]] });
    const listener = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => listener.once("listening", resolve));
    try {
      const started = Date.now();
      const response = await fetch(`http://127.0.0.1:${(listener.address() as AddressInfo).port}/health`);
      expect(response.status).toBe(503);
      expect(Date.now() - started).toBeGreaterThanOrEqual(90);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      listener.closeAllConnections();
      await new Promise((resolve) => listener.close(resolve));
    }
  });

  it("answers 503 while the database answers reads but refuses writes (a failed WAL sync)", async () => {
    let failure: Error | undefined;
    const storage = { maxStreamPos: async () => 7, writeFailure: () => failure };
    const app = createHttpApp({ logger: pino({ level: "silent" }), maxRequestBytes: 1024, mounts: [["/", healthRoutes({ storage, logger: pino({ level: "silent" }) })]] });
    const listener = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => listener.once("listening", resolve));
    try {
      const url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}/health`;
      expect((await fetch(url)).status).toBe(200);
      failure = new Error("storage refuses writes: syncing the SQLite WAL failed");
      const response = await fetch(url);
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ status: "unavailable", reason: "database refuses writes" });
    } finally {
      listener.closeAllConnections();
      await new Promise((resolve) => listener.close(resolve));
    }
  });
});
