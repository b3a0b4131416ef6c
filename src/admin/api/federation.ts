// The federation routes of the admin API (Synapse Admin API "Federation API"):
// `GET /v1/federation/destinations`, `GET /v1/federation/destinations/{destination}` and
// `POST /v1/federation/destinations/{destination}/reset_connection`.
import type { Logger } from "pino";
import type { Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { paramOf, queryInt, queryString } from "../../client-api/http.js";
import type { OutboundQueues } from "../../federation/outbound/types.js";
import type { DestinationRow, FederationRepo } from "../../storage/ports.js";
import { adminOf, logAdminAction } from "./guard.js";

/** Synapse's default page size for the admin lists. */
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1_000;
/** Rows read per storage call while collecting the list (it pages by destination name). */
const READ_BATCH = 1_000;

/**
 * A destination as Synapse's admin API shows it, plus Bobbin's own record of it.
 * Synapse's fields are derived: Bobbin stores the time of the next attempt (`retry_at_ts`), not
 * the time of the last one nor the start of the failure series, so `retry_last_ts` is "now" and
 * `retry_interval` the wait left, which keeps the one figure tools compute from them
 * (`retry_last_ts + retry_interval`, the next attempt) exact; `failure_ts` is the last success
 * before the failures (the series began after it), or null.
 */
export interface AdminDestination {
  destination: string;
  retry_last_ts: number;
  retry_interval: number;
  failure_ts: number | null;
  last_successful_stream_ordering: null;
  failures: number;
  retry_at_ts: number | null;
  last_error: string | null;
  last_success_ts: number | null;
}

export function toAdminDestination(row: DestinationRow, now: number): AdminDestination {
  const failing = row.failures > 0;
  return {
    destination: row.destination,
    retry_last_ts: failing ? now : 0,
    retry_interval: failing && row.retryAtTs !== null ? Math.max(0, row.retryAtTs - now) : 0,
    failure_ts: failing ? row.lastSuccessTs : null,
    // Bobbin's queues track positions per destination, not Synapse's stream orderings.
    last_successful_stream_ordering: null,
    failures: row.failures,
    retry_at_ts: row.retryAtTs,
    last_error: row.lastError,
    last_success_ts: row.lastSuccessTs,
  };
}

/** Every destination row, by name; the storage pages by name, the admin API by offset. */
async function allDestinations(repo: FederationRepo): Promise<DestinationRow[]> {
  const rows: DestinationRow[] = [];
  for (;;) {
    const from = rows.at(-1)?.destination;
    const batch = await repo.listDestinations({ ...(from !== undefined ? { from } : {}), limit: READ_BATCH });
    rows.push(...batch);
    if (batch.length < READ_BATCH) return rows;
  }
}

export interface FederationAdminDeps {
  repo: FederationRepo;
  queues: OutboundQueues;
  logger: Logger;
  now: () => number;
}

async function knownDestination(repo: FederationRepo, destination: string): Promise<DestinationRow> {
  const row = await repo.getDestination(destination);
  if (!row) throw new MatrixError(Errcode.NOT_FOUND, 404, "Unknown destination");
  return row;
}

export interface DestinationListQuery {
  from: number;
  limit: number;
  /** Part of the destination's name, any case. */
  destination?: string;
}

export interface FederationAdmin {
  list(query: DestinationListQuery): Promise<{ destinations: AdminDestination[]; total: number; next_token?: string }>;
  get(destination: string): Promise<AdminDestination>;
  /** Clears the destination's backoff through the outbound queues, which retry it at once. */
  resetConnection(admin: string, destination: string): Promise<void>;
}

export function createFederationAdmin(deps: FederationAdminDeps): FederationAdmin {
  return {
    async list({ from, limit, destination }) {
      const filter = destination?.toLowerCase();
      const rows = (await allDestinations(deps.repo)).filter((row) => filter === undefined || row.destination.toLowerCase().includes(filter));
      const page = rows.slice(from, from + limit);
      const now = deps.now();
      return {
        destinations: page.map((row) => toAdminDestination(row, now)),
        total: rows.length,
        ...(from + page.length < rows.length ? { next_token: String(from + page.length) } : {}),
      };
    },

    async get(destination) {
      return toAdminDestination(await knownDestination(deps.repo, destination), deps.now());
    },

    async resetConnection(admin, destination) {
      const row = await knownDestination(deps.repo, destination);
      // As Synapse: only a destination in backoff has retry timings to reset.
      if (row.failures === 0 && row.retryAtTs === null) throw new MatrixError(Errcode.INVALID_PARAM, 400, "The retry timing does not need to be reset for this destination.");
      await deps.queues.resetDestination(destination);
      logAdminAction(deps.logger, admin, "reset_destination", { destination, failures: row.failures });
    },
  };
}

export function mountFederationRoutes(router: Router, federation: FederationAdmin): void {
  // GET /v1/federation/destinations: `from` is an offset, as in the other admin lists.
  router.get("/v1/federation/destinations", async (req, res) => {
    const destination = queryString(req, "destination");
    const from = queryInt(req, "from", 0);
    const limit = queryInt(req, "limit", DEFAULT_LIMIT, MAX_LIMIT);
    res.json(await federation.list({ from, limit, ...(destination !== undefined ? { destination } : {}) }));
  });

  // GET /v1/federation/destinations/{destination}
  router.get("/v1/federation/destinations/:destination", async (req, res) => {
    res.json(await federation.get(paramOf(req, "destination")));
  });

  // POST /v1/federation/destinations/{destination}/reset_connection
  router.post("/v1/federation/destinations/:destination/reset_connection", async (req, res) => {
    await federation.resetConnection(adminOf(res), paramOf(req, "destination"));
    res.json({});
  });
}
