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
import type { DestinationRow, OutboxEdu, Storage } from "../../storage/ports.js";
import type { FederationClient, FederationResponse } from "../transport/client.js";
import { FederationRequestError } from "../transport/errors.js";
import { retryDelayMs, type BackoffSettings } from "./backoff.js";
import { DEFAULT_PDU_CACHE_ENTRIES, PduCache } from "./pdu-cache.js";
import { canonicalTransactionBody, failedPdusOf, MAX_EDUS_PER_TXN, MAX_PDUS_PER_TXN, sendPath } from "./transaction.js";
import { OutboxRing } from "./ring.js";
import { encodeCanonicalJson } from "../../core/canonical-json.js";
import type { LpduResult, OutboundQueues } from "./types.js";

export interface OutboundQueueSettings {
  maxPdusPerTxn: number;
  maxEdusPerTxn: number;
  backoff: BackoffSettings;
  /** Per attempt; a timed-out attempt is a failure like any other and is retried as is. */
  requestTimeoutMs: number;
  /** Events whose sent PDU object is shared by every destination (see pdu-cache.ts). */
  pduCacheEntries: number;
  /**
   * The transactions per second all destinations together aim at when busy: a partial transaction
   * (not full, no LPDUs) to one of N sending destinations waits until N / this seconds after the
   * previous one to it.
   */
  maxTxnsPerSecond: number;
}

export const DEFAULT_OUTBOUND_QUEUE_SETTINGS: OutboundQueueSettings = {
  maxPdusPerTxn: MAX_PDUS_PER_TXN,
  maxEdusPerTxn: MAX_EDUS_PER_TXN,
  backoff: { initialMs: 500, maxMs: 15 * 60_000 },
  requestTimeoutMs: 30_000,
  pduCacheEntries: DEFAULT_PDU_CACHE_ENTRIES,
  maxTxnsPerSecond: 1_000,
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

/** How often the outbox is pruned of events every destination has. */
const PRUNE_INTERVAL_MS = 30_000;

/** The longest a partial transaction waits to fill up (see maxTxnsPerSecond). */
const MAX_LINGER_MS = 1_000;

/** How often a busy destination's PDU cursor is written (see recordSuccess). */
const CURSOR_PERSIST_MS = 1_000;

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
  /** Canonical JSON: sent as is and signed without encoding it again. */
  body: string;
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
  /** Everything queued for it up to here was sent (in memory; see ackDue). Undefined: not known yet. */
  cursor: number | undefined;
  /** The cursor as last written to the database. */
  persistedCursor: number | undefined;
  lastPersistTs: number;
  /** When the last transaction was sent (for minTxnIntervalMs). */
  lastSentTs: number;
}

export function createOutboundQueues(deps: OutboundQueuesDeps): OutboundQueues {
  const settings = resolveSettings(deps.settings);
  const { storage, client, now, serverName } = deps;
  const random = deps.random ?? Math.random;
  const logger = deps.logger;
  const repo = storage.federation;
  const pduCache = new PduCache(settings.pduCacheEntries);
  // What the writer queued since start-up; positions up to the visible one at start are in the
  // database outbox only.
  // Without the stream's visible position (unit tests that queue rows straight into storage) there
  // is no ring: everything is read from the database.
  const ring = new OutboxRing(deps.visiblePos ? deps.visiblePos() : Number.POSITIVE_INFINITY);
  // The canonical JSON of each PDU object the cache hands out (a redacted copy is a new object).
  const canonicalOfPdu = new WeakMap<object, string>();
  const states = new Map<string, DestinationState>();
  // Transaction IDs need only be unique per sender and endpoint (LM draft "Transaction
  // Identifiers"); the start-up time, with a nonce in case the clock went back, keeps them unique
  // across restarts, so a receiver never replays an old response for a new transaction.
  const txnIdPrefix = `${now()}.${randomBytes(3).toString("hex")}.`;
  let txnCounter = 0;
  let closed = false;
  let pruneTimer: NodeJS.Timeout | undefined;

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
        cursor: undefined,
        persistedCursor: undefined,
        lastPersistTs: 0,
        lastSentTs: 0,
      };
      states.set(destination, state);
    }
    return state;
  }

  // Counted at most every 50 ms: hundreds of destinations ask for it on every transaction.
  let sending = { count: 0, ts: -Infinity };
  function sendingCount(): number {
    if (now() - sending.ts >= 50) {
      let count = 0;
      for (const state of states.values()) if (state.phase === "sending") count++;
      sending = { count, ts: now() };
    }
    return sending.count;
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
          let built = await buildTxn(state);
          // Under load, fuller transactions: a partial one without LPDUs (no client waits on it)
          // waits until the destination's share of the server's transaction rate allows it (the
          // more destinations are sending, the longer), and what arrives meanwhile joins it. A
          // server talking to a few others waits a millisecond or two at most.
          const spacing = Math.min(MAX_LINGER_MS, (sendingCount() * 1000) / settings.maxTxnsPerSecond);
          const wait = spacing - (now() - state.lastSentTs);
          if (built !== undefined && !built.full && built.lpdus.length === 0 && wait > 0) {
            await new Promise((resolve) => setTimeout(resolve, wait));
            if (closed) break;
            built = await buildTxn(state);
          }
          state.pending = built;
          if (state.pending === undefined) {
            await persistCursor(state);
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
    const [queued, edus] = await Promise.all([pduRoom > 0 ? queuedPdus(state, pduRoom) : Promise.resolve([]), repo.peekEdus(state.name, settings.maxEdusPerTxn)]);
    const lpdus = state.lpdus.splice(0, lpduCount);
    if (lpdus.length === 0 && queued.length === 0 && edus.length === 0) return undefined;
    const pdus = [...lpdus.map((item) => encodeCanonicalJson(item.lpdu, "utf16")), ...queued.map((pdu) => pdu.canonical)];
    return {
      txnId: `${txnIdPrefix}${++txnCounter}`,
      body: canonicalTransactionBody(serverName, now(), pdus, edus.map((e: OutboxEdu) => encodeCanonicalJson(e.edu, "utf16"))),
      lpdus,
      lastStreamPos: queued.at(-1)?.streamPos,
      lastEduId: edus.at(-1)?.id,
      // No room was left for queued PDUs, or they filled it, or the EDUs did: more may wait.
      full: queued.length === pduRoom || edus.length === settings.maxEdusPerTxn,
    };
  }

  /**
   * The destination's next queued PDUs as canonical JSON: from the ring when it holds everything
   * after the destination's cursor, else from the database outbox. Only positions every lower one
   * of which has committed: acknowledging past a position still in flight (PostgreSQL commits in
   * parallel) would skip its event when it lands; what is held back is looked at again shortly.
   */
  async function queuedPdus(state: DestinationState, limit: number): Promise<Array<{ streamPos: number; eventId: string; canonical: string }>> {
    const visible = deps.visiblePos?.() ?? Number.MAX_SAFE_INTEGER;
    if (state.cursor !== undefined && ring.covers(state.cursor)) {
      const { events, heldBack } = ring.peek(state.name, state.cursor, visible, limit);
      if (heldBack) setTimeout(() => wake([state.name]), HELD_BACK_RETRY_MS).unref();
      return events;
    }
    const peeked = await repo.peekPdus(state.name, limit, state.cursor);
    const ready = peeked.filter((pdu) => pdu.streamPos <= visible);
    if (ready.length < peeked.length) setTimeout(() => wake([state.name]), HELD_BACK_RETRY_MS).unref();
    // Nothing queued up to `visible` (read before the peek): the cursor may move there.
    if (peeked.length === 0) state.cursor = Math.max(state.cursor ?? visible, visible);
    return ready.map((item) => {
      const pdu = pduCache.intern(item.eventId, item.pdu);
      let canonical = canonicalOfPdu.get(pdu);
      if (canonical === undefined) canonicalOfPdu.set(pdu, (canonical = encodeCanonicalJson(pdu as unknown as JsonObject, "utf16")));
      return { streamPos: item.streamPos, eventId: item.eventId, canonical };
    });
  }

  /** Sends the transaction once. Returns why it failed, or undefined on a 200. */
  async function attempt(state: DestinationState, txn: PendingTxn): Promise<string | undefined> {
    let response: FederationResponse;
    try {
      state.lastSentTs = now();
      response = await client.request(state.name, "PUT", sendPath(txn.txnId), { canonicalBody: txn.body, timeoutMs: settings.requestTimeoutMs });
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
    if (txn.lastStreamPos !== undefined) state.cursor = Math.max(state.cursor ?? txn.lastStreamPos, txn.lastStreamPos);
    // The PDU cursor is written at most once a second while a destination is busy, and whenever
    // its queue runs dry: after a crash it may resend up to a second of PDUs, which receivers
    // recognise by event ID. EDUs are acknowledged with every transaction (they are rows).
    const cursorDue = state.cursor !== undefined && state.cursor !== state.persistedCursor && (!txn.full || successTs - state.lastPersistTs >= CURSOR_PERSIST_MS);
    if (!cursorDue && txn.lastEduId === undefined && !writeRow) return;
    const row = destinationRow(state);
    const cursor = state.cursor;
    // One database transaction: on SQLite one commit for the acknowledgements and the row.
    await storage.transaction(async (tx) => {
      if (cursorDue && cursor !== undefined) await tx.federation.ackPdus(state.name, cursor);
      if (txn.lastEduId !== undefined) await tx.federation.ackEdus(state.name, txn.lastEduId);
      if (writeRow) await tx.federation.putDestination(row);
    });
    if (cursorDue) {
      state.persistedCursor = cursor;
      state.lastPersistTs = successTs;
    }
  }

  /** Writes a destination's cursor if it moved since it was last written (idle, shutdown). */
  async function persistCursor(state: DestinationState): Promise<void> {
    const cursor = state.cursor;
    if (cursor === undefined || cursor === state.persistedCursor) return;
    await repo.ackPdus(state.name, cursor);
    state.persistedCursor = cursor;
    state.lastPersistTs = now();
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
      // The outbox keeps every event until every destination has it; drop what all have, now and then.
      pruneTimer = setInterval(() => {
        repo.pruneOutbox().catch((error: unknown) => logger.warn({ err: error }, "outbox pruning failed"));
      }, PRUNE_INTERVAL_MS);
      pruneTimer.unref();
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

    queued(events) {
      ring.add(events);
      const destinations = new Set<string>();
      for (const event of events) for (const destination of event.destinations) destinations.add(destination);
      wake(destinations);
    },

    redacted(eventId, pdu) {
      ring.redacted(eventId, pdu);
    },

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

    destinationStates() {
      return [...states.values()].map((state) => ({
        destination: state.name,
        queuedLpdus: state.lpdus.length,
        transactionInFlight: state.pending !== undefined,
        failures: state.failures,
        phase: state.phase,
      }));
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
      clearInterval(pruneTimer);
      const loops: Array<Promise<void>> = [];
      for (const state of states.values()) {
        clearTimeout(state.timer);
        state.timer = undefined;
        if (state.loop !== undefined) loops.push(state.loop);
      }
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(loops), new Promise<void>((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS)))]);
      clearTimeout(grace);
      // Cursors that moved since they were last written: a restart then resends less.
      for (const state of states.values()) await persistCursor(state).catch((error: unknown) => state.logger.warn({ err: error }, "cursor not saved at shutdown"));
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
