// Prometheus metrics (issue 7 "Observability"): HTTP requests per route, events persisted per room
// kind, the outbound federation queues per destination, syncs in progress, the database connection
// pool, MLS commits accepted and rejected, and prom-client's process metrics. Each homeserver has its own registry (tests run several in one process). The request
// path only increments counters; gauges are read from memory when Prometheus scrapes.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { NextFunction, Request, Response } from "../app/http/router.js";
import type { Logger } from "pino";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { serverNameOf } from "../core/identifiers.js";
import type { OutboundQueues } from "../federation/outbound/types.js";
import { RecentEvents } from "../rooms/recent-events.js";
import type { PoolStats, StoredEvent } from "../storage/ports.js";

/** What the gauges read at scrape time. */
export interface MetricsSources {
  queues: Pick<OutboundQueues, "destinationStates">;
  /** /sync requests being answered or waiting (SyncEngine.inProgress). */
  syncsInProgress: () => number;
  /** The database connection pool (Storage.poolStats). */
  databasePool: () => PoolStats;
}

/** What the hub decided about an `m.mls.commit` (DESIGN.md "One commit per MLS epoch"). */
export type MlsCommitOutcome = "accepted" | "rejected";

export interface Metrics {
  readonly registry: Registry;
  /** Express middleware timing every request; mount it before the routers. */
  observeRequest(req: Request, res: Response, next: NextFunction): void;
  /** The sync engine's recent-event cache, which also counts every event the room writer commits. */
  readonly recentEvents: RecentEvents;
  /** Connects the gauges to the services they read (built after the metrics). */
  readSourcesFrom(sources: MetricsSources): void;
  /** Counts one MLS commit the hub accepted (appended) or rejected (`bobbin_mls_commits_total`). */
  countMlsCommit(outcome: MlsCommitOutcome): void;
}

const PHASES = ["idle", "sending", "backoff"] as const;

// Seconds; a long-polling /sync lands in the top buckets, the rest well below a second.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createMetrics(options: { serverName: string; processMetrics: boolean }): Metrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  const labelNames = ["method", "route", "status_class"] as const;
  const requests = new Counter({ name: "bobbin_http_requests_total", help: "HTTP requests answered, by route pattern, method and status class.", labelNames, registers: [registry] });
  const durations = new Histogram({
    name: "bobbin_http_request_duration_seconds",
    help: "Time from a request's arrival to the end of its response, by route pattern, method and status class.",
    labelNames,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const persisted = new Counter({ name: "bobbin_events_persisted_total", help: "Room events committed, by room kind: hosted here (hub) or a replica of a room hosted elsewhere.", labelNames: ["room_kind"], registers: [registry] });
  const persistedHosted = persisted.labels("hosted");
  const persistedReplica = persisted.labels("replica");
  const mlsCommits = new Counter({ name: "bobbin_mls_commits_total", help: "MLS commits this server checked as the room's hub, by outcome: accepted (appended) or rejected.", labelNames: ["outcome"], registers: [registry] });
  // Both series exist from the start (an increment by 0 creates one), so a rate over `rejected` is 0 rather than absent.
  const mlsOutcomes: Record<MlsCommitOutcome, { inc(value?: number): void }> = { accepted: mlsCommits.labels("accepted"), rejected: mlsCommits.labels("rejected") };
  mlsOutcomes.accepted.inc(0);
  mlsOutcomes.rejected.inc(0);
  let sources: MetricsSources | undefined;

  registerQueueGauges(registry, () => sources);
  new Gauge({
    name: "bobbin_sync_requests_in_progress",
    help: "Client /sync requests being answered or long-polling now.",
    registers: [registry],
    collect() {
      this.set(sources?.syncsInProgress() ?? 0);
    },
  });

  new Gauge({
    name: "bobbin_database_connections",
    help: "The database connection pool: connections in use (used), open and idle (free), and queries waiting for a connection (pending).",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const pool = sources?.databasePool() ?? { used: 0, free: 0, pending: 0 };
      this.set({ state: "used" }, pool.used);
      this.set({ state: "free" }, pool.free);
      this.set({ state: "pending" }, pool.pending);
    },
  });

  class CountingRecentEvents extends RecentEvents {
    override append(event: StoredEvent): void {
      super.append(event);
      (isHostedHere(event, options.serverName) ? persistedHosted : persistedReplica).inc();
    }
  }

  return {
    registry,
    observeRequest(req, res, next) {
      const started = process.hrtime.bigint();
      res.once("finish", () => {
        const labels = { method: req.method, route: routePattern(req), status_class: `${Math.floor(res.statusCode / 100)}xx` };
        requests.inc(labels);
        durations.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
      });
      next();
    },
    recentEvents: new CountingRecentEvents(),
    readSourcesFrom(given) {
      sources = given;
    },
    countMlsCommit(outcome) {
      mlsOutcomes[outcome].inc();
    },
  };
}

/**
 * The room's kind from the event alone, so counting needs no lookup: an event a hub completed from
 * an LPDU names that hub (`hub_server`, LM draft "Linearized PDUs"); an event without it was made by
 * the hub for its own user, and the hub is the server that created the room, named in the room ID.
 */
function isHostedHere(event: StoredEvent, serverName: string): boolean {
  return (event.pdu.hub_server ?? serverNameOf(event.roomId)) === serverName;
}

/**
 * The route pattern (`/_matrix/client/v3/rooms/:roomId/send/...`), never the raw path: IDs in
 * label values would make a time series per room. Requests no route matched share one label.
 */
function routePattern(req: Request): string {
  return req.routePattern ?? "unmatched";
}

function registerQueueGauges(registry: Registry, sourcesOf: () => MetricsSources | undefined): void {
  // Registered first: its collect refreshes the four per-destination gauges below, which the
  // registry reads after it (in registration order), so one scrape sees one snapshot.
  new Gauge({
    name: "bobbin_federation_destinations",
    help: "Destinations the outbound federation queues know since start-up.",
    registers: [registry],
    collect() {
      const states = sourcesOf()?.queues.destinationStates() ?? [];
      for (const gauge of [queued, inFlight, failures, phase]) gauge.reset();
      for (const state of states) {
        queued.set({ destination: state.destination }, state.queuedLpdus);
        inFlight.set({ destination: state.destination }, state.transactionInFlight ? 1 : 0);
        failures.set({ destination: state.destination }, state.failures);
        for (const name of PHASES) phase.set({ destination: state.destination, phase: name }, state.phase === name ? 1 : 0);
      }
      this.set(states.length);
    },
  });
  const queued = new Gauge({ name: "bobbin_federation_queued_lpdus", help: "LPDUs waiting to be sent to a destination (a hub).", labelNames: ["destination"], registers: [registry] });
  const inFlight = new Gauge({ name: "bobbin_federation_transaction_in_flight", help: "1 while a transaction to the destination is being sent or retried.", labelNames: ["destination"], registers: [registry] });
  const failures = new Gauge({ name: "bobbin_federation_destination_failures", help: "Consecutive failed transactions to a destination (0 after a success).", labelNames: ["destination"], registers: [registry] });
  const phase = new Gauge({ name: "bobbin_federation_destination_phase", help: "1 for the phase a destination's queue is in: idle, sending or backoff (waiting to retry).", labelNames: ["destination", "phase"], registers: [registry] });
}

export interface MetricsListener {
  /** `http://host:port` the metrics are scraped from (`/metrics`). */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `GET /metrics` on its own listener, so it can stay private when the APIs are public. */
export async function startMetricsListener(metrics: Metrics, at: { host: string; port: number }, logger: Logger): Promise<MetricsListener> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("Not found: metrics are at /metrics\n");
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { "Content-Type": metrics.registry.contentType }).end(text),
      (error: unknown) => {
        logger.error({ err: error }, "metrics collection failed");
        res.writeHead(500, { "Content-Type": "text/plain" }).end("metrics collection failed\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url: `${url}/metrics` }, "metrics listening");
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
