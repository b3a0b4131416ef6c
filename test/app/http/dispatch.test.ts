// The HTTP layer (src/app/http): routers compiled into one route table, over real HTTP on loopback.
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { pino } from "pino";
import { createHttpApp } from "../../../src/app/http-app.js";
import { Router, type RequestHandler } from "../../../src/app/http/router.js";
import { Errcode, MatrixError } from "../../../src/core/errors.js";
import { unrecognizedRequest } from "../../../src/client-api/http.js";

const silent = pino({ level: "silent" });

describe("the HTTP route table", () => {
  let server: Server;
  let base: string;
  /** What the middleware saw, in order, per request. */
  let trail: string[] = [];
  const mark =
    (name: string): RequestHandler =>
    (_req, _res, next) => {
      trail.push(name);
      next();
    };

  beforeAll(async () => {
    const api = new Router();
    api.use(mark("api-first"));
    api.get("/v3/things/:thingId", (req, res) => res.json({ thing: req.params.thingId, query: req.query }));
    api.put("/v3/things/:thingId", (req, res) => res.json({ body: req.body }));
    api.get("/v3/state/:eventType{/:stateKey}", (req, res) => res.json({ type: req.params.eventType, stateKey: req.params.stateKey ?? null }));
    api.get("/v3/async-failure", async () => {
      await Promise.resolve();
      throw new MatrixError(Errcode.FORBIDDEN, 403, "no");
    });
    api.get("/v3/crash", () => {
      throw new Error("secret detail");
    });
    api.use(mark("api-guard"));
    api.get("/v3/guarded", (_req, res) => res.json({ guarded: true }));
    api.alias("/r0/", "/v3/");
    api.use(unrecognizedRequest);

    // Another router under the same mount, met first, declaring a route the API also has: it wins.
    const first = new Router();
    first.get("/v3/twice", (_req, res) => res.json({ router: "first" }));
    first.get("/v3/only-here", (_req, res) => res.json({ here: true }));
    api.get("/v3/twice", (_req, res) => res.json({ router: "api" }));

    const app = createHttpApp({ logger: silent, maxRequestBytes: 64, mounts: [["/_matrix/client", first], ["/_matrix/client", api]] });
    server = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    trail = [];
  });

  const call = async (method: string, path: string, body?: string) => {
    const response = await fetch(base + path, { method, ...(body === undefined ? {} : { body }) });
    const text = await response.text();
    return { status: response.status, type: response.headers.get("content-type"), json: text ? JSON.parse(text) : undefined };
  };

  it("decodes path parameters and parses the query string", async () => {
    const answer = await call("GET", "/_matrix/client/v3/things/%21room%3Aexample.org?limit=5&dir=b&dir=f");
    expect(answer.status).toBe(200);
    expect(answer.type).toBe("application/json; charset=utf-8");
    expect(answer.json).toEqual({ thing: "!room:example.org", query: { limit: "5", dir: ["b", "f"] } });
    // Middleware declared before the route ran; the one declared after it did not.
    expect(trail).toEqual(["api-first"]);
  });

  it("runs middleware declared before a route, in order", async () => {
    expect((await call("GET", "/_matrix/client/v3/guarded")).json).toEqual({ guarded: true });
    expect(trail).toEqual(["api-first", "api-guard"]);
  });

  it("serves optional segments, trailing slashes and aliased paths", async () => {
    expect((await call("GET", "/_matrix/client/v3/state/m.room.name")).json).toEqual({ type: "m.room.name", stateKey: null });
    expect((await call("GET", "/_matrix/client/v3/state/m.room.name/")).json).toEqual({ type: "m.room.name", stateKey: null });
    expect((await call("GET", "/_matrix/client/v3/state/m.room.member/%40a%3Ab")).json).toEqual({ type: "m.room.member", stateKey: "@a:b" });
    expect((await call("GET", "/_matrix/client/r0/things/x")).json).toMatchObject({ thing: "x" });
  });

  it("lets the first router declaring a route serve it", async () => {
    expect((await call("GET", "/_matrix/client/v3/twice")).json).toEqual({ router: "first" });
    expect((await call("GET", "/_matrix/client/v3/only-here")).json).toEqual({ here: true });
    expect(trail).toEqual([]);
  });

  it("answers 404 for an unknown path and 405 for a known path with another method, after the mount's middleware", async () => {
    const unknown = await call("GET", "/_matrix/client/v3/nothing-here");
    expect(unknown.status).toBe(404);
    expect(unknown.json.errcode).toBe("M_UNRECOGNIZED");
    expect(trail).toEqual(["api-first", "api-guard"]);
    const wrongMethod = await call("DELETE", "/_matrix/client/v3/things/x");
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.json.errcode).toBe("M_UNRECOGNIZED");
    // Outside every mount: the app's own 404, no mount middleware.
    trail = [];
    expect((await call("GET", "/elsewhere")).status).toBe(404);
    expect(trail).toEqual([]);
  });

  it("answers HEAD from the GET route without a body", async () => {
    const response = await fetch(`${base}/_matrix/client/v3/things/x`, { method: "HEAD" });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("");
  });

  it("turns errors into Matrix errors: thrown, rejected, bad JSON, too large, bad percent-encoding", async () => {
    expect(await call("GET", "/_matrix/client/v3/async-failure")).toMatchObject({ status: 403, json: { errcode: "M_FORBIDDEN", error: "no" } });
    const crash = await call("GET", "/_matrix/client/v3/crash");
    expect(crash).toMatchObject({ status: 500, json: { errcode: "M_UNKNOWN" } });
    expect(JSON.stringify(crash.json)).not.toContain("secret detail");
    expect(await call("PUT", "/_matrix/client/v3/things/x", "{not json")).toMatchObject({ status: 400, json: { errcode: "M_NOT_JSON" } });
    expect(await call("PUT", "/_matrix/client/v3/things/x", JSON.stringify({ padding: "x".repeat(100) }))).toMatchObject({ status: 413, json: { errcode: "M_TOO_LARGE" } });
    expect((await call("PUT", "/_matrix/client/v3/things/x", '{"a":1}')).json).toEqual({ body: { a: 1 } });
    for (const bad of ["%ZZ", "%E2%82", "%C0%AF"]) {
      expect(await call("GET", `/_matrix/client/v3/things/${bad}`)).toMatchObject({ status: 400, json: { errcode: "M_INVALID_PARAM" } });
    }
  });

  it("answers CORS preflights on any path", async () => {
    const response = await fetch(`${base}/_matrix/client/v3/things/x`, { method: "OPTIONS" });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
  });
});
