// What the rest of Bobbin asks of the outbound federation queues (LM draft "Sending Events",
// `PUT /send/{txnId}`): one queue per destination server, one transaction in flight per
// destination, up to 50 PDUs (and LPDUs) and 100 EDUs per transaction, retried with exponential
// backoff and jitter, resumed after a restart. PDUs and EDUs are queued durably in the database
// (FederationRepo) by whoever appends them, in the same transaction as the change itself; LPDUs
// to a hub are kept in memory, since a client is waiting for each of them.
import type { JsonObject } from "../../core/json.js";
import type { DestinationRow } from "../../storage/ports.js";

/** The room writer's view of the queues (declared by rooms/, implemented here). */
import type { FederationFanout } from "../../rooms/fanout.js";
export type { FederationFanout };

/** What became of one LPDU sent to its hub: accepted, or refused with the hub's `failed_pdus` error. */
export type LpduResult = { ok: true } | { ok: false; error: string };

/** One destination's queue as held in memory (OutboundQueues.destinationStates). */
export interface DestinationSnapshot {
  destination: string;
  /** LPDUs waiting for a transaction (PDUs and EDUs wait in the database outbox). */
  queuedLpdus: number;
  /** A transaction was built and is being sent or retried. */
  transactionInFlight: boolean;
  /** Consecutive failed transactions (0 once one succeeds). */
  failures: number;
  phase: "idle" | "sending" | "backoff";
}

export interface OutboundQueues extends FederationFanout {
  /** Rows for these destinations were queued (durably): send them. */
  wake(destinations: Iterable<string>): void;
  /** Resumes every destination with a backlog (after a restart). */
  start(): Promise<void>;
  /** Queues EDUs durably and sends them. */
  queueEdus(edus: Array<{ destination: string; edu: JsonObject }>): Promise<void>;
  /**
   * Sends LPDUs to `hub` in its next transaction(s), in order, sharing the destination's one
   * transaction in flight with queued PDUs and EDUs. `lpduIds[i]` is the event ID computed over
   * `lpdus[i]` as sent, which is how the hub keys `failed_pdus`. Resolves once the transaction
   * holding each LPDU got its 200; rejects (FederationRequestError) when that did not happen
   * within `timeoutMs` (the LPDU may still be delivered later).
   */
  sendLpdus(hub: string, lpdus: JsonObject[], lpduIds: string[], timeoutMs: number): Promise<LpduResult[]>;
  /** A request from `server` arrived: it is up, so retry it now instead of waiting out its backoff. */
  markReachable(server: string): void;
  /** Retry state of a destination (admin API, metrics); undefined if never sent to. */
  destination(destination: string): Promise<DestinationRow | undefined>;
  /** What each destination known since start-up holds in memory now (metrics); no database read. */
  destinationStates(): DestinationSnapshot[];
  /** Clears a destination's backoff and retries it at once (admin API). */
  resetDestination(destination: string): Promise<void>;
  /** Stops sending: waits for transactions in flight (bounded), cancels timers. */
  close(): Promise<void>;
}
