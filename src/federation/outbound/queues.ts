// The outbound federation queues (LM draft "PUT /_matrix/federation/v2/send/:txnId"; DESIGN.md
// "Hub pipeline" step 7, "Storage": queues are durable and a restart resumes them).
//
// Each destination server is, in memory, idle, sending or backing off. Sending is one loop per
// destination that builds a transaction (LPDUs waiting for that hub first, then queued PDUs in
// stream order, then queued EDUs), sends it, and repeats the same request — same txnId, same body
// — until it gets a 200 (the draft: "retry the exact same request with the same transaction ID
// until they see a 200 OK"; and never a different txnId while one is in flight). Only then is the
// transaction acknowledged in the database and the next one built.
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { JsonObject } from "../../core/json.js";
import type { DestinationRow, OutboxEdu, OutboxPdu, Storage } from "../../storage/ports.js";
import type { FederationClient, FederationResponse } from "../transport/client.js";
import { FederationRequestError } from "../transport/errors.js";
import { retryDelayMs, type BackoffSettings } from "./backoff.js";
import { DEFAULT_PDU_CACHE_ENTRIES, PduCache } from "./pdu-cache.js";
import { failedPdusOf, MAX_EDUS_PER_TXN, MAX_PDUS_PER_TXN, sendPath, transactionBody } from "./transaction.js";
import type { LpduResult, OutboundQueues } from "./types.js";

export interface OutboundQueueSettings {
  maxPdusPerTxn: number;
  maxEdusPerTxn: number;
  backoff: BackoffSettings;
  /** Per attempt; a timed-out attempt is a failure like any other and is retried as is. */
  requestTimeoutMs: number;
  /** Events whose sent PDU object is shared by every destination (see pdu-cache.ts). */
  pduCacheEntries: number;
}

export const DEFAULT_OUTBOUND_QUEUE_SETTINGS: OutboundQueueSettings = {
  maxPdusPerTxn: MAX_PDUS_PER_TXN,
  maxEdusPerTxn: MAX_EDUS_PER_TXN,
  backoff: { initialMs: 500, maxMs: 15 * 60_000 },
  requestTimeoutMs: 30_000,
  pduCacheEntries: DEFAULT_PDU_CACHE_ENTRIES,
};

export interface OutboundQueuesDeps {
  serverName: string;
  storage: Storage;
  client: FederationClient;
  logger: Logger;
  now: () => number;
  settings?: Partial<Omit<OutboundQueueSettings, "backoff">> & { backoff?: Partial<BackoffSettings> };
  /** The highest stream position below which everything has committed (StreamTracker.visible). */
  visiblePos?: () => number;
  /** The jitter's randomness, in [0, 1); Math.random by default. */
  random?: () => number;
}

/** How stale a healthy destination's persisted lastSuccessTs may get. */
const SUCCESS_TS_REFRESH_MS = 60_000;

/** When queued PDUs were above the visible stream position, how soon to look again. */
const HELD_BACK_RETRY_MS = 20;

/** How long close() waits for transactions in flight before giving up on them. */
const CLOSE_GRACE_MS = 2_000;

/** One sendLpdus call: its results fill in as the transactions holding its LPDUs get their 200. */
interface LpduBatch {
  readonly hub: string;
  readonly results: Array<LpduResult | undefined>;
  remaining: number;
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
  resolve(results: LpduResult[]): void;
  reject(error: Error): void;
}

interface QueuedLpdu {
  lpdu: JsonObject;
  lpduId: string;
  batch: LpduBatch;
  index: number;
}

/** A transaction built once and sent, as is, until a 200. */
interface PendingTxn {
  txnId: string;
  body: JsonObject;
  lpdus: QueuedLpdu[];
  /** Stream position of the last queued PDU in it (what a 200 acknowledges), if any. */
  lastStreamPos: number | undefined;
  lastEduId: number | undefined;
  /** It took as many PDUs or EDUs as a transaction may hold: more may be waiting. */
  full: boolean;
}

type Phase = "idle" | "sending" | "backoff";

interface DestinationState {
  readonly name: string;
  readonly logger: Logger;
  phase: Phase;
  /** The persisted row has been read (failures and retryAtTs survive restarts). */
  loaded: boolean;
  failures: number;
  retryAtTs: number | null;
  lastError: string | null;
  lastSuccessTs: number | null;
  /** LPDUs for this hub not yet in a transaction, in order. */
  lpdus: QueuedLpdu[];
  pending: PendingTxn | undefined;
  /** A wake arrived while sending: rows may have been queued after the last peek. */
  woken: boolean;
  timer: NodeJS.Timeout | undefined;
  /** The sending loop, while one runs. */
  loop: Promise<void> | undefined;
}

export function createOutboundQueues(deps: OutboundQueuesDeps): OutboundQueues {
  const settings = resolveSettings(deps.settings);
  const { storage, client, now, serverName } = deps;
  const random = deps.random ?? Math.random;
  const logger = deps.logger;
  const repo = storage.federation;
  const pduCache = new PduCache(settings.pduCacheEntries);
  const states = new Map<string, DestinationState>();
  // Transaction IDs need only be unique per sender and endpoint (LM draft "Transaction
  // Identifiers"); the start-up time, with a nonce in case the clock went back, keeps them unique
  // across restarts, so a receiver never replays an old response for a new transaction.
  const txnIdPrefix = `${now()}.${randomBytes(3).toString("hex")}.`;
  let txnCounter = 0;
  let closed = false;

  function stateOf(destination: string): DestinationState {
    let state = states.get(destination);
    if (state === undefined) {
      state = {
        name: destination,
        logger: logger.child({ destination }),
        phase: "idle",
        loaded: false,
        failures: 0,
        retryAtTs: null,
        lastError: null,
        lastSuccessTs: null,
        lpdus: [],
        pending: undefined,
        woken: false,
        timer: undefined,
        loop: undefined,
      };
      states.set(destination, state);
    }
    return state;
  }

  function wake(destinations: Iterable<string>): void {
    for (const destination of destinations) {
      // Our own events reach our own rooms without federation.
      if (destination === serverName) continue;
      kick(stateOf(destination));
    }
  }

  /** Starts the sending loop of an idle destination; a sending one looks again before idling. */
  function kick(state: DestinationState): void {
    if (closed) return;
    if (state.phase === "sending") {
      state.woken = true;
      return;
    }
    if (state.phase === "backoff") return;
    state.phase = "sending";
    const loop = runLoop(state).finally(() => {
      if (state.loop === loop) state.loop = undefined;
    });
    state.loop = loop;
  }

  /** Leaves backoff now (markReachable, resetDestination): the next attempt is not delayed. */
  function retryNow(state: DestinationState): void {
    if (state.phase !== "backoff") return;
    clearTimeout(state.timer);
    state.timer = undefined;
    state.retryAtTs = null;
    state.phase = "idle";
    kick(state);
  }

  function scheduleRetry(state: DestinationState, delayMs: number): void {
    state.phase = "backoff";
    clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      retryNow(state);
    }, delayMs);
    // A queue waiting out a backoff is no reason to keep the process alive.
    state.timer.unref();
  }

  async function runLoop(state: DestinationState): Promise<void> {
    try {
      if (!state.loaded) {
        applyRow(state, await repo.getDestination(state.name));
        if (state.retryAtTs !== null && state.retryAtTs > now()) {
          scheduleRetry(state, state.retryAtTs - now());
          return;
        }
      }
      while (!closed) {
        if (state.pending === undefined) {
          state.woken = false;
          state.pending = await buildTxn(state);
          if (state.pending === undefined) {
            if (state.woken || state.lpdus.length > 0) continue;
            break;
          }
        }
        const txn = state.pending;
        const failure = await attempt(state, txn);
        if (failure !== undefined) {
          await recordFailure(state, txn, failure);
          return;
        }
        state.pending = undefined;
        await recordSuccess(state, txn);
        // Nothing can be left unless the transaction was full or something arrived meanwhile.
        if (!txn.full && !state.woken && state.lpdus.length === 0) break;
      }
      state.phase = "idle";
    } catch (error) {
      // Storage trouble, not the destination's: retry later like a failed transaction.
      state.logger.error({ err: error }, "outbound federation queue failed");
      if (!closed) scheduleRetry(state, retryDelayMs(Math.max(1, state.failures), settings.backoff, random));
      else state.phase = "idle";
    }
  }

  function applyRow(state: DestinationState, row: DestinationRow | undefined): void {
    state.loaded = true;
    if (row === undefined) return;
    state.failures = row.failures;
    state.retryAtTs = row.retryAtTs;
    state.lastError = row.lastError;
    state.lastSuccessTs = row.lastSuccessTs;
  }

  async function buildTxn(state: DestinationState): Promise<PendingTxn | undefined> {
    // LPDUs first: a client is waiting for each. They leave the in-memory queue only once the
    // reads succeeded, so a storage error cannot drop them.
    const lpduCount = Math.min(state.lpdus.length, settings.maxPdusPerTxn);
    const pduRoom = settings.maxPdusPerTxn - lpduCount;
    const [peeked, edus] = await Promise.all([
      pduRoom > 0 ? repo.peekPdus(state.name, pduRoom) : Promise.resolve<OutboxPdu[]>([]),
      repo.peekEdus(state.name, settings.maxEdusPerTxn),
    ]);
    // Only positions every lower one of which has committed: acknowledging past a position still
    // in flight (PostgreSQL commits in parallel) would skip its event when it lands. What is held
    // back is looked at again shortly.
    const visible = deps.visiblePos?.() ?? Number.MAX_SAFE_INTEGER;
    const queued = peeked.filter((pdu) => pdu.streamPos <= visible);
    if (queued.length < peeked.length) setTimeout(() => wake([state.name]), HELD_BACK_RETRY_MS).unref();
    const lpdus = state.lpdus.splice(0, lpduCount);
    if (lpdus.length === 0 && queued.length === 0 && edus.length === 0) return undefined;
    const pdus: JsonObject[] = lpdus.map((item) => item.lpdu);
    for (const item of queued) pdus.push(pduCache.intern(item.eventId, item.pdu) as unknown as JsonObject);
    return {
      txnId: `${txnIdPrefix}${++txnCounter}`,
      body: transactionBody(serverName, now(), pdus, edus.map((e: OutboxEdu) => e.edu)),
      lpdus,
      lastStreamPos: queued.at(-1)?.streamPos,
      lastEduId: edus.at(-1)?.id,
      // No room was left for queued PDUs, or they filled it, or the EDUs did: more may wait.
      full: queued.length === pduRoom || edus.length === settings.maxEdusPerTxn,
    };
  }

  /** Sends the transaction once. Returns why it failed, or undefined on a 200. */
  async function attempt(state: DestinationState, txn: PendingTxn): Promise<string | undefined> {
    let response: FederationResponse;
    try {
      response = await client.request(state.name, "PUT", sendPath(txn.txnId), { body: txn.body, timeoutMs: settings.requestTimeoutMs });
    } catch (error) {
      if (error instanceof FederationRequestError) return `${error.failure}: ${error.message}`;
      throw error;
    }
    if (response.status !== 200) return `HTTP ${response.status}${errcodeOf(response.json)}`;
    settleLpdus(state, txn, failedPdusOf(response.json));
    return undefined;
  }

  function settleLpdus(state: DestinationState, txn: PendingTxn, failed: Map<string, string>): void {
    for (const item of txn.lpdus) {
      const error = failed.get(item.lpduId);
      deliver(item, error === undefined ? { ok: true } : { ok: false, error });
    }
    if (failed.size > 0) {
      const lpduIds = new Set(txn.lpdus.map((item) => item.lpduId));
      for (const [eventId, error] of failed) {
        state.logger.warn({ txn_id: txn.txnId, event_id: eventId, lpdu: lpduIds.has(eventId), error }, "destination refused a PDU");
      }
    }
  }

  async function recordSuccess(state: DestinationState, txn: PendingTxn): Promise<void> {
    const wasClean = state.failures === 0 && state.retryAtTs === null && state.lastError === null;
    const successTs = now();
    // A healthy destination's row changes only in lastSuccessTs: refreshing it once a minute is
    // enough for the admin API, and saves a write per transaction during a fan-out.
    const writeRow = !wasClean || state.lastSuccessTs === null || successTs - state.lastSuccessTs >= SUCCESS_TS_REFRESH_MS;
    state.failures = 0;
    state.retryAtTs = null;
    state.lastError = null;
    if (writeRow) state.lastSuccessTs = successTs;
    const row = destinationRow(state);
    // One database transaction: on SQLite one commit for the acknowledgements and the row.
    await storage.transaction(async (tx) => {
      if (txn.lastStreamPos !== undefined) await tx.federation.ackPdus(state.name, txn.lastStreamPos);
      if (txn.lastEduId !== undefined) await tx.federation.ackEdus(state.name, txn.lastEduId);
      if (writeRow) await tx.federation.putDestination(row);
    });
  }

  async function recordFailure(state: DestinationState, txn: PendingTxn, reason: string): Promise<void> {
    state.failures += 1;
    const delay = retryDelayMs(state.failures, settings.backoff, random);
    state.retryAtTs = now() + delay;
    state.lastError = reason.slice(0, 500);
    state.logger.warn({ txn_id: txn.txnId, failures: state.failures, retry_in_ms: delay, reason }, "federation transaction failed");
    if (closed) {
      state.phase = "idle";
      await repo.putDestination(destinationRow(state));
      return;
    }
    scheduleRetry(state, delay);
    await repo.putDestination(destinationRow(state));
  }

  function destinationRow(state: DestinationState): DestinationRow {
    return { destination: state.name, failures: state.failures, retryAtTs: state.retryAtTs, lastError: state.lastError, lastSuccessTs: state.lastSuccessTs };
  }

  function deliver(item: QueuedLpdu, result: LpduResult): void {
    const { batch } = item;
    if (batch.results[item.index] !== undefined) return;
    batch.results[item.index] = result;
    batch.remaining -= 1;
    if (batch.remaining === 0 && !batch.settled) {
      batch.settled = true;
      clearTimeout(batch.timer);
      batch.resolve(batch.results as LpduResult[]);
    }
  }

  function failBatch(batch: LpduBatch, error: Error): void {
    if (batch.settled) return;
    batch.settled = true;
    clearTimeout(batch.timer);
    batch.reject(error);
  }

  return {
    async start() {
      const destinations = await repo.destinationsWithBacklog();
      const rows = await Promise.all(destinations.map((destination) => repo.getDestination(destination)));
      destinations.forEach((destination, i) => {
        const state = stateOf(destination);
        if (state.loaded || state.phase !== "idle") return;
        applyRow(state, rows[i]);
        // A persisted backoff still holds after a restart.
        if (state.retryAtTs !== null && state.retryAtTs > now()) {
          if (!closed) scheduleRetry(state, state.retryAtTs - now());
        } else kick(state);
      });
      logger.info({ destinations: destinations.length }, "outbound federation queues resumed");
    },

    wake,

    async queueEdus(edus) {
      if (edus.length === 0) return;
      await repo.enqueueEdus(edus);
      wake(new Set(edus.map((e) => e.destination)));
    },

    sendLpdus(hub, lpdus, lpduIds, timeoutMs) {
      if (lpdus.length !== lpduIds.length) return Promise.reject(new TypeError("sendLpdus: one LPDU ID per LPDU"));
      if (lpdus.length === 0) return Promise.resolve([]);
      if (closed) return Promise.reject(new FederationRequestError(hub, "connect", "outbound federation is shut down"));
      return new Promise<LpduResult[]>((resolve, reject) => {
        const batch: LpduBatch = { hub, results: lpdus.map(() => undefined), remaining: lpdus.length, settled: false, timer: undefined, resolve, reject };
        // Only the caller stops waiting: the LPDUs stay queued, and a hub that comes back gets them.
        batch.timer = setTimeout(
          () => failBatch(batch, new FederationRequestError(hub, "timeout", `LPDUs not delivered to the hub within ${timeoutMs} ms; still queued, they may be delivered later`)),
          timeoutMs,
        );
        const state = stateOf(hub);
        lpdus.forEach((lpdu, index) => state.lpdus.push({ lpdu, lpduId: lpduIds[index] as string, batch, index }));
        kick(state);
      });
    },

    markReachable(server) {
      const state = states.get(server);
      if (state !== undefined) retryNow(state);
    },

    async destination(destination) {
      return repo.getDestination(destination);
    },

    async resetDestination(destination) {
      const state = stateOf(destination);
      if (!state.loaded) applyRow(state, await repo.getDestination(destination));
      state.failures = 0;
      state.retryAtTs = null;
      state.lastError = null;
      await repo.putDestination(destinationRow(state));
      if (state.phase === "backoff") retryNow(state);
      else kick(state);
    },

    async close() {
      if (closed) return;
      closed = true;
      const loops: Array<Promise<void>> = [];
      for (const state of states.values()) {
        clearTimeout(state.timer);
        state.timer = undefined;
        if (state.loop !== undefined) loops.push(state.loop);
      }
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(loops), new Promise<void>((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS)))]);
      clearTimeout(grace);
      // Whatever the transactions in flight did not deliver will not be sent by this instance.
      for (const state of states.values()) {
        const shutdown = new FederationRequestError(state.name, "connect", "outbound federation shut down before the LPDUs were delivered");
        for (const item of [...(state.pending?.lpdus ?? []), ...state.lpdus]) failBatch(item.batch, shutdown);
      }
    },
  };
}

function resolveSettings(overrides: OutboundQueuesDeps["settings"] = {}): OutboundQueueSettings {
  const { backoff, ...rest } = overrides;
  const merged: OutboundQueueSettings = { ...DEFAULT_OUTBOUND_QUEUE_SETTINGS, ...rest, backoff: { ...DEFAULT_OUTBOUND_QUEUE_SETTINGS.backoff, ...backoff } };
  // The draft's limits are hard limits: a receiver may refuse a bigger transaction.
  merged.maxPdusPerTxn = Math.min(Math.max(1, merged.maxPdusPerTxn), MAX_PDUS_PER_TXN);
  merged.maxEdusPerTxn = Math.min(Math.max(1, merged.maxEdusPerTxn), MAX_EDUS_PER_TXN);
  return merged;
}

/** ` M_FORBIDDEN` from an error body, for the destination's `lastError`. */
function errcodeOf(json: unknown): string {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return "";
  const errcode = (json as Record<string, unknown>).errcode;
  return typeof errcode === "string" ? ` ${errcode}` : "";
}
