// The key ring: other servers' signing keys, fetched, verified and kept (LM draft "Retrieving
// Server Keys", "Validity"; Matrix Server-Server API "Retrieving server keys").
//
// Fetching a server's keys:
//   1. the server's own `GET /_matrix/key/v2/server` first ("Servers SHOULD attempt to contact the
//      target server directly before using a notary server"; mx-differences: LM requires it);
//   2. else each configured notary in turn, `POST /_matrix/key/v2/query`, whose answers must be
//      signed by the notary's key pinned in the configuration;
//   3. every response must name the server and be signed by each of its `verify_keys`.
// Verified keys are kept in memory and in storage (table server_keys) and never deleted: a key that
// signed stored events must stay verifiable; an old key keeps its `expired_ts`. Validity is capped
// at 7 days after the fetch. Concurrent requests for one server share one fetch; a failed fetch is
// not retried before a backoff (1 min doubling to 5 min) so a dead server is not hammered.
import type { Logger } from "pino";
import { decodeBase64 } from "../../core/base64.js";
import { nativeEd25519, type Ed25519Backend, type Ed25519Verifier } from "../../core/ed25519.js";
import { isValidKeyId } from "../../core/identifiers.js";
import { isJsonObject, type JsonObject } from "../../core/json.js";
import type { VerifyKeyLookup } from "../../core/signing.js";
import type { ServerKeyRow, ServerKeysRepo } from "../../storage/ports.js";
import { cappedValidUntil, checkKeyResponse, checkNotarySignature, type CheckedKeyResponse } from "./key-response.js";
import type { OwnKeys } from "./server-keys.js";

/**
 * One HTTP request to a server, by server name (the transport resolves and connects). `json` is
 * the parsed body, whatever its status. Throws for a network failure.
 */
export type KeyFetcher = (serverName: string, path: string, init?: { method: "GET" | "POST"; body?: JsonObject }) => Promise<{ status: number; json: unknown }>;

/** A notary and its pinned keys, as configured (`federation.trusted_key_servers`). */
import type { TrustedKeyServer } from "../transport/settings.js";
export type { TrustedKeyServer };

export interface VerifyKeyOptions {
  readonly minimumValidUntilTs?: number;
  readonly requireCurrent?: boolean;
}

export interface KeyRequirement {
  readonly serverName: string;
  readonly keyId: string;
  /** The key must be valid at least until then (an event's `origin_server_ts`, now for a request). */
  readonly minimumValidUntilTs?: number;
}

/** What a notary query asks of one server. */
export interface KeyCriteria {
  /** Key ID → the minimum validity asked for it; empty: every key. */
  readonly keyIds: ReadonlyMap<string, number>;
  /** The minimum validity of every key, when `keyIds` is empty. */
  readonly minimumValidUntilTs: number;
}

export interface KeyRingOptions {
  /** Our own server: its keys are answered from here, never fetched. */
  readonly own: OwnKeys;
  readonly fetcher: KeyFetcher;
  readonly storage: ServerKeysRepo;
  readonly trustedKeyServers?: readonly TrustedKeyServer[];
  readonly now: () => number;
  readonly logger: Logger;
  readonly backend?: Ed25519Backend;
  /** Backoff after a failed fetch of a server: first wait, doubled per failure up to the maximum. */
  readonly failureBackoffMs?: { readonly initial: number; readonly max: number };
  /** After a successful fetch, a key the server did not list is not asked for again before this. */
  readonly refetchIntervalMs?: number;
  /** A fetch that has not answered by then counts as failed (all waiters share it). */
  readonly fetchTimeoutMs?: number;
}

export interface KeyRing {
  /**
   * A verifier for the key, fetching when it is unknown or not valid until `minimumValidUntilTs`.
   * `requireCurrent`: only a key the server lists under `verify_keys` (request authentication:
   * "only keys listed under verify_keys are honoured").
   */
  getVerifyKey(serverName: string, keyId: string, options?: VerifyKeyOptions): Promise<Ed25519Verifier | undefined>;
  /** Fetches what `lookup` / `lookupValidAt` will then answer synchronously (the kernel's pipeline). */
  prefetch(requirements: readonly KeyRequirement[]): Promise<void>;
  /** Synchronous, from what is cached; any known key, whatever its validity. */
  readonly lookup: VerifyKeyLookup;
  /** Synchronous, from what is cached; only keys valid at `ts` (an old key until its `expired_ts`). */
  lookupValidAt(ts: number): VerifyKeyLookup;
  /** The peer's `m.linearized` flag from its latest key response (fetched if unknown); undefined if unreachable. */
  isLinearized(serverName: string): Promise<boolean | undefined>;
  /**
   * The signed key responses cached for another server that meet `criteria` (the notary
   * endpoints), refreshed from the server itself first when they do not. Our own server: none
   * (the notary answers those from OwnKeys).
   */
  getKeyResponses(serverName: string, criteria: KeyCriteria): Promise<JsonObject[]>;
}

interface CachedKey {
  readonly keyId: string;
  readonly key: string;
  readonly verifier: Ed25519Verifier;
  /** Capped (see cappedValidUntil). */
  readonly validUntilTs: number;
  readonly expiredTs: number | null;
  readonly fetchedTs: number;
  /** The response's own `valid_until_ts`, to tell a newer response from an older one. */
  readonly publishedValidUntilTs: number;
  readonly response: JsonObject;
}

interface ServerEntry {
  readonly keys: Map<string, CachedKey>;
  linearized: boolean | undefined;
  /** fetchedTs of the response `linearized` came from. */
  linearizedTs: number;
  failures: number;
  /** No fetch before this (backoff after a failure, refetch interval after a success). */
  nextFetchTs: number;
}

const NOTARY_QUERY_PATH = "/_matrix/key/v2/query";
const SERVER_KEYS_PATH = "/_matrix/key/v2/server";

export function createKeyRing(options: KeyRingOptions): KeyRing {
  const { own, fetcher, storage, now, logger } = options;
  const backend = options.backend ?? nativeEd25519;
  const backoff = options.failureBackoffMs ?? { initial: 60_000, max: 5 * 60_000 };
  const refetchIntervalMs = options.refetchIntervalMs ?? 60_000;
  const fetchTimeoutMs = options.fetchTimeoutMs ?? 30_000;
  const notaries = (options.trustedKeyServers ?? []).map(pinnedNotary);

  const ownVerifiers = new Map<string, { verifier: Ed25519Verifier; expiredTs: number | null }>();
  for (const old of own.oldKeys) {
    const verifier = backend.verifierFromPublicKey(old.publicKey);
    if (verifier) ownVerifiers.set(old.keyId, { verifier, expiredTs: old.expiredTs });
  }
  const ownCurrent = backend.verifierFromPublicKey(own.signingKey.signer.publicKey);
  if (!ownCurrent) throw new Error("our own signing key has no valid public key");
  ownVerifiers.set(own.signingKey.keyId, { verifier: ownCurrent, expiredTs: null });

  const servers = new Map<string, ServerEntry>();
  const loading = new Map<string, Promise<ServerEntry>>();
  const inflight = new Map<string, Promise<void>>();

  function pinnedNotary(notary: TrustedKeyServer): { serverName: string; keys: Map<string, Ed25519Verifier> } {
    const keys = new Map<string, Ed25519Verifier>();
    for (const [keyId, encoded] of Object.entries(notary.verifyKeys)) {
      const publicKey = decodeBase64(encoded);
      const verifier = isValidKeyId(keyId) && publicKey ? backend.verifierFromPublicKey(publicKey) : undefined;
      if (!verifier) throw new Error(`trusted key server ${notary.serverName}: ${keyId} is not a valid Ed25519 key`);
      keys.set(keyId, verifier);
    }
    if (keys.size === 0) throw new Error(`trusted key server ${notary.serverName}: no verify_keys pinned`);
    return { serverName: notary.serverName, keys };
  }

  function isValidFor(key: { expiredTs: number | null; validUntilTs: number }, minimumValidUntilTs: number | undefined): boolean {
    if (minimumValidUntilTs === undefined) return true;
    // An old key's expired_ts overrides valid_until_ts for that key ("old_verify_keys").
    return (key.expiredTs ?? key.validUntilTs) >= minimumValidUntilTs;
  }

  function ownKey(keyId: string, minimumValidUntilTs: number | undefined, requireCurrent = false): Ed25519Verifier | undefined {
    const key = ownVerifiers.get(keyId);
    if (!key || (requireCurrent && key.expiredTs !== null)) return undefined;
    return key.expiredTs === null || minimumValidUntilTs === undefined || key.expiredTs >= minimumValidUntilTs ? key.verifier : undefined;
  }

  function cachedKey(serverName: string, keyId: string, minimumValidUntilTs: number | undefined, requireCurrent = false): Ed25519Verifier | undefined {
    if (serverName === own.serverName) return ownKey(keyId, minimumValidUntilTs, requireCurrent);
    const key = servers.get(serverName)?.keys.get(keyId);
    if (!key || (requireCurrent && key.expiredTs !== null)) return undefined;
    return isValidFor(key, minimumValidUntilTs) ? key.verifier : undefined;
  }

  /** The server's entry, with what storage holds for it (read once). */
  function loadServer(serverName: string): Promise<ServerEntry> {
    const loaded = servers.get(serverName);
    if (loaded) return Promise.resolve(loaded);
    let pending = loading.get(serverName);
    if (!pending) {
      pending = (async () => {
        const rows = await storage.getServerKeys(serverName);
        const entry: ServerEntry = { keys: new Map(), linearized: undefined, linearizedTs: -1, failures: 0, nextFetchTs: 0 };
        for (const row of rows) {
          const cached = cachedKeyOfRow(row);
          if (!cached) continue;
          entry.keys.set(row.keyId, cached);
          if (row.fetchedTs > entry.linearizedTs) {
            entry.linearized = row.response["m.linearized"] === true;
            entry.linearizedTs = row.fetchedTs;
          }
        }
        servers.set(serverName, entry);
        return entry;
      })().finally(() => loading.delete(serverName));
      loading.set(serverName, pending);
    }
    return pending;
  }

  function cachedKeyOfRow(row: ServerKeyRow): CachedKey | undefined {
    const publicKey = decodeBase64(row.key);
    const verifier = publicKey && backend.verifierFromPublicKey(publicKey);
    if (!verifier) return undefined;
    const published = row.response.valid_until_ts;
    return {
      keyId: row.keyId,
      key: row.key,
      verifier,
      validUntilTs: row.validUntilTs,
      expiredTs: row.expiredTs,
      fetchedTs: row.fetchedTs,
      publishedValidUntilTs: typeof published === "number" ? published : row.validUntilTs,
      response: row.response,
    };
  }

  /** Fetches the server's keys once for all concurrent callers; respects the backoff. */
  async function refreshShared(entry: ServerEntry, serverName: string, wanted: KeyRequirement | undefined, viaNotaries: boolean): Promise<void> {
    const flightKey = `${viaNotaries ? "any" : "direct"} ${serverName}`;
    let flight = inflight.get(flightKey);
    if (!flight) {
      if (now() < entry.nextFetchTs) return;
      flight = refresh(entry, serverName, wanted, viaNotaries).finally(() => inflight.delete(flightKey));
      inflight.set(flightKey, flight);
    }
    await flight;
  }

  async function refresh(entry: ServerEntry, serverName: string, wanted: KeyRequirement | undefined, viaNotaries: boolean): Promise<void> {
    const log = logger.child({ origin: serverName });
    const failures: string[] = [];
    const direct = await fetchDirect(serverName);
    if (direct.ok) {
      await accept(entry, serverName, [direct], now(), true);
      return;
    }
    failures.push(`direct: ${direct.reason}`);
    if (viaNotaries) {
      for (const notary of notaries) {
        if (notary.serverName === serverName) continue;
        const relayed = await fetchThroughNotary(serverName, notary, wanted);
        if (relayed.ok) {
          log.info({ notary: notary.serverName, direct_failure: direct.reason }, "fetched server keys through a notary");
          await accept(entry, serverName, relayed.responses, now(), false);
          return;
        }
        failures.push(relayed.reason);
      }
    }
    entry.failures += 1;
    const wait = Math.min(backoff.initial * 2 ** (entry.failures - 1), backoff.max);
    entry.nextFetchTs = now() + wait;
    log.warn({ failures, retry_in_ms: wait }, "cannot fetch server keys");
  }

  async function fetchDirect(serverName: string): Promise<CheckedKeyResponse | { ok: false; reason: string }> {
    try {
      const answer = await withTimeout(fetcher(serverName, SERVER_KEYS_PATH));
      if (answer.status !== 200) return { ok: false, reason: `HTTP ${answer.status}` };
      return checkKeyResponse(answer.json, serverName, backend);
    } catch (error) {
      return { ok: false, reason: reasonOf(error) };
    }
  }

  async function fetchThroughNotary(
    serverName: string,
    notary: { serverName: string; keys: Map<string, Ed25519Verifier> },
    wanted: KeyRequirement | undefined,
  ): Promise<{ ok: true; responses: CheckedKeyResponse[] } | { ok: false; reason: string }> {
    const keyCriteria: JsonObject = {};
    if (wanted) keyCriteria[wanted.keyId] = wanted.minimumValidUntilTs === undefined ? {} : { minimum_valid_until_ts: wanted.minimumValidUntilTs };
    let answer: { status: number; json: unknown };
    try {
      answer = await withTimeout(fetcher(notary.serverName, NOTARY_QUERY_PATH, { method: "POST", body: { server_keys: { [serverName]: keyCriteria } } }));
    } catch (error) {
      return { ok: false, reason: `notary ${notary.serverName}: ${reasonOf(error)}` };
    }
    if (answer.status !== 200) return { ok: false, reason: `notary ${notary.serverName}: HTTP ${answer.status}` };
    const list = isJsonObject(answer.json) ? answer.json.server_keys : undefined;
    if (!Array.isArray(list)) return { ok: false, reason: `notary ${notary.serverName}: server_keys is not an array` };
    const responses: CheckedKeyResponse[] = [];
    const refused: string[] = [];
    for (const item of list) {
      // A notary may answer more than was asked; only this server's responses matter here.
      if (!isJsonObject(item) || item.server_name !== serverName) continue;
      const checked = checkKeyResponse(item, serverName, backend);
      if (!checked.ok) {
        refused.push(checked.reason);
        continue;
      }
      const notarised = checkNotarySignature(item, notary.serverName, notary.keys);
      if (!notarised.ok) {
        refused.push(notarised.reason);
        continue;
      }
      responses.push(checked);
    }
    if (responses.length === 0) return { ok: false, reason: `notary ${notary.serverName}: no acceptable response (${refused.join("; ") || "none given"})` };
    return { ok: true, responses };
  }

  /** Merges verified responses into the cache and storage. `authoritative`: fetched from the server itself. */
  async function accept(entry: ServerEntry, serverName: string, responses: CheckedKeyResponse[], fetchedTs: number, authoritative: boolean): Promise<void> {
    const changed: ServerKeyRow[] = [];
    for (const checked of [...responses].sort((a, b) => a.validUntilTs - b.validUntilTs)) {
      for (const key of checked.keys) {
        const existing = entry.keys.get(key.keyId);
        // A relayed response never replaces a newer one (a notary's cache may lag behind).
        if (existing && !authoritative && existing.publishedValidUntilTs > checked.validUntilTs) continue;
        const cached: CachedKey = {
          keyId: key.keyId,
          key: key.key,
          verifier: key.verifier,
          validUntilTs: cappedValidUntil(checked.validUntilTs, fetchedTs),
          expiredTs: key.expiredTs,
          fetchedTs,
          publishedValidUntilTs: checked.validUntilTs,
          response: checked.response,
        };
        entry.keys.set(key.keyId, cached);
        changed.push({
          serverName,
          keyId: key.keyId,
          key: key.key,
          validUntilTs: cached.validUntilTs,
          expiredTs: key.expiredTs,
          fetchedTs,
          response: checked.response,
        });
      }
      entry.linearized = checked.linearized;
      entry.linearizedTs = fetchedTs;
    }
    entry.failures = 0;
    entry.nextFetchTs = fetchedTs + refetchIntervalMs;
    try {
      await storage.putServerKeys(changed);
    } catch (error) {
      // The keys stay usable from memory; the next fetch writes them again.
      logger.error({ err: error, origin: serverName }, "cannot store server keys");
    }
  }

  function withTimeout<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${fetchTimeoutMs} ms`)), fetchTimeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  async function getVerifyKey(serverName: string, keyId: string, options: VerifyKeyOptions = {}): Promise<Ed25519Verifier | undefined> {
    const { minimumValidUntilTs: minimum, requireCurrent } = options;
    if (serverName === own.serverName) return ownKey(keyId, minimum, requireCurrent);
    const entry = await loadServer(serverName);
    const known = cachedKey(serverName, keyId, minimum, requireCurrent);
    if (known) return known;
    await refreshShared(entry, serverName, { serverName, keyId, ...(minimum !== undefined ? { minimumValidUntilTs: minimum } : {}) }, true);
    return cachedKey(serverName, keyId, minimum, requireCurrent);
  }

  return {
    getVerifyKey,

    async prefetch(requirements) {
      await Promise.all(requirements.map((r) => getVerifyKey(r.serverName, r.keyId, r.minimumValidUntilTs === undefined ? {} : { minimumValidUntilTs: r.minimumValidUntilTs })));
    },

    lookup: (entity, keyId) => cachedKey(entity, keyId, undefined),

    lookupValidAt: (ts) => (entity, keyId) => cachedKey(entity, keyId, ts),

    async isLinearized(serverName) {
      if (serverName === own.serverName) return true;
      const entry = await loadServer(serverName);
      if (entry.linearized === undefined) await refreshShared(entry, serverName, undefined, true);
      return entry.linearized;
    },

    async getKeyResponses(serverName, criteria) {
      if (serverName === own.serverName) return [];
      const entry = await loadServer(serverName);
      const meets = (): CachedKey[] => {
        const found: CachedKey[] = [];
        if (criteria.keyIds.size === 0) {
          for (const key of entry.keys.values()) if (isValidFor(key, criteria.minimumValidUntilTs)) found.push(key);
        } else {
          for (const [keyId, minimum] of criteria.keyIds) {
            const key = entry.keys.get(keyId);
            if (key && isValidFor(key, minimum)) found.push(key);
          }
        }
        return found;
      };
      let found = meets();
      const satisfied = criteria.keyIds.size === 0 ? found.some((key) => key.expiredTs === null) : found.length === criteria.keyIds.size;
      // A notary asks the server itself, never other notaries (two notaries must not loop).
      if (!satisfied) {
        await refreshShared(entry, serverName, undefined, false);
        found = meets();
      }
      const responses = new Map<string, JsonObject>();
      for (const key of found) responses.set(JSON.stringify(key.response), key.response);
      return [...responses.values()];
    },
  };
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
