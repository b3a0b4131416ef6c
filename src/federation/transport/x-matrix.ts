// Request authentication with the `X-Matrix` scheme (LM draft "Request Authentication"; Matrix
// Server-Server API "Request Authentication"; mx-differences "Request authentication").
//
// The signed object is `{method, uri, origin, destination, content}`. For a request without a body
// the draft signs `content: {}` while Matrix (and eigen-server) leave `content` out; we send the
// draft's form by default and accept either on a body-less request, since both describe the same
// request. A request that has a body is only accepted with that body signed.
import { decodeBase64, encodeBase64 } from "../../core/base64.js";
import { encodeCanonicalJson } from "../../core/canonical-json.js";
import type { Ed25519Verifier } from "../../core/ed25519.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { isValidKeyId, isValidServerName } from "../../core/identifiers.js";
import type { JsonObject, JsonValue } from "../../core/json.js";
import type { KeyOrder } from "../../core/room-versions.js";
import type { SigningKey } from "../../core/signing.js";

/** The parts of a federation request that its signature covers. */
export interface SignedRequest {
  /** HTTP method, upper case. */
  method: string;
  /** Path and query string exactly as sent, e.g. `/_matrix/federation/v1/make_join/...?ver=11`. */
  uri: string;
  origin: string;
  destination: string;
  /** The JSON request body; undefined for a request without a body. */
  content?: JsonValue | undefined;
}

/** How a body-less request is signed: the draft's `content: {}` or Matrix's absent `content`. */
export type BodylessContent = "empty-object" | "absent";

/** LM's canonical JSON is RFC 8785 (UTF-16 key order); classic Matrix peers sort by code point. */
export const DEFAULT_REQUEST_KEY_ORDER: KeyOrder = "utf16";

const utf8 = new TextEncoder();

/** The object whose canonical JSON is signed. */
export function requestSigningObject(request: SignedRequest, bodyless: BodylessContent = "empty-object"): JsonObject {
  const object: JsonObject = { method: request.method, uri: request.uri, origin: request.origin, destination: request.destination };
  if (request.content !== undefined) object.content = request.content;
  else if (bodyless === "empty-object") object.content = {};
  return object;
}

function signingBytes(request: SignedRequest, bodyless: BodylessContent, order: KeyOrder): Uint8Array {
  return utf8.encode(encodeCanonicalJson(requestSigningObject(request, bodyless), order));
}

/**
 * The `Authorization` header values for a request, one per signing key (the draft: a server with
 * several keys SHOULD send a header for each). Written the way older servers parse best: lower-case
 * names, quoted values, no spaces around commas.
 * Throws MatrixError(M_BAD_JSON) if the content cannot be encoded as canonical JSON.
 */
export function signRequest(
  request: SignedRequest,
  keys: readonly SigningKey[],
  options: { bodyless?: BodylessContent; keyOrder?: KeyOrder } = {},
): string[] {
  const bytes = signingBytes(request, options.bodyless ?? "empty-object", options.keyOrder ?? DEFAULT_REQUEST_KEY_ORDER);
  return keys.map((key) =>
    formatXMatrix({ origin: request.origin, destination: request.destination, key: key.keyId, sig: encodeBase64(key.signer.sign(bytes)) }),
  );
}

/**
 * signRequest for a body already encoded as canonical JSON (the outbound queues splice a
 * transaction from each event's canonical JSON): the signed object is assembled around it, keys
 * in canonical order (`content` < `destination` < `method` < `origin` < `uri`, all ASCII, so the
 * same in both key orders), nothing encoded twice.
 */
export function signCanonicalRequest(request: Omit<SignedRequest, "content">, canonicalContent: string, keys: readonly SigningKey[]): string[] {
  const text = `{"content":${canonicalContent},"destination":${JSON.stringify(request.destination)},"method":${JSON.stringify(request.method)},"origin":${JSON.stringify(request.origin)},"uri":${JSON.stringify(request.uri)}}`;
  const bytes = utf8.encode(text);
  return keys.map((key) =>
    formatXMatrix({ origin: request.origin, destination: request.destination, key: key.keyId, sig: encodeBase64(key.signer.sign(bytes)) }),
  );
}

export interface XMatrixParams {
  origin: string;
  destination: string;
  key: string;
  sig: string;
}

/** `X-Matrix origin="…",destination="…",key="…",sig="…"`. */
export function formatXMatrix(params: XMatrixParams): string {
  const quote = (value: string) => `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  return `X-Matrix origin=${quote(params.origin)},destination=${quote(params.destination)},key=${quote(params.key)},sig=${quote(params.sig)}`;
}

/** One credentials item of an `Authorization` header: its scheme and its parameters (names lower-cased). */
export interface Credentials {
  scheme: string;
  params: Map<string, string>;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/** RFC 9110 section 5.6.2 `tchar`. */
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const WHITESPACE = /[ \t]/;

/**
 * Parses one `Authorization` header value (RFC 9110 section 11.4): `scheme 1*SP` then a
 * comma-separated list of `name BWS "=" BWS (token / quoted-string)`. Names are case-insensitive;
 * quoted values have their backslash escapes removed. As the Matrix spec asks, unquoted values may
 * also hold `:` (older servers send `origin=example.org:8448`); `/` and `=` are allowed too so an
 * unquoted base64 signature parses. A list element that starts a new `scheme 1*SP name=` (two headers
 * joined with a comma by a proxy) begins new credentials. Repeated names within one credentials item
 * are refused, since they make the header ambiguous.
 */
export function parseAuthorization(header: string): ParseResult<Credentials[]> {
  const text = header;
  let i = 0;
  const credentials: Credentials[] = [];
  const skip = (pattern: RegExp) => {
    while (i < text.length && pattern.test(text[i] as string)) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < text.length && TCHAR.test(text[i] as string)) i++;
    return text.slice(start, i);
  };

  const readScheme = (): ParseResult<string> => {
    const scheme = readToken();
    if (scheme === "") return { ok: false, reason: "missing authorization scheme" };
    if (i < text.length && !WHITESPACE.test(text[i] as string)) return { ok: false, reason: `unexpected ${JSON.stringify(text[i])} after scheme` };
    skip(WHITESPACE);
    return { ok: true, value: scheme };
  };

  const first = readScheme();
  if (!first.ok) return first;
  let current: Credentials = { scheme: first.value, params: new Map() };
  credentials.push(current);

  while (i < text.length) {
    skip(WHITESPACE);
    if (text[i] === ",") {
      i++;
      continue;
    }
    if (i >= text.length) break;
    const nameStart = i;
    const name = readToken();
    if (name === "") return { ok: false, reason: `unexpected ${JSON.stringify(text[i])} at offset ${i}` };
    // A token followed by whitespace and another token is the scheme of new credentials.
    if (i < text.length && WHITESPACE.test(text[i] as string)) {
      const afterName = i;
      skip(WHITESPACE);
      if (text[i] !== "=") {
        if (current.params.size === 0) return { ok: false, reason: "credentials without parameters" };
        i = nameStart;
        const scheme = readScheme();
        if (!scheme.ok) return scheme;
        current = { scheme: scheme.value, params: new Map() };
        credentials.push(current);
        continue;
      }
      i = afterName;
      skip(WHITESPACE);
    }
    if (text[i] !== "=") return { ok: false, reason: `parameter ${name} has no value` };
    i++;
    skip(WHITESPACE);
    let value: string;
    if (text[i] === '"') {
      i++;
      let unescaped = "";
      let closed = false;
      while (i < text.length) {
        const c = text[i] as string;
        if (c === "\\") {
          if (i + 1 >= text.length) break;
          unescaped += text[i + 1];
          i += 2;
        } else if (c === '"') {
          closed = true;
          i++;
          break;
        } else {
          unescaped += c;
          i++;
        }
      }
      if (!closed) return { ok: false, reason: `unterminated quoted value for ${name}` };
      value = unescaped;
    } else {
      const start = i;
      while (i < text.length && (TCHAR.test(text[i] as string) || text[i] === ":" || text[i] === "/" || text[i] === "=")) i++;
      value = text.slice(start, i);
      if (value === "") return { ok: false, reason: `parameter ${name} has an empty value` };
    }
    const key = name.toLowerCase();
    if (current.params.has(key)) return { ok: false, reason: `parameter ${key} appears twice` };
    current.params.set(key, value);
    skip(WHITESPACE);
    if (i < text.length && text[i] !== ",") return { ok: false, reason: `unexpected ${JSON.stringify(text[i])} after parameter ${name}` };
  }
  if (current.params.size === 0) return { ok: false, reason: "credentials without parameters" };
  return { ok: true, value: credentials };
}

/**
 * The X-Matrix parameters of one credentials item. The draft's parameter list calls the signature
 * `signature` while its example (and Matrix) use `sig`: both are read, and must agree if both appear.
 * Unknown parameters are ignored.
 */
export function xMatrixParams(credentials: Credentials): ParseResult<XMatrixParams> {
  if (credentials.scheme.toLowerCase() !== "x-matrix") return { ok: false, reason: `scheme ${credentials.scheme} is not X-Matrix` };
  const { params } = credentials;
  const sig = params.get("sig");
  const signature = params.get("signature");
  if (sig !== undefined && signature !== undefined && sig !== signature) return { ok: false, reason: "sig and signature differ" };
  const origin = params.get("origin");
  const destination = params.get("destination");
  const key = params.get("key");
  const value = sig ?? signature;
  if (origin === undefined) return { ok: false, reason: "no origin" };
  // Required by the draft (mx-differences), although Matrix still lets it be left out.
  if (destination === undefined) return { ok: false, reason: "no destination" };
  if (key === undefined) return { ok: false, reason: "no key" };
  if (value === undefined) return { ok: false, reason: "no sig" };
  return { ok: true, value: { origin, destination, key, sig: value } };
}

/** Finds an origin's verify key; the key ring answers this and decides whether the key is still valid. */
export type RequestKeyLookup = (serverName: string, keyId: string) => Promise<Ed25519Verifier | undefined>;

export interface VerifyRequestOptions {
  /** Our server name: every header's destination must equal it. */
  serverName: string;
  lookupKey: RequestKeyLookup;
  keyOrder?: KeyOrder;
}

export interface ReceivedRequest {
  method: string;
  uri: string;
  /** Every `Authorization` header value received, in order. */
  authorization: readonly string[];
  /** The parsed JSON body; undefined when the request had none. */
  content: JsonValue | undefined;
}

function forbidden(reason: string): MatrixError {
  return new MatrixError(Errcode.FORBIDDEN, 401, `Signature error on request: ${reason}`);
}

/**
 * Verifies a request's `Authorization` headers and returns the origin they prove. There must be at
 * least one, every one must be a valid X-Matrix header from the same origin, addressed to us, signed
 * with a key the origin is known to hold, over this exact request; anything else throws
 * MatrixError(M_FORBIDDEN, 401).
 */
export async function verifyRequest(request: ReceivedRequest, options: VerifyRequestOptions): Promise<{ origin: string; keyIds: string[] }> {
  if (request.authorization.length === 0) throw forbidden("no Authorization header");
  const headers: XMatrixParams[] = [];
  for (const value of request.authorization) {
    const parsed = parseAuthorization(value);
    if (!parsed.ok) throw forbidden(`malformed Authorization header: ${parsed.reason}`);
    for (const credentials of parsed.value) {
      const params = xMatrixParams(credentials);
      if (!params.ok) throw forbidden(params.reason);
      headers.push(params.value);
    }
  }

  const origin = (headers[0] as XMatrixParams).origin;
  if (!isValidServerName(origin)) throw forbidden(`origin ${JSON.stringify(origin)} is not a valid server name`);
  const order = options.keyOrder ?? DEFAULT_REQUEST_KEY_ORDER;
  const forms: BodylessContent[] = request.content === undefined ? ["empty-object", "absent"] : ["empty-object"];
  let messages: Uint8Array[];
  try {
    messages = forms.map((form) =>
      signingBytes({ method: request.method, uri: request.uri, origin, destination: options.serverName, content: request.content }, form, order),
    );
  } catch (error) {
    throw forbidden(`request body cannot be encoded as canonical JSON (${error instanceof Error ? error.message : String(error)})`);
  }

  for (const header of headers) {
    if (header.origin !== origin) throw forbidden("Authorization headers name different origins");
    if (header.destination !== options.serverName) throw forbidden(`destination ${JSON.stringify(header.destination)} is not this server`);
    if (!isValidKeyId(header.key)) throw forbidden(`key ${JSON.stringify(header.key)} is not an ed25519 key ID`);
    const signature = decodeBase64(header.sig);
    if (signature === undefined) throw forbidden(`signature by ${header.key} is not base64`);
    const verifier = await options.lookupKey(origin, header.key);
    if (verifier === undefined) throw forbidden(`unknown key ${header.key} of ${origin}`);
    if (!messages.some((message) => verifier.verify(message, signature))) throw forbidden(`signature by ${origin} ${header.key} does not verify`);
  }
  return { origin, keyIds: headers.map((header) => header.key) };
}
