// Fuzzing every Federation API endpoint of one running server S (DESIGN.md "request auth"; LM draft
// "Request Authentication", "Sending Events", "Room Membership", "Event and State APIs"). Requests
// come as a second real server R (so S can fetch R's keys and properly signed requests get past
// authentication), with arbitrary bodies, query parameters and path segments, and also unsigned,
// badly signed and mis-addressed. Whatever comes in, S answers 200 (the input happened to be valid)
// or a 4xx whose JSON body carries an `errcode`, never a 5xx, and keeps answering afterwards.
import { randomBytes } from "node:crypto";
import { jest } from "@jest/globals";
import fc from "fast-check";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import type { JsonObject, JsonValue } from "../../src/core/json.js";
import { getRoomVersion, LINEARIZED_02 } from "../../src/core/room-versions.js";
import { buildLpdu } from "../../src/room-dag/index.js";
import { formatXMatrix, signRequest } from "../../src/federation/transport/x-matrix.js";
import { rawRequest, type RawResponse } from "../support/federation-requests.js";
import { freePort, startTestServer, type TestServer } from "../support/test-server.js";

jest.setTimeout(120_000);

const F = "/_matrix/federation";
const LM = `${F}/unstable/${LINEARIZED_02}`;
/** A server name nothing listens on: a key fetch for it fails at once (never a DNS lookup). */
const DEAD_SERVER = "localhost:1";
const rules = getRoomVersion(LINEARIZED_02)!;

let s: TestServer;
let r: TestServer;
/** IDs that exist on S, so some fuzzed requests reach past "unknown room". */
const known = { roomId: "", eventIds: [] as string[], localUser: "", remoteUser: "", alias: "" };

beforeAll(async () => {
  const federation = { allowInsecureHttp: true, trustedKeyServers: [], outbound: { backoff: { initialMs: 100, maxMs: 1_000 }, requestTimeoutMs: 2_000 } };
  const [portS, portR] = [await freePort(), await freePort()];
  s = await startTestServer({ serverName: `localhost:${portS}`, port: portS, federation });
  r = await startTestServer({ serverName: `localhost:${portR}`, port: portR, federation });
  const alice = await s.register("alice");
  const remote = await r.register("rachel");
  const created = await s.request("POST", "/_matrix/client/v3/createRoom", {
    token: alice.accessToken,
    body: {
      preset: "public_chat",
      room_alias_name: "fuzz",
      // World-readable, so R may read events and state and the fuzz reaches those answers.
      initial_state: [{ type: "m.room.history_visibility", state_key: "", content: { history_visibility: "world_readable" } }],
    },
  });
  expect(created.status).toBe(200);
  known.roomId = created.body.room_id;
  known.localUser = alice.userId;
  known.remoteUser = remote.userId;
  known.alias = `#fuzz:${s.serverName}`;
  const sent = await s.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(known.roomId)}/send/m.room.message/f1`, { token: alice.accessToken, body: { msgtype: "m.text", body: "hi" } });
  expect(sent.status).toBe(200);
  const events = await s.homeserver.storage.events.getRoomEvents(known.roomId, { direction: "forward", limit: 100 });
  known.eventIds = events.map((e) => e.eventId);
});
afterAll(async () => {
  await s?.close();
  await r?.close();
});

// ---- what a request is made of ---------------------------------------------------------------

interface Endpoint {
  method: "GET" | "PUT" | "POST";
  /** `{0}`, `{1}` are path segments. */
  template: string;
  /** Query parameters the endpoint reads. */
  query: string[];
  hasBody: boolean;
}

const CHANGES = ["join", "leave", "knock"] as const;
const ENDPOINTS: Endpoint[] = [
  ...[`${F}/v1/send/{0}`, `${F}/v2/send/{0}`, `${LM}/send/{0}`].map((template) => ({ method: "PUT" as const, template, query: [], hasBody: true })),
  ...CHANGES.map((c) => ({ method: "GET" as const, template: `${F}/v1/make_${c}/{0}/{1}`, query: ["ver"], hasBody: false })),
  ...CHANGES.flatMap((c) => [`${LM}/send_${c}/{0}`, `${F}/v3/send_${c}/{0}`].map((template) => ({ method: "POST" as const, template, query: [], hasBody: true }))),
  { method: "POST", template: `${LM}/invite/{0}`, query: [], hasBody: true },
  { method: "POST", template: `${F}/v3/invite/{0}`, query: [], hasBody: true },
  { method: "PUT", template: `${F}/v2/invite/{0}/{1}`, query: [], hasBody: true },
  ...[`${LM}/event/{0}`, `${F}/v2/event/{0}`, `${F}/v1/event/{0}`].map((template) => ({ method: "GET" as const, template, query: [], hasBody: false })),
  { method: "GET", template: `${F}/v1/state/{0}`, query: ["event_id"], hasBody: false },
  { method: "GET", template: `${F}/v1/state_ids/{0}`, query: ["event_id"], hasBody: false },
  ...[`${LM}/backfill/{0}`, `${F}/v2/backfill/{0}`].map((template) => ({ method: "GET" as const, template, query: ["v", "limit"], hasBody: false })),
  { method: "GET", template: `${F}/v1/query/profile`, query: ["user_id", "field"], hasBody: false },
  { method: "GET", template: `${F}/v1/query/directory`, query: ["room_alias"], hasBody: false },
  { method: "GET", template: `${F}/v1/user/devices/{0}`, query: [], hasBody: false },
  { method: "POST", template: `${F}/v1/user/keys/claim`, query: [], hasBody: true },
  { method: "POST", template: `${F}/v1/user/keys/query`, query: [], hasBody: true },
  { method: "POST", template: `${LM}/user/keys/claim`, query: [], hasBody: true },
  { method: "GET", template: `${F}/v1/version`, query: [], hasBody: false },
];

/** A path segment or query value: already encoded for the request target. */
const encoded = (text: string): string => {
  try {
    return encodeURIComponent(text);
  } catch {
    // A lone surrogate: percent-encode its UTF-8 replacement as a browser would.
    return encodeURIComponent(Buffer.from(text, "utf8").toString("utf8"));
  }
};

type AuthMode = "signed" | "unsigned" | "wrong-key" | "wrong-destination" | "other-uri" | "dead-origin" | "garbage";

interface FuzzRequest {
  endpoint: Endpoint;
  segments: string[];
  query: string;
  body: { kind: "json"; value: JsonValue } | { kind: "raw"; text: string } | { kind: "none" };
  auth: AuthMode;
  garbage: string;
}

/** A copy of `event` with the field at `path` set to `value` (removed when undefined). */
function mutate(event: JsonObject, path: string[], value: JsonValue | undefined): JsonObject {
  // JSON round trip, not structuredClone: its objects come from another realm than the test's and
  // are not plain objects to canonical JSON.
  const copy = JSON.parse(JSON.stringify(event)) as JsonObject;
  let holder: JsonObject = copy;
  for (const key of path.slice(0, -1)) {
    const next = holder[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) return copy;
    holder = next;
  }
  const last = path[path.length - 1] as string;
  if (value === undefined) delete holder[last];
  else holder[last] = value;
  return copy;
}

/** The request arbitrary; built once S is running, since it draws from IDs that exist there. */
function makeFuzzRequest(): fc.Arbitrary<FuzzRequest> {
  const identifiers = (): fc.Arbitrary<string> =>
    fc.constantFrom(
      known.roomId,
      ...known.eventIds,
      known.localUser,
      known.remoteUser,
      known.alias,
      `@nobody:${s.serverName}`,
      `@somebody:${r.serverName}`,
      "!unknown:nowhere.invalid",
      "$unknown",
      "#nothing:nowhere.invalid",
      "",
      "@:",
      "!",
      "$",
    );

  const numbers = fc.oneof(
    fc.integer().map(String),
    fc.constantFrom("-1", "0", "1e400", "9007199254740993", "99999999999999999999", "NaN", "Infinity", "0x10", "1.5", " 1"),
  );
  const hugeStrings = fc.constantFrom("a".repeat(2_500), "\u{1F600}".repeat(200), "$".repeat(2_000));

  /** Path segments and query values, already encoded, some of them deliberately mis-encoded. */
  const segmentValue: fc.Arbitrary<string> = fc.oneof(
    { weight: 4, arbitrary: fc.oneof(identifiers(), fc.string({ maxLength: 40 }), fc.string({ unit: "binary", maxLength: 20 }), numbers, hugeStrings).map(encoded) },
    // Well-formed but awkward encodings; malformed ones (`%ZZ`) have their own test below.
    { weight: 1, arbitrary: fc.constantFrom("%00", "..", ".", "%2e%2e", "a%2Fb", "a;b", "%2F%2F", "%20", "+", "%25") },
  );

  const queryString = (names: string[]): fc.Arbitrary<string> =>
    fc
      .array(fc.tuple(fc.oneof(fc.constantFrom(...names, "ver", "limit", "x", "ver[]", "__proto__"), fc.string({ maxLength: 8 }).map(encoded)), segmentValue), { maxLength: 5 })
      .map((pairs) => (pairs.length === 0 ? "" : `?${pairs.map(([name, value]) => `${name}=${value}`).join("&")}`));

  // ---- bodies ----------------------------------------------------------------------------------

  const servers = (): fc.Arbitrary<string> => fc.constantFrom(s.serverName, r.serverName, DEAD_SERVER);
  // Mostly JSON that canonical JSON can encode (integers, no floats), so that requests get signed
  // and reach the handlers; sometimes anything JSON allows (floats, lone surrogates).
  const { canonical } = fc.letrec<{ canonical: JsonValue }>((tie) => ({
    canonical: fc.oneof(
      { depthSize: "small", maxDepth: 4 },
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.maxSafeInteger(),
      fc.string({ maxLength: 30 }),
      fc.array(tie("canonical"), { maxLength: 4 }),
      fc.dictionary(fc.string({ maxLength: 10 }), tie("canonical"), { maxKeys: 4 }),
    ),
  }));
  const anyJson: fc.Arbitrary<JsonValue> = fc.oneof({ weight: 5, arbitrary: canonical }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<JsonValue> });
  const smallValue: fc.Arbitrary<JsonValue> = fc.oneof(
    anyJson,
    identifiers(),
    fc.integer(),
    fc.constantFrom(9007199254740991, -9007199254740991, 0, -1, 2 ** 53 + 2, 1e300) as fc.Arbitrary<JsonValue>,
    hugeStrings,
  );
  // Signatures only by known servers: a fuzzed server name would make S resolve it (a DNS lookup).
  const signatures: fc.Arbitrary<JsonValue> = fc.oneof(
    fc.dictionary(servers(), fc.dictionary(fc.constantFrom("ed25519:test", "ed25519:x", "bogus"), fc.oneof(fc.base64String({ maxLength: 88 }), smallValue), { maxKeys: 2 }), { maxKeys: 3 }),
    smallValue,
  );
  const eventLike: fc.Arbitrary<JsonValue> = fc.record(
    {
      room_id: fc.oneof(fc.constant(known.roomId || "!x:y"), identifiers(), smallValue),
      type: fc.oneof(fc.constantFrom("m.room.member", "m.room.message", "m.room.create", "m.room.power_levels", "m.mls.commit"), smallValue),
      sender: fc.oneof(fc.constantFrom(known.localUser || "@a:b", known.remoteUser || "@c:d", `@x:${DEAD_SERVER}`), smallValue),
      state_key: fc.oneof(fc.constantFrom(known.localUser || "@a:b", known.remoteUser || "@c:d", ""), smallValue),
      content: fc.oneof(fc.record({ membership: fc.oneof(fc.constantFrom("join", "leave", "knock", "invite", "ban"), smallValue) }), anyJson),
      origin_server_ts: smallValue,
      hub_server: fc.oneof(servers(), smallValue),
      hashes: fc.oneof(fc.record({ sha256: fc.base64String({ maxLength: 44 }), lpdu: fc.record({ sha256: fc.base64String({ maxLength: 44 }) }) }, { requiredKeys: [] }), smallValue),
      signatures,
      auth_events: fc.oneof(fc.array(identifiers(), { maxLength: 3 }), smallValue),
      prev_events: fc.oneof(fc.array(identifiers(), { maxLength: 3 }), smallValue),
      unsigned: anyJson,
    },
    { requiredKeys: [] },
  ) as fc.Arbitrary<JsonValue>;

  const deeplyNested = (depth: number): JsonValue => {
    let value: JsonValue = {};
    for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { a: value };
    return value;
  };

  // Valid LPDUs by R's user for the room on S (R signs them), some of them then mutated: these get
  // past schema and signature checks into completion, authorization and the state answers.
  const remoteLpdu = (type: string, content: JsonObject, stateKey?: string): JsonObject =>
    buildLpdu(
      { room_id: known.roomId, type, sender: known.remoteUser, content, origin_server_ts: Date.now(), ...(stateKey !== undefined ? { state_key: stateKey } : {}) },
      s.serverName,
      { serverName: r.serverName, key: r.signingKey },
      rules,
    ) as unknown as JsonObject;
  const join = remoteLpdu("m.room.member", { membership: "join" }, known.remoteUser);
  const validLpdus = [
    join,
    join,
    join,
    remoteLpdu("m.room.member", { membership: "leave" }, known.remoteUser),
    remoteLpdu("m.room.member", { membership: "knock" }, known.remoteUser),
    remoteLpdu("m.room.member", { membership: "invite" }, `@nobody:${s.serverName}`),
    remoteLpdu("m.room.message", { msgtype: "m.text", body: "from R" }),
    remoteLpdu("m.room.name", { name: "renamed by R" }, ""),
  ];
  const fieldPaths = fc.constantFrom<string[]>(["type"], ["sender"], ["room_id"], ["origin_server_ts"], ["hub_server"], ["content"], ["content", "membership"], ["hashes"], ["hashes", "lpdu"], ["signatures"], ["state_key"], ["auth_events"], ["prev_events"]);
  const lpduBody: fc.Arbitrary<JsonValue> = fc
    .tuple(fc.constantFrom(...validLpdus), fc.option(fc.tuple(fieldPaths, fc.option(smallValue, { nil: undefined })), { nil: undefined }))
    .map(([lpdu, mutation]) => (mutation === undefined ? lpdu : mutate(lpdu, mutation[0], mutation[1])));

  const body: fc.Arbitrary<JsonValue> = fc.oneof(
    { weight: 6, arbitrary: lpduBody },
    fc.record({ pdus: fc.array(lpduBody, { maxLength: 3 }), edus: fc.constant<JsonValue[]>([]) }) as fc.Arbitrary<JsonValue>,
    fc.record({ event: lpduBody, room_version: fc.constantFrom(LINEARIZED_02, "I.1", "10") }) as fc.Arbitrary<JsonValue>,
    anyJson,
    eventLike,
    fc.record({ event: fc.oneof(eventLike, smallValue), room_version: fc.oneof(fc.constantFrom(LINEARIZED_02, "I.1", "10", "11", ""), smallValue), invite_room_state: fc.oneof(fc.array(anyJson, { maxLength: 3 }), smallValue) }, { requiredKeys: [] }) as fc.Arbitrary<JsonValue>,
    fc.record({ origin: fc.oneof(servers(), smallValue), origin_server_ts: smallValue, pdus: fc.oneof(fc.array(fc.oneof(eventLike, smallValue), { maxLength: 6 }), smallValue), edus: fc.oneof(fc.array(anyJson, { maxLength: 4 }), smallValue) }, { requiredKeys: [] }) as fc.Arbitrary<JsonValue>,
    fc.constantFrom<JsonValue>(deeplyNested(500), { pdus: [deeplyNested(300)] }, { event: deeplyNested(300), room_version: LINEARIZED_02 }, { x: "y".repeat(200_000) }),
  );

  /** Bodies that are not (canonical) JSON, sent as they are. */
  const rawBody = fc.constantFrom("", "{", "null", "[]", '"text"', "1e999", '{"a":1.5}', '{"a":-0}', '{"a":9007199254740993}', '{"a":1,"a":2}', "\uFEFF{}", '{"a":"\\ud800"}', "\u0000", "{}garbage", "[".repeat(100_000));

  const authMode = fc.constantFrom<AuthMode>("signed", "signed", "signed", "signed", "unsigned", "wrong-key", "wrong-destination", "other-uri", "dead-origin", "garbage");


  // Request targets stay under 8 KiB: past node's 16 KiB header limit node itself answers 431
  // without a body, before the application sees the request.
  const fuzzRequest: fc.Arbitrary<FuzzRequest> = fc.constantFrom(...ENDPOINTS).chain((endpoint) =>
    fc.record({
      endpoint: fc.constant(endpoint),
      segments: fc.tuple(segmentValue, segmentValue),
      query: fc.oneof(queryString(endpoint.query), fc.constant("")),
      body: endpoint.hasBody
        ? fc.oneof(
            { weight: 6, arbitrary: body.map((value) => ({ kind: "json" as const, value })) },
            { weight: 1, arbitrary: rawBody.map((text) => ({ kind: "raw" as const, text })) },
            { weight: 1, arbitrary: fc.constant({ kind: "none" as const }) },
          )
        : fc.oneof({ weight: 8, arbitrary: fc.constant({ kind: "none" as const }) }, { weight: 1, arbitrary: anyJson.map((value) => ({ kind: "json" as const, value })) }),
      auth: authMode,
      garbage: fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom("X-Matrix", "X-Matrix origin=", 'X-Matrix origin="a",origin="b"', "Bearer abc", 'X-Matrix origin="localhost:1",destination="x",key="ed25519:a",sig="!!"')),
    }),
  ).filter((request) => request.segments.join("").length + request.query.length < 8_000);
  return fuzzRequest;
}

// ---- sending -----------------------------------------------------------------------------------

const impostorKey = { keyId: "ed25519:test", signer: nativeEd25519.signerFromSeed(randomBytes(32)) };

/** The Authorization header for `mode`; undefined when none is sent. Bodies canonical JSON cannot encode get a garbage one. */
function authorizationFor(request: FuzzRequest, path: string, content: JsonValue | undefined): string | undefined {
  const sign = (fields: { origin?: string; destination?: string; uri?: string }, key = r.signingKey): string | undefined => {
    try {
      const [header] = signRequest({ method: request.endpoint.method, uri: fields.uri ?? path, origin: fields.origin ?? r.serverName, destination: fields.destination ?? s.serverName, content }, [key]);
      return header;
    } catch {
      // Floats, -0, too deep: no canonical JSON, so no valid signature can exist for this body.
      return formatXMatrix({ origin: r.serverName, destination: s.serverName, key: "ed25519:test", sig: "AAAA" });
    }
  };
  switch (request.auth) {
    case "signed":
      return sign({});
    case "unsigned":
      return undefined;
    case "wrong-key":
      return sign({}, impostorKey);
    case "wrong-destination":
      return sign({ destination: r.serverName });
    case "other-uri":
      return sign({ uri: `${path}x` });
    case "dead-origin":
      return sign({ origin: DEAD_SERVER });
    case "garbage":
      return request.garbage.replace(/[\r\n\u0000-\u001f\u007f-\u{10ffff}]/gu, "?");
  }
}

/** A raw body that JSON.parse accepts (`null`, `1e999`, ...) is signed as what it parses to. */
function parsedOrUndefined(text: string): JsonValue | undefined {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return undefined;
  }
}

async function send(request: FuzzRequest): Promise<{ path: string; response: RawResponse }> {
  const path = request.endpoint.template.replace(/\{(\d)\}/g, (_, i: string) => request.segments[Number(i)] as string) + request.query;
  const content = request.body.kind === "json" ? request.body.value : request.body.kind === "raw" ? parsedOrUndefined(request.body.text) : undefined;
  const authorization = authorizationFor(request, path, content);
  const payload = request.body.kind === "json" ? JSON.stringify(request.body.value) : request.body.kind === "raw" ? request.body.text : undefined;
  const response = await rawRequest(s.baseUrl, request.endpoint.method, path, {
    ...(authorization !== undefined ? { headers: { authorization } } : {}),
    ...(payload !== undefined ? { body: payload } : {}),
  });
  return { path, response };
}

function describeRequest(request: FuzzRequest, path: string, response: RawResponse): string {
  const shown = request.body.kind === "json" ? JSON.stringify(request.body.value) : request.body.kind === "raw" ? JSON.stringify(request.body.text) : "(none)";
  return `${request.endpoint.method} ${path.slice(0, 300)} auth=${request.auth} body=${shown.slice(0, 300)} -> ${response.status} ${response.text.slice(0, 300)}`;
}

// ---- the properties ----------------------------------------------------------------------------

test("control: properly signed, valid requests from R succeed on every kind of endpoint", async () => {
  const q = encodeURIComponent;
  const get = signedGet;
  expect((await get(`${F}/v1/make_join/${q(known.roomId)}/${q(known.remoteUser)}?ver=${q(LINEARIZED_02)}`)).status).toBe(200);
  const join = buildLpdu(
    { room_id: known.roomId, type: "m.room.member", state_key: known.remoteUser, sender: known.remoteUser, content: { membership: "join" }, origin_server_ts: Date.now() },
    s.serverName,
    { serverName: r.serverName, key: r.signingKey },
    rules,
  ) as unknown as JsonObject;
  const joinPath = `${F}/v3/send_join/control`;
  const [authorization] = signRequest({ method: "POST", uri: joinPath, origin: r.serverName, destination: s.serverName, content: join }, [r.signingKey]);
  const joined = await rawRequest(s.baseUrl, "POST", joinPath, { headers: { authorization: authorization as string }, body: JSON.stringify(join) });
  expect(joined.status).toBe(200);
  expect(joined.body.state.length).toBeGreaterThan(0);
  const eventId = known.eventIds[known.eventIds.length - 1] as string;
  for (const path of [`${LM}/event/${q(eventId)}`, `${F}/v1/state_ids/${q(known.roomId)}?event_id=${q(eventId)}`, `${F}/v2/backfill/${q(known.roomId)}?v=${q(eventId)}&limit=5`, `${F}/v1/query/profile?user_id=${q(known.localUser)}`, `${F}/v1/query/directory?room_alias=${q(known.alias)}`]) {
    const answer = await get(path);
    expect([path, answer.status]).toEqual([path, 200]);
  }
});

/** A GET on S signed as R. */
function signedGet(path: string): Promise<RawResponse> {
  const [authorization] = signRequest({ method: "GET", uri: path, origin: r.serverName, destination: s.serverName }, [r.signingKey]);
  return rawRequest(s.baseUrl, "GET", path, { headers: { authorization: authorization as string } });
}

test("every federation endpoint answers any request with 200 or a 4xx carrying an errcode, never a 5xx", async () => {
  const statuses = new Map<number, number>();
  const outcomes = new Map<string, number>();
  let signedPastAuth = 0;
  const startedAt = Date.now();
  await fc.assert(
    fc.asyncProperty(makeFuzzRequest(), async (request) => {
      const { path, response } = await send(request);
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      const outcome = `${request.endpoint.method} ${request.endpoint.template.replace(LM, "LM")} ${request.auth === "signed" ? "signed" : "unsigned"} ${response.status} ${String(response.body?.errcode ?? "")}`;
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (request.auth === "signed" && response.status !== 401) signedPastAuth++;
      if (process.env.FUZZ_VERBOSE && request.auth === "signed" && response.status === 401) console.log(describeRequest(request, path, response));
      const what = describeRequest(request, path, response);
      if (response.status >= 500 || response.status < 200) throw new Error(`server error: ${what}`);
      // Requests that are not properly signed never get past authentication on an authenticated endpoint.
      if (request.auth !== "signed" && response.status === 200 && !request.endpoint.template.endsWith("/version")) throw new Error(`unauthenticated request accepted: ${what}`);
      if (response.status === 200) {
        if (typeof response.body !== "object" || response.body === null) throw new Error(`200 without a JSON body: ${what}`);
        return;
      }
      if (response.status < 400) throw new Error(`unexpected status: ${what}`);
      if (typeof response.body?.errcode !== "string") throw new Error(`error without errcode: ${what}`);
    }),
    // A new seed each run (fast-check prints it with a counterexample); FUZZ_SEED replays one.
    { numRuns: Number(process.env.FUZZ_RUNS ?? 400), seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31), endOnFailure: true },
  );
  // FUZZ_VERBOSE=1 prints what the fuzz reached: method, endpoint, signed or not, status, errcode.
  if (process.env.FUZZ_VERBOSE) console.log([...outcomes].sort().map(([key, n]) => `${n}\t${key}`).join("\n"));
  // The fuzz must reach the handlers, not only the authentication in front of them.
  expect(signedPastAuth).toBeGreaterThan(50);
  expect([...statuses.keys()].some((status) => status === 200)).toBe(true);
  expect(Date.now() - startedAt).toBeLessThan(60_000);

  const version = await rawRequest(s.baseUrl, "GET", `${F}/v1/version`);
  expect(version.status).toBe(200);
  expect(typeof version.body.server.name).toBe("string");
});

test("requests that are not properly signed get 401 M_FORBIDDEN from every authenticated endpoint", async () => {
  await fc.assert(
    fc.asyncProperty(
      makeFuzzRequest().filter((request) => request.auth !== "signed" && !request.endpoint.template.endsWith("/version") && request.body.kind !== "raw"),
      async (request) => {
        const { path, response } = await send(request);
        // Before authentication may come: 404 M_UNRECOGNIZED for a route that does not exist, and
        // a 400 for a body that is not (strict) JSON, since the signature covers the parsed body.
        if (response.status === 404 && response.body?.errcode === "M_UNRECOGNIZED") return;
        if (response.status === 401 && response.body?.errcode === "M_FORBIDDEN") return;
        if (response.status === 400 && typeof response.body?.errcode === "string") return;
        throw new Error(`expected 401 M_FORBIDDEN: ${describeRequest(request, path, response)}`);
      },
    ),
    { numRuns: 150, endOnFailure: true },
  );
});

/** Percent-encodings that do not decode to UTF-8 text (RFC 3986 section 2.1; WHATWG URL "percent-decode"). */
const MALFORMED_SEGMENTS = ["%ZZ", "%", "%C0%AF", "%E2%82", "%FF%FE"];
const WITH_PATH_PARAMETERS = ENDPOINTS.filter((endpoint) => endpoint.template.includes("{0}"));

// A path parameter that is not valid percent-encoding (express's router throws a URIError) is a
// 400 with a Matrix errcode on every route, signed or not (found by the fuzz above).
test.each(MALFORMED_SEGMENTS)("a path parameter %s that is not valid percent-encoding is a 400 with an errcode on every endpoint", async (segment) => {
  const answers: string[] = [];
  for (const endpoint of WITH_PATH_PARAMETERS) {
    const path = endpoint.template.replace(/\{\d\}/g, segment);
    const body = endpoint.hasBody ? {} : undefined;
    const [authorization] = signRequest({ method: endpoint.method, uri: path, origin: r.serverName, destination: s.serverName, content: body }, [r.signingKey]);
    const response = await rawRequest(s.baseUrl, endpoint.method, path, { headers: { authorization: authorization as string }, ...(body ? { body: "{}" } : {}) });
    if (response.status !== 400 || typeof response.body?.errcode !== "string") answers.push(`${endpoint.method} ${path} -> ${response.status} ${response.text}`);
  }
  expect(answers).toEqual([]);
});

describe("bodies over the size limit", () => {
  // The test server's limit is 1 MiB (test/support/test-server.ts).
  const oversize = JSON.stringify({ pdus: [], filler: "x".repeat(1_100_000) });

  test.each([
    ["PUT", `${F}/v1/send/big`],
    ["POST", `${LM}/send_join/big`],
    ["POST", `${F}/v3/invite/big`],
  ])("%s %s with a body over the limit is 413 M_TOO_LARGE", async (method, path) => {
    const [authorization] = signRequest({ method, uri: path, origin: r.serverName, destination: s.serverName, content: JSON.parse(oversize) as JsonValue }, [r.signingKey]);
    const response = await rawRequest(s.baseUrl, method, path, { headers: { authorization: authorization as string }, body: oversize });
    expect(response.status).toBe(413);
    expect(response.body?.errcode).toBe("M_TOO_LARGE");
  });

  test("the server still answers afterwards", async () => {
    const version = await rawRequest(s.baseUrl, "GET", `${F}/v1/version`);
    expect(version.status).toBe(200);
  });
});
