import https from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createHttpExchanger, type HttpExchanger } from "../../../src/federation/transport/http-exchange.js";
import {
  chooseSrvRecord,
  createServerResolver,
  createWellKnownFetcher,
  parseCacheControl,
  parseServerName,
  type SrvRecord,
  type SrvResolver,
  type WellKnownResult,
} from "../../../src/federation/transport/resolve.js";
import { createTestPki, type TestPki } from "./test-pki.js";

const HOUR = 3600_000;

/** DNS with SRV records from a table; every other name is NXDOMAIN. Records what was asked. */
function fakeDns(records: Record<string, SrvRecord[]>): SrvResolver & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    async resolveSrv(name) {
      asked.push(name);
      const found = records[name];
      if (found === undefined) throw Object.assign(new Error(`queryNotFound ${name}`), { code: "ENOTFOUND" });
      return found;
    },
  };
}

function srv(name: string, port: number, priority = 10, weight = 0): SrvRecord {
  return { name, port, priority, weight };
}

/** A well-known fetcher from a table of answers, counting fetches. */
function fakeWellKnown(answers: Record<string, WellKnownResult>) {
  const fetched: string[] = [];
  return {
    fetched,
    fetch: async (hostname: string): Promise<WellKnownResult> => {
      fetched.push(hostname);
      return answers[hostname] ?? { ok: false, reason: "status 404" };
    },
  };
}

describe("parseServerName", () => {
  it.each([
    ["example.org", { host: "example.org", ipLiteral: false }],
    ["example.org:8448", { host: "example.org", port: 8448, ipLiteral: false }],
    ["1.2.3.4", { host: "1.2.3.4", ipLiteral: true }],
    ["1.2.3.4:80", { host: "1.2.3.4", port: 80, ipLiteral: true }],
    ["[::1]", { host: "::1", ipLiteral: true }],
    ["[2001:db8::1]:8448", { host: "2001:db8::1", port: 8448, ipLiteral: true }],
  ])("%s", (name, expected) => {
    expect(parseServerName(name)).toEqual(expected);
  });

  it.each(["", "example.org:", "example.org:0", "example.org:65536", "exa mple.org", "[::1", "[example.org]:80", "::1", "a:b:c", "127.1"])("refuses %j", (name) => {
    expect(parseServerName(name)).toBeUndefined();
  });
});

describe("resolution steps (fake DNS and well-known)", () => {
  function resolverWith(records: Record<string, SrvRecord[]>, answers: Record<string, WellKnownResult>) {
    const dns = fakeDns(records);
    const wellKnown = fakeWellKnown(answers);
    return { dns, wellKnown, resolver: createServerResolver({ dns, fetchWellKnown: wellKnown.fetch, random: () => 0 }) };
  }

  it("1: an IP literal is used directly, on 8448 without a port; certificate for the IP, Host the name", async () => {
    const { resolver, dns, wellKnown } = resolverWith({}, {});
    expect(await resolver.resolve("192.0.2.7")).toEqual({ host: "192.0.2.7", port: 8448, tlsServerName: "192.0.2.7", hostHeader: "192.0.2.7" });
    expect(await resolver.resolve("[2001:db8::1]:8443")).toEqual({ host: "2001:db8::1", port: 8443, tlsServerName: "2001:db8::1", hostHeader: "[2001:db8::1]:8443" });
    expect(dns.asked).toEqual([]);
    expect(wellKnown.fetched).toEqual([]);
  });

  it("1: an explicit port skips well-known and SRV; certificate without port, Host with it", async () => {
    const { resolver, dns, wellKnown } = resolverWith({ "_matrix-fed._tcp.hs.example.org": [srv("elsewhere.example.org", 1)] }, {});
    expect(await resolver.resolve("hs.example.org:1234")).toEqual({ host: "hs.example.org", port: 1234, tlsServerName: "hs.example.org", hostHeader: "hs.example.org:1234" });
    expect(dns.asked).toEqual([]);
    expect(wellKnown.fetched).toEqual([]);
  });

  it("2.1: well-known delegation with a port is used directly", async () => {
    const { resolver, dns } = resolverWith({}, { "example.org": { ok: true, server: "matrix.example.org:443" } });
    expect(await resolver.resolve("example.org")).toEqual({ host: "matrix.example.org", port: 443, tlsServerName: "matrix.example.org", hostHeader: "matrix.example.org:443" });
    expect(dns.asked).toEqual([]);
  });

  it("2.1: well-known delegation to an IP literal", async () => {
    const { resolver } = resolverWith({}, { "example.org": { ok: true, server: "[2001:db8::5]" } });
    expect(await resolver.resolve("example.org")).toEqual({ host: "2001:db8::5", port: 8448, tlsServerName: "2001:db8::5", hostHeader: "[2001:db8::5]" });
  });

  it("2.2: delegation without a port follows _matrix-fed._tcp of the delegated name; certificate and Host are the delegated name", async () => {
    const { resolver, dns } = resolverWith(
      { "_matrix-fed._tcp.matrix.example.org": [srv("fed1.example.net", 8000)], "_matrix._tcp.matrix.example.org": [srv("old.example.net", 9000)] },
      { "example.org": { ok: true, server: "matrix.example.org" } },
    );
    expect(await resolver.resolve("example.org")).toEqual({ host: "fed1.example.net", port: 8000, tlsServerName: "matrix.example.org", hostHeader: "matrix.example.org" });
    expect(dns.asked).toEqual(["_matrix-fed._tcp.matrix.example.org"]);
  });

  it("2.2: falls back to the draft's _matrix._tcp record", async () => {
    const { resolver, dns } = resolverWith({ "_matrix._tcp.matrix.example.org": [srv("old.example.net", 9000)] }, { "example.org": { ok: true, server: "matrix.example.org" } });
    expect(await resolver.resolve("example.org")).toEqual({ host: "old.example.net", port: 9000, tlsServerName: "matrix.example.org", hostHeader: "matrix.example.org" });
    expect(dns.asked).toEqual(["_matrix-fed._tcp.matrix.example.org", "_matrix._tcp.matrix.example.org"]);
  });

  it("2.3: delegation without port or SRV goes to the delegated name on 8448", async () => {
    const { resolver } = resolverWith({}, { "example.org": { ok: true, server: "matrix.example.org" } });
    expect(await resolver.resolve("example.org")).toEqual({ host: "matrix.example.org", port: 8448, tlsServerName: "matrix.example.org", hostHeader: "matrix.example.org" });
  });

  it("3: without a valid well-known, SRV of the server name itself; certificate and Host are the server name", async () => {
    const { resolver, wellKnown } = resolverWith({ "_matrix-fed._tcp.example.org": [srv("fed.example.net", 8001)] }, {});
    expect(await resolver.resolve("example.org")).toEqual({ host: "fed.example.net", port: 8001, tlsServerName: "example.org", hostHeader: "example.org" });
    expect(wellKnown.fetched).toEqual(["example.org"]);
    const legacy = resolverWith({ "_matrix._tcp.example.org": [srv("old.example.net", 8002)] }, {});
    expect(await legacy.resolver.resolve("example.org")).toEqual({ host: "old.example.net", port: 8002, tlsServerName: "example.org", hostHeader: "example.org" });
  });

  it("4: nothing at all: the server name on 8448", async () => {
    const { resolver } = resolverWith({}, {});
    expect(await resolver.resolve("example.org")).toEqual({ host: "example.org", port: 8448, tlsServerName: "example.org", hostHeader: "example.org" });
  });

  it("an SRV target of '.' means no service there", async () => {
    const { resolver } = resolverWith({ "_matrix-fed._tcp.example.org": [srv(".", 0)], "_matrix._tcp.example.org": [srv("old.example.net", 8002)] }, {});
    expect(await resolver.resolve("example.org")).toMatchObject({ host: "old.example.net", port: 8002 });
  });

  it("a failing DNS server counts as no record", async () => {
    const dns: SrvResolver = {
      resolveSrv: async () => {
        throw Object.assign(new Error("server failure"), { code: "ESERVFAIL" });
      },
    };
    const resolver = createServerResolver({ dns, fetchWellKnown: fakeWellKnown({}).fetch });
    expect(await resolver.resolve("example.org")).toMatchObject({ host: "example.org", port: 8448 });
  });

  it("refuses names that are not server names", async () => {
    const { resolver } = resolverWith({}, {});
    await expect(resolver.resolve("not a name")).rejects.toMatchObject({ name: "FederationRequestError", failure: "resolve" });
  });
});

describe("SRV record choice (RFC 2782)", () => {
  const records = [srv("backup", 1, 20, 100), srv("light", 2, 10, 1), srv("heavy", 3, 10, 3)];
  it("takes the lowest priority, weighted by weight", () => {
    expect(chooseSrvRecord(records, () => 0)?.name).toBe("light");
    expect(chooseSrvRecord(records, () => 0.2)?.name).toBe("light");
    expect(chooseSrvRecord(records, () => 0.3)?.name).toBe("heavy");
    expect(chooseSrvRecord(records, () => 0.99)?.name).toBe("heavy");
  });
  it("picks uniformly among zero-weight records and ignores '.'", () => {
    expect(chooseSrvRecord([srv("a", 1), srv("b", 2)], () => 0.75)?.name).toBe("b");
    expect(chooseSrvRecord([srv(".", 0)], () => 0)).toBeUndefined();
    expect(chooseSrvRecord([], () => 0)).toBeUndefined();
  });
});

describe("well-known caching (injected clock)", () => {
  function setup(answer: () => WellKnownResult) {
    let clock = 1_000_000;
    let fetches = 0;
    const resolver = createServerResolver({
      dns: fakeDns({}),
      fetchWellKnown: async () => {
        fetches++;
        return answer();
      },
      now: () => clock,
    });
    return {
      resolver,
      fetches: () => fetches,
      advance: (ms: number) => {
        clock += ms;
      },
    };
  }

  it("keeps an answer without cache headers for 24 hours", async () => {
    const t = setup(() => ({ ok: true, server: "m.example.org:443" }));
    await t.resolver.resolve("example.org");
    t.advance(24 * HOUR - 1);
    await t.resolver.resolve("example.org");
    expect(t.fetches()).toBe(1);
    t.advance(1);
    await t.resolver.resolve("example.org");
    expect(t.fetches()).toBe(2);
  });

  it("honours max-age, capped at 48 hours, and no-store", async () => {
    const short = setup(() => ({ ok: true, server: "m.example.org:443", maxAgeMs: HOUR }));
    await short.resolver.resolve("example.org");
    short.advance(HOUR);
    await short.resolver.resolve("example.org");
    expect(short.fetches()).toBe(2);

    const long = setup(() => ({ ok: true, server: "m.example.org:443", maxAgeMs: 7 * 24 * HOUR }));
    await long.resolver.resolve("example.org");
    long.advance(48 * HOUR - 1);
    await long.resolver.resolve("example.org");
    expect(long.fetches()).toBe(1);
    long.advance(1);
    await long.resolver.resolve("example.org");
    expect(long.fetches()).toBe(2);

    const none = setup(() => ({ ok: true, server: "m.example.org:443", noStore: true }));
    await none.resolver.resolve("example.org");
    await none.resolver.resolve("example.org");
    expect(none.fetches()).toBe(2);
  });

  it("caches errors briefly, backing off exponentially to one hour, and a success resets the backoff", async () => {
    let answer: WellKnownResult = { ok: false, reason: "status 500" };
    const t = setup(() => answer);
    await t.resolver.resolve("example.org");
    expect(t.fetches()).toBe(1);
    // 5, 10, 20, 40 minutes, then capped at 60: cached until just before, fetched again at the mark.
    for (const minutes of [5, 10, 20, 40, 60, 60]) {
      const before = t.fetches();
      t.advance(minutes * 60_000 - 1);
      await t.resolver.resolve("example.org");
      expect(t.fetches()).toBe(before);
      t.advance(1);
      await t.resolver.resolve("example.org");
      expect(t.fetches()).toBe(before + 1);
    }
    answer = { ok: true, server: "m.example.org:443" };
    t.advance(HOUR);
    await t.resolver.resolve("example.org");
    answer = { ok: false, reason: "status 500" };
    t.advance(24 * HOUR);
    const before = t.fetches();
    await t.resolver.resolve("example.org");
    t.advance(5 * 60_000);
    await t.resolver.resolve("example.org");
    expect(t.fetches()).toBe(before + 2);
  });

  it("shares one fetch among concurrent resolutions", async () => {
    const t = setup(() => ({ ok: true, server: "m.example.org:443" }));
    await Promise.all([t.resolver.resolve("example.org"), t.resolver.resolve("example.org"), t.resolver.resolve("example.org")]);
    expect(t.fetches()).toBe(1);
  });
});

describe("parseCacheControl", () => {
  it("reads max-age, no-store and no-cache", () => {
    expect(parseCacheControl(undefined)).toEqual({ noStore: false });
    expect(parseCacheControl("public, max-age=600")).toEqual({ maxAgeMs: 600_000, noStore: false });
    expect(parseCacheControl("no-cache")).toEqual({ noStore: true });
    expect(parseCacheControl("Max-Age=0, no-store")).toEqual({ maxAgeMs: 0, noStore: true });
  });
});

describe("the well-known fetch over real HTTPS with a test CA", () => {
  let pki: TestPki;
  let server: https.Server;
  let wrongName: https.Server;
  let exchanger: HttpExchanger;
  const routes: Record<string, (res: import("node:http").ServerResponse) => void> = {};
  const hostHeaders: string[] = [];

  beforeAll(async () => {
    pki = createTestPki();
    const credentials = pki.issue(["DNS:example.test", "DNS:redirect.test"]);
    server = https.createServer(credentials, (req, res) => {
      hostHeaders.push(req.headers.host ?? "");
      const route = routes[`${req.headers.host}${req.url}`];
      if (route) route(res);
      else {
        res.statusCode = 404;
        res.end("{}");
      }
    });
    wrongName = https.createServer(pki.issue(["DNS:someone-else.test"]), (_req, res) => res.end('{"m.server":"x.test:1"}'));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    await new Promise<void>((resolve) => wrongName.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    const wrongPort = (wrongName.address() as AddressInfo).port;
    exchanger = createHttpExchanger({
      extraCa: pki.caPem,
      // Every *.test name on 443 is served on loopback; impostor.test by the wrongly named certificate.
      connectTo: (host, p) => (host.endsWith(".test") && p === 443 ? { host: "127.0.0.1", port: host === "impostor.test" ? wrongPort : port } : undefined),
    });
  });
  afterAll(async () => {
    exchanger.close();
    await new Promise((resolve) => server.close(resolve));
    await new Promise((resolve) => wrongName.close(resolve));
    pki.remove();
  });

  const json = (body: string, headers: Record<string, string> = {}) => (res: import("node:http").ServerResponse) => {
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.end(body);
  };

  it("reads m.server and Cache-Control, whatever the Content-Type", async () => {
    routes["example.test/.well-known/matrix/server"] = json('{"m.server":"fed.example.test:8443"}', { "content-type": "text/plain", "cache-control": "max-age=120" });
    const fetchWellKnown = createWellKnownFetcher({ exchanger });
    expect(await fetchWellKnown("example.test")).toEqual({ ok: true, server: "fed.example.test:8443", maxAgeMs: 120_000, noStore: false });
    expect(hostHeaders.at(-1)).toBe("example.test");
  });

  it("follows redirects, refuses loops", async () => {
    routes["redirect.test/.well-known/matrix/server"] = (res) => {
      res.statusCode = 301;
      res.setHeader("location", "https://example.test/moved");
      res.end();
    };
    routes["example.test/moved"] = json('{"m.server":"moved.example.test:1"}');
    const fetchWellKnown = createWellKnownFetcher({ exchanger });
    expect(await fetchWellKnown("redirect.test")).toMatchObject({ ok: true, server: "moved.example.test:1" });

    routes["example.test/moved"] = (res) => {
      res.statusCode = 302;
      res.setHeader("location", "https://redirect.test/.well-known/matrix/server");
      res.end();
    };
    expect(await fetchWellKnown("redirect.test")).toEqual({ ok: false, reason: "redirect loop" });
  });

  it("treats bad JSON, a missing or invalid m.server and error statuses as no delegation", async () => {
    const fetchWellKnown = createWellKnownFetcher({ exchanger });
    for (const body of ["not json", "{}", '{"m.server": 5}', '{"m.server":"bad name"}', "[]"]) {
      routes["example.test/.well-known/matrix/server"] = json(body);
      expect(await fetchWellKnown("example.test")).toMatchObject({ ok: false });
    }
    routes["example.test/.well-known/matrix/server"] = (res) => {
      res.statusCode = 500;
      res.end('{"m.server":"x.test:1"}');
    };
    expect(await fetchWellKnown("example.test")).toEqual({ ok: false, reason: "status 500" });
  });

  it("a certificate for another name is no delegation, and resolution moves on to SRV", async () => {
    const fetchWellKnown = createWellKnownFetcher({ exchanger });
    const answer = await fetchWellKnown("impostor.test");
    expect(answer.ok).toBe(false);
    const resolver = createServerResolver({ dns: fakeDns({ "_matrix-fed._tcp.impostor.test": [srv("real.test", 8448)] }), fetchWellKnown });
    expect(await resolver.resolve("impostor.test")).toEqual({ host: "real.test", port: 8448, tlsServerName: "impostor.test", hostHeader: "impostor.test" });
  });

  it("end to end: real well-known delegation through the resolver", async () => {
    routes["example.test/.well-known/matrix/server"] = json('{"m.server":"hub.example.test"}');
    const dns = fakeDns({ "_matrix-fed._tcp.hub.example.test": [srv("node7.example.test", 30000)] });
    const resolver = createServerResolver({ dns, fetchWellKnown: createWellKnownFetcher({ exchanger }) });
    expect(await resolver.resolve("example.test")).toEqual({ host: "node7.example.test", port: 30000, tlsServerName: "hub.example.test", hostHeader: "hub.example.test" });
  });
});
