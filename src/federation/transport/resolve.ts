// Server name resolution (LM draft "Resolving Server Names" and "GET /.well-known/matrix/server";
// Matrix Server-Server API "Resolving server names", whose IP-literal and `_matrix-fed._tcp` steps
// are added here for classic peers). The steps, repeated in the code:
//
//   1. An IP literal, or a name with an explicit port: connect to it directly.
//   2. Else fetch `https://<hostname>/.well-known/matrix/server` (cached). A valid `m.server`
//      delegates to `<delegated_hostname>[:<delegated_port>]`:
//      2.1 an IP literal or an explicit port: connect to it directly;
//      2.2 else SRV `_matrix-fed._tcp.<delegated>`, then `_matrix._tcp.<delegated>`;
//      2.3 else `<delegated>:8448`.
//      In 2.2 and 2.3 the certificate and Host header are the delegated hostname.
//   3. Else (no valid well-known) SRV `_matrix-fed._tcp.<hostname>`, then `_matrix._tcp.<hostname>`;
//   4. else `<hostname>:8448`. In 3 and 4 the certificate and Host header are the hostname.
//
// A and AAAA lookups of the chosen host are left to the connecting socket.
import { isIP } from "node:net";
import type { Logger } from "pino";
import { isValidServerName } from "../../core/identifiers.js";
import { FederationRequestError } from "./errors.js";
import type { ConnectTarget, HttpExchanger } from "./http-exchange.js";

export type ResolvedServer = ConnectTarget;

export const DEFAULT_FEDERATION_PORT = 8448;

export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** The part of node:dns/promises' Resolver that resolution uses; tests pass a fake. */
export interface SrvResolver {
  resolveSrv(hostname: string): Promise<SrvRecord[]>;
}

/** What a `.well-known/matrix/server` fetch produced: a delegation, or why there is none. */
export type WellKnownResult =
  | { ok: true; server: string; /** From Cache-Control; undefined when it says nothing. */ maxAgeMs?: number | undefined; noStore?: boolean }
  | { ok: false; reason: string };

export type WellKnownFetcher = (hostname: string) => Promise<WellKnownResult>;

export interface ServerResolver {
  /** Throws FederationRequestError("resolve") for a name that cannot be contacted. */
  resolve(serverName: string): Promise<ResolvedServer>;
}

/** Cache lifetimes for well-known answers (the draft's recommendations). */
export const WELL_KNOWN_DEFAULT_CACHE_MS = 24 * 3600_000;
export const WELL_KNOWN_MAX_CACHE_MS = 48 * 3600_000;
/** First error is retried after this long; each further error in a row doubles it, up to the maximum. */
export const WELL_KNOWN_ERROR_BACKOFF_MS = 5 * 60_000;
export const WELL_KNOWN_ERROR_MAX_CACHE_MS = 3600_000;
const WELL_KNOWN_CACHE_ENTRIES = 10_000;

export interface ServerResolverOptions {
  dns: SrvResolver;
  fetchWellKnown: WellKnownFetcher;
  now?: () => number;
  /** In [0, 1): picks among SRV records of equal priority by weight (RFC 2782). */
  random?: () => number;
  logger?: Logger;
}

interface WellKnownEntry {
  result: WellKnownResult;
  expiresAt: number;
  /** Errors in a row, for the backoff. */
  failures: number;
}

/** `host[:port]` split, with IPv6 brackets removed from `host`; undefined when not a server name. */
export function parseServerName(name: string): { host: string; port?: number; ipLiteral: boolean } | undefined {
  if (typeof name !== "string") return undefined;
  const ipv6 = /^\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?$/.exec(name);
  if (ipv6) {
    const host = ipv6[1] as string;
    if (isIP(host) !== 6) return undefined;
    return withPort(host, ipv6[2], true);
  }
  const match = /^([^:]+)(?::([0-9]{1,5}))?$/.exec(name);
  if (!match) return undefined;
  const host = match[1] as string;
  if (isIP(host) === 4) return withPort(host, match[2], true);
  // The draft's server-name grammar, which also refuses other all-numeric hosts.
  if (!isValidServerName(host)) return undefined;
  return withPort(host, match[2], false);
}

function withPort(host: string, port: string | undefined, ipLiteral: boolean): { host: string; port?: number; ipLiteral: boolean } | undefined {
  if (port === undefined) return { host, ipLiteral };
  const value = Number(port);
  if (value < 1 || value > 65535) return undefined;
  return { host, port: value, ipLiteral };
}

/** Reads `max-age` / `no-store` / `no-cache` from a Cache-Control header. */
export function parseCacheControl(header: string | undefined): { maxAgeMs?: number; noStore: boolean } {
  if (header === undefined) return { noStore: false };
  const directives = header.split(",").map((part) => part.trim().toLowerCase());
  const noStore = directives.some((d) => d === "no-store" || d === "no-cache");
  const maxAge = directives.map((d) => /^max-age\s*=\s*"?(\d+)"?$/.exec(d)).find((m) => m !== null);
  return maxAge ? { maxAgeMs: Number(maxAge[1]) * 1000, noStore } : { noStore };
}

export function createServerResolver(options: ServerResolverOptions): ServerResolver {
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const cache = new Map<string, WellKnownEntry>();
  const inFlight = new Map<string, Promise<WellKnownResult>>();

  async function wellKnown(hostname: string): Promise<WellKnownResult> {
    const cached = cache.get(hostname);
    if (cached !== undefined && cached.expiresAt > now()) return cached.result;
    const pending = inFlight.get(hostname);
    if (pending !== undefined) return pending;
    const fetching = (async () => {
      let result: WellKnownResult;
      try {
        result = await options.fetchWellKnown(hostname);
      } catch (error) {
        result = { ok: false, reason: error instanceof Error ? error.message : String(error) };
      }
      remember(hostname, result, cached?.failures ?? 0);
      return result;
    })();
    inFlight.set(hostname, fetching);
    try {
      return await fetching;
    } finally {
      inFlight.delete(hostname);
    }
  }

  function remember(hostname: string, result: WellKnownResult, previousFailures: number): void {
    cache.delete(hostname);
    if (result.ok) {
      if (result.noStore) return;
      const lifetime = Math.min(result.maxAgeMs ?? WELL_KNOWN_DEFAULT_CACHE_MS, WELL_KNOWN_MAX_CACHE_MS);
      if (lifetime > 0) cache.set(hostname, { result, expiresAt: now() + lifetime, failures: 0 });
    } else {
      const failures = previousFailures + 1;
      const lifetime = Math.min(WELL_KNOWN_ERROR_BACKOFF_MS * 2 ** (failures - 1), WELL_KNOWN_ERROR_MAX_CACHE_MS);
      options.logger?.debug({ server_name: hostname, reason: result.reason, retry_in_ms: lifetime }, "no valid .well-known/matrix/server");
      cache.set(hostname, { result, expiresAt: now() + lifetime, failures });
    }
    // Map keeps insertion order: the first key is the oldest entry.
    if (cache.size > WELL_KNOWN_CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
  }

  async function srv(hostname: string): Promise<{ host: string; port: number } | undefined> {
    for (const service of ["_matrix-fed._tcp", "_matrix._tcp"]) {
      let records: SrvRecord[];
      try {
        records = await options.dns.resolveSrv(`${service}.${hostname}`);
      } catch (error) {
        // NXDOMAIN / no data is the usual answer; a failing DNS server is treated the same way.
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== "ENOTFOUND" && code !== "ENODATA") options.logger?.debug({ server_name: hostname, service, err: error }, "SRV lookup failed");
        continue;
      }
      const chosen = chooseSrvRecord(records, random);
      if (chosen !== undefined) return { host: chosen.name, port: chosen.port };
    }
    return undefined;
  }

  return {
    async resolve(serverName) {
      const parsed = parseServerName(serverName);
      if (parsed === undefined) throw new FederationRequestError(serverName, "resolve", "not a valid server name");
      // Step 1.
      if (parsed.ipLiteral || parsed.port !== undefined) {
        return { host: parsed.host, port: parsed.port ?? DEFAULT_FEDERATION_PORT, tlsServerName: parsed.host, hostHeader: serverName };
      }
      const hostname = parsed.host;
      // Step 2.
      const delegation = await wellKnown(hostname);
      if (delegation.ok) {
        const delegated = parseServerName(delegation.server) as NonNullable<ReturnType<typeof parseServerName>>;
        // 2.1
        if (delegated.ipLiteral || delegated.port !== undefined) {
          return { host: delegated.host, port: delegated.port ?? DEFAULT_FEDERATION_PORT, tlsServerName: delegated.host, hostHeader: delegation.server };
        }
        // 2.2, 2.3
        const record = await srv(delegated.host);
        const target = record ?? { host: delegated.host, port: DEFAULT_FEDERATION_PORT };
        return { ...target, tlsServerName: delegated.host, hostHeader: delegated.host };
      }
      // Steps 3 and 4.
      const record = await srv(hostname);
      const target = record ?? { host: hostname, port: DEFAULT_FEDERATION_PORT };
      return { ...target, tlsServerName: hostname, hostHeader: hostname };
    },
  };
}

/**
 * RFC 2782 selection: the lowest priority, then a weighted random pick among those (weight-0
 * records only when every weight is 0). A single record whose target is "." means "no service".
 */
export function chooseSrvRecord(records: readonly SrvRecord[], random: () => number): SrvRecord | undefined {
  const usable = records.filter((record) => record.name !== "" && record.name !== ".");
  if (usable.length === 0) return undefined;
  const best = Math.min(...usable.map((record) => record.priority));
  const candidates = usable.filter((record) => record.priority === best);
  const total = candidates.reduce((sum, record) => sum + record.weight, 0);
  if (total === 0) return candidates[Math.floor(random() * candidates.length)] ?? candidates[0];
  let pick = random() * total;
  for (const record of candidates) {
    pick -= record.weight;
    if (pick < 0) return record;
  }
  return candidates[candidates.length - 1];
}

export interface WellKnownFetcherOptions {
  exchanger: HttpExchanger;
  timeoutMs?: number;
  /** Well-known answers are tiny; anything larger is not one. */
  maxResponseBytes?: number;
  maxRedirects?: number;
}

/**
 * Fetches `https://<hostname>/.well-known/matrix/server` with normal certificate checks for the
 * hostname, following redirects (at most `maxRedirects`, never to a URL already visited). Any
 * failure — network, status, JSON, a missing or invalid `m.server` — is a `{ok: false}` answer, so
 * resolution moves on to SRV (the draft: such failures MUST NOT fail discovery).
 */
export function createWellKnownFetcher(options: WellKnownFetcherOptions): WellKnownFetcher {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxResponseBytes = options.maxResponseBytes ?? 64 * 1024;
  const maxRedirects = options.maxRedirects ?? 5;
  return async (hostname) => {
    let url = new URL(`https://${hostname.includes(":") ? `[${hostname}]` : hostname}/.well-known/matrix/server`);
    const visited = new Set<string>();
    for (let hop = 0; ; hop++) {
      visited.add(url.href);
      if (url.protocol !== "https:") return { ok: false, reason: `redirected to ${url.protocol} URL` };
      const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
      const port = url.port === "" ? 443 : Number(url.port);
      let response;
      try {
        response = await options.exchanger.exchange(
          { host, port, tlsServerName: host, hostHeader: url.host },
          { method: "GET", path: `${url.pathname}${url.search}`, headers: { accept: "application/json" }, timeoutMs, maxResponseBytes, label: hostname },
        );
      } catch (error) {
        return { ok: false, reason: error instanceof Error ? error.message : String(error) };
      }
      const location = response.headers.location;
      if (response.status >= 300 && response.status < 400 && location !== undefined) {
        if (hop >= maxRedirects) return { ok: false, reason: "too many redirects" };
        const next = new URL(location, url);
        if (visited.has(next.href)) return { ok: false, reason: "redirect loop" };
        url = next;
        continue;
      }
      if (response.status !== 200) return { ok: false, reason: `status ${response.status}` };
      // The body is JSON whatever Content-Type says.
      let body: unknown;
      try {
        body = JSON.parse(response.body.toString("utf8"));
      } catch {
        return { ok: false, reason: "body is not JSON" };
      }
      const server = typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>)["m.server"] : undefined;
      if (typeof server !== "string") return { ok: false, reason: "no m.server string" };
      if (parseServerName(server) === undefined) return { ok: false, reason: `m.server ${JSON.stringify(server)} is not a server name` };
      const cacheControl = parseCacheControl(headerValue(response.headers["cache-control"]));
      return { ok: true, server, maxAgeMs: cacheControl.maxAgeMs, noStore: cacheControl.noStore };
    }
  };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(",") : value;
}
