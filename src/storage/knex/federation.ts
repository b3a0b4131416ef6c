// Federation state (migration 0004): the outbound queues per destination, destinations' retry
// state, inbound transaction IDs, completed LPDUs and hub violations (see FederationRepo).
//
// The PDU queues of all destinations are one outbox of events (federation_outbox_events), each row
// naming an interned set of destinations, plus a cursor per destination (federation_pdu_cursors):
// a destination's queue is the outbox rows after its cursor whose set names it, and acknowledging
// moves the cursor. Fanning an event out to a room's 415 servers thus writes one row, not 415.
// The few (destination, event) pairs this cannot express are rows of federation_outbox_extra_pdus
// (see passedCursors, addedDestinations). Rows every destination they name has acknowledged are
// deleted by pruneOutboxRows.
import { createHash } from "node:crypto";
import type { Knex } from "knex";
import { encodeCanonicalJson } from "../../core/canonical-json.js";
import type { Pdu } from "../../core/events.js";
import type { DestinationRow, FederationRepo, HubViolationRow, OutboxEdu, OutboxPdu, OutboxPduRow } from "../ports.js";
import { atomically, chunk, parseJsonObject, toNumber, toNumberOrNull } from "./db.js";

/** Outbox rows per multi-row INSERT: three parameters each, far under both engines' limits. */
const OUTBOX_ROWS_PER_INSERT = 500;
/** Three parameters a row. */
const EXTRA_ROWS_PER_INSERT = 500;
/** Four parameters a row. */
const EDU_ROWS_PER_INSERT = 500;

/**
 * Outbox rows read per query while looking for one destination's PDUs: the first read asks for
 * as many as wanted (in a room's own fan-out every row is the destination's), later ones more.
 */
const SCAN_CHUNK_MAX = 2_000;

/** Parsed PDUs a repository keeps for the next peeks (see parsePdu). */
const PARSED_PDU_CACHE_ENTRIES = 2_048;

/** Parsed destination sets kept in memory (a big room's is a few hundred names). */
const DEST_SET_CACHE_ENTRIES = 256;

/**
 * set_id -> its destinations. A set's content is a function of its id (a hash of the names), so
 * an entry is never stale, whichever Storage or transaction read or wrote it, even one rolled back:
 * only whether the set is stored is never taken from here. One per Storage (createKnexStorage).
 */
export class DestSetCache {
  private readonly sets = new Map<string, ReadonlySet<string>>();

  get(setId: string): ReadonlySet<string> | undefined {
    return this.sets.get(setId);
  }

  remember(setId: string, destinations: Iterable<string>): ReadonlySet<string> {
    const set = new Set(destinations);
    if (this.sets.size >= DEST_SET_CACHE_ENTRIES) this.sets.delete(this.sets.keys().next().value as string);
    this.sets.set(setId, set);
    return set;
  }
}

interface OutboxEventRecord {
  stream_pos: unknown;
  event_id: string;
  dest_set: string;
}

/** An event to queue: its position, ID and destinations (sorted), and the set they make. */
interface QueuedEvent {
  streamPos: number;
  eventId: string;
  destinations: string[];
  setId: string;
}

/** A row of the per-destination exceptions table, federation_outbox_extra_pdus. */
interface ExtraPduRow {
  destination: string;
  stream_pos: number;
  event_id: string;
}

interface OutboxEduRecord {
  id: unknown;
  destination: string;
  edu: string;
}

interface DestinationRecord {
  destination: string;
  failures: unknown;
  retry_at_ts: unknown;
  last_error: string | null;
  last_success_ts: unknown;
}

interface InboundTxnRecord {
  origin: string;
  txn_id: string;
  response: string;
  received_ts: unknown;
}

interface HubViolationRecord {
  room_id: string;
  event_id: string;
  hub_server: string;
  reason: string;
  detected_ts: unknown;
}

function toDestinationRow(r: DestinationRecord): DestinationRow {
  return {
    destination: r.destination,
    failures: toNumber(r.failures),
    retryAtTs: toNumberOrNull(r.retry_at_ts),
    lastError: r.last_error,
    lastSuccessTs: toNumberOrNull(r.last_success_ts),
  };
}

function toHubViolationRow(r: HubViolationRecord): HubViolationRow {
  return { roomId: r.room_id, eventId: r.event_id, hubServer: r.hub_server, reason: r.reason, detectedTs: toNumber(r.detected_ts) };
}

function destSetId(sortedDestinations: readonly string[]): string {
  // Server names contain no newline, so the joined list identifies the set.
  return createHash("sha256").update(sortedDestinations.join("\n")).digest("base64url");
}

/** The sets with these ids, from memory or else the database. */
async function loadDestSets(knex: Knex, cache: DestSetCache, setIds: Iterable<string>): Promise<Map<string, ReadonlySet<string>>> {
  const sets = new Map<string, ReadonlySet<string>>();
  const missing: string[] = [];
  for (const setId of new Set(setIds)) {
    const cached = cache.get(setId);
    if (cached === undefined) missing.push(setId);
    else sets.set(setId, cached);
  }
  for (const part of chunk(missing)) {
    const rows = (await knex("federation_dest_sets").select("set_id", "destinations").whereIn("set_id", part)) as Array<{ set_id: string; destinations: string }>;
    for (const row of rows) sets.set(row.set_id, cache.remember(row.set_id, JSON.parse(row.destinations) as string[]));
  }
  return sets;
}

/** One entry per event (the rows of an event share its position), in the order given. */
function groupByEvent(rows: OutboxPduRow[]): Array<{ streamPos: number; eventId: string; destinations: Set<string> }> {
  const events = new Map<number, { streamPos: number; eventId: string; destinations: Set<string> }>();
  for (const row of rows) {
    let event = events.get(row.streamPos);
    if (event === undefined) events.set(row.streamPos, (event = { streamPos: row.streamPos, eventId: row.eventId, destinations: new Set() }));
    event.destinations.add(row.destination);
  }
  return [...events.values()];
}

/**
 * Stores the sets not stored yet, and gives each of their destinations that has no cursor one just
 * before the set's first event: a server that joins a room is sent what follows, not history.
 */
async function internDestSets(knex: Knex, events: QueuedEvent[]): Promise<void> {
  const firstOfSet = new Map<string, QueuedEvent>();
  for (const event of events) {
    const first = firstOfSet.get(event.setId);
    if (first === undefined || event.streamPos < first.streamPos) firstOfSet.set(event.setId, event);
  }
  const stored = new Set<string>();
  for (const part of chunk([...firstOfSet.keys()])) {
    for (const row of (await knex("federation_dest_sets").select("set_id").whereIn("set_id", part)) as Array<{ set_id: string }>) stored.add(row.set_id);
  }
  for (const [setId, first] of firstOfSet) {
    if (stored.has(setId)) continue;
    await knex("federation_dest_sets").insert({ set_id: setId, destinations: JSON.stringify(first.destinations) }).onConflict("set_id").ignore();
    for (const part of chunk(first.destinations)) {
      await knex("federation_pdu_cursors")
        .insert(part.map((destination) => ({ destination, acked_pos: first.streamPos - 1 })))
        .onConflict("destination")
        .ignore();
    }
  }
}

/**
 * The exceptions for events being queued: destinations whose cursor is already at or past the
 * event. That happens when the event commits after one with a higher position (PostgreSQL runs
 * transactions in parallel) that the destination was sent meanwhile; its outbox row alone, behind
 * the cursor, would never be sent to them.
 */
async function passedCursors(knex: Knex, events: QueuedEvent[], sets: Map<string, ReadonlySet<string>>): Promise<ExtraPduRow[]> {
  const lowest = Math.min(...events.map((event) => event.streamPos));
  // Normally no cursor is this far: one index seek that finds nothing.
  const passed = (await knex("federation_pdu_cursors").select("destination", "acked_pos").where("acked_pos", ">=", lowest)) as Array<{ destination: string; acked_pos: unknown }>;
  const extra: ExtraPduRow[] = [];
  for (const cursor of passed) {
    const ackedPos = toNumber(cursor.acked_pos);
    for (const event of events) {
      if (event.streamPos <= ackedPos && sets.get(event.setId)?.has(cursor.destination)) {
        extra.push({ destination: cursor.destination, stream_pos: event.streamPos, event_id: event.eventId });
      }
    }
  }
  return extra;
}

/** The events of `rows` with their sets: consecutive events of a room usually share theirs. */
function toQueuedEvents(rows: OutboxPduRow[]): QueuedEvent[] {
  const events: QueuedEvent[] = [];
  let previous: QueuedEvent | undefined;
  for (const event of groupByEvent(rows)) {
    const destinations = [...event.destinations].sort();
    // Hashing the list once per run of events with the same servers.
    const same = previous !== undefined && previous.destinations.length === destinations.length && previous.destinations.every((d, i) => d === destinations[i]);
    previous = { streamPos: event.streamPos, eventId: event.eventId, destinations, setId: same ? (previous as QueuedEvent).setId : destSetId(destinations) };
    events.push(previous);
  }
  return events;
}

/** An event queued again: the destinations its stored set lacks are new, each an exception row. */
async function addedDestinations(knex: Knex, cache: DestSetCache, requeued: QueuedEvent[]): Promise<ExtraPduRow[]> {
  const storedSet = new Map<number, string>();
  for (const part of chunk(requeued.map((event) => event.streamPos))) {
    const rows = (await knex("federation_outbox_events").select("stream_pos", "dest_set").whereIn("stream_pos", part)) as OutboxEventRecord[];
    for (const row of rows) storedSet.set(toNumber(row.stream_pos), row.dest_set);
  }
  const sets = await loadDestSets(knex, cache, storedSet.values());
  return requeued.flatMap((event) => {
    const set = sets.get(storedSet.get(event.streamPos) ?? "");
    return event.destinations.filter((destination) => !set?.has(destination)).map((destination) => ({ destination, stream_pos: event.streamPos, event_id: event.eventId }));
  });
}

async function enqueuePduRows(knex: Knex, cache: DestSetCache, rows: OutboxPduRow[]): Promise<void> {
  const events = toQueuedEvents(rows);
  const sets = new Map<string, ReadonlySet<string>>();
  for (const event of events) {
    if (!sets.has(event.setId)) sets.set(event.setId, cache.get(event.setId) ?? cache.remember(event.setId, event.destinations));
  }
  await internDestSets(knex, events);
  const inserted = new Set<number>();
  for (const part of chunk(events, OUTBOX_ROWS_PER_INSERT)) {
    const rows = (await knex("federation_outbox_events")
      .insert(part.map((event) => ({ stream_pos: event.streamPos, event_id: event.eventId, dest_set: event.setId })))
      .onConflict("stream_pos")
      .ignore()
      .returning("stream_pos")) as Array<{ stream_pos: unknown }>;
    for (const row of rows) inserted.add(toNumber(row.stream_pos));
  }
  const fresh = events.filter((event) => inserted.has(event.streamPos));
  const requeued = events.filter((event) => !inserted.has(event.streamPos));
  const extra = [...(fresh.length > 0 ? await passedCursors(knex, fresh, sets) : []), ...(requeued.length > 0 ? await addedDestinations(knex, cache, requeued) : [])];
  for (const part of chunk(extra, EXTRA_ROWS_PER_INSERT)) {
    await knex("federation_outbox_extra_pdus").insert(part).onConflict(["destination", "stream_pos"]).ignore();
  }
}

async function cursorOf(knex: Knex, destination: string): Promise<number | undefined> {
  const row = (await knex("federation_pdu_cursors").select("acked_pos").where("destination", destination).first()) as { acked_pos: unknown } | undefined;
  return row && toNumber(row.acked_pos);
}

async function allCursors(knex: Knex): Promise<Map<string, number>> {
  const rows = (await knex("federation_pdu_cursors").select("destination", "acked_pos")) as Array<{ destination: string; acked_pos: unknown }>;
  return new Map(rows.map((row) => [row.destination, toNumber(row.acked_pos)]));
}

/** Each set the outbox's rows name, with its oldest and newest row: one index seek per set. */
async function outboxSets(knex: Knex): Promise<Array<{ setId: string; oldestPos: number; newestPos: number }>> {
  // A loose index scan over federation_outbox_events_set: neither engine skips through an index
  // for DISTINCT by itself, and the outbox may hold many rows of few sets.
  const rows = (await knex.raw(`
    WITH RECURSIVE sets(dest_set) AS (
      SELECT MIN(dest_set) FROM federation_outbox_events
      UNION ALL
      SELECT (SELECT MIN(o.dest_set) FROM federation_outbox_events o WHERE o.dest_set > sets.dest_set) FROM sets WHERE sets.dest_set IS NOT NULL
    )
    SELECT dest_set,
      (SELECT MIN(o.stream_pos) FROM federation_outbox_events o WHERE o.dest_set = sets.dest_set) AS oldest_pos,
      (SELECT MAX(o.stream_pos) FROM federation_outbox_events o WHERE o.dest_set = sets.dest_set) AS newest_pos
    FROM sets WHERE dest_set IS NOT NULL`)) as unknown;
  // knex.raw answers with the driver's own shape: an array on SQLite, a result object on pg.
  const records = (Array.isArray(rows) ? rows : (rows as { rows: unknown[] }).rows) as Array<{ dest_set: string; oldest_pos: unknown; newest_pos: unknown }>;
  return records.map((r) => ({ setId: r.dest_set, oldestPos: toNumber(r.oldest_pos), newestPos: toNumber(r.newest_pos) }));
}

/** A queued PDU as read, with the stored event (null: no such event). */
interface QueuedPdu {
  streamPos: number;
  eventId: string;
  json: string | null;
}

/**
 * One query for a peek's usual case: the destination's first `limit` outbox rows after its cursor
 * (every row, before filtering by set: a room's own fan-out names the destination in each) and its
 * first `limit` exception rows (dest_set null), each with the stored event. No cursor, no outbox
 * rows: `> NULL` holds for none.
 */
async function firstQueuedRows(knex: Knex, destination: string, limit: number, afterPos: number | undefined): Promise<Array<OutboxEventRecord & { dest_set: string | null; json: string | null }>> {
  const outbox = knex("federation_outbox_events as o")
    .leftJoin("events as e", "e.event_id", "o.event_id")
    .select("o.stream_pos", "o.event_id", "o.dest_set", "e.json")
    .where("o.stream_pos", ">", knex("federation_pdu_cursors").select("acked_pos").where("destination", destination))
    .orderBy("o.stream_pos")
    .limit(limit);
  const extra = knex("federation_outbox_extra_pdus as x")
    .leftJoin("events as e", "e.event_id", "x.event_id")
    .select("x.stream_pos", "x.event_id", knex.raw("NULL AS dest_set"), "e.json")
    .where("x.destination", destination)
    .orderBy("x.stream_pos")
    .limit(limit);
  // The sender's cursor runs ahead of the stored one between writes.
  if (afterPos !== undefined) {
    outbox.where("o.stream_pos", ">", afterPos);
    extra.where("x.stream_pos", ">", afterPos);
  }
  return (await knex.select("*").from(outbox.as("outbox")).unionAll(knex.select("*").from(extra.as("extra")))) as Array<OutboxEventRecord & { dest_set: string | null; json: string | null }>;
}

/**
 * The destination's queued PDUs, in stream order, at most `limit`. When the first outbox rows
 * after its cursor are not all its own (other rooms' events), it reads on in growing chunks,
 * without the events, which it then reads for the rows it keeps.
 */
async function queuedPdus(knex: Knex, cache: DestSetCache, destination: string, limit: number, afterPos: number | undefined): Promise<QueuedPdu[]> {
  const first = await firstQueuedRows(knex, destination, limit, afterPos);
  const outboxRows = first.filter((row): row is OutboxEventRecord & { json: string | null } => row.dest_set !== null);
  const queued = first.filter((row) => row.dest_set === null).map((row): QueuedPdu => ({ streamPos: toNumber(row.stream_pos), eventId: row.event_id, json: row.json }));
  let rows: Array<OutboxEventRecord & { json?: string | null }> = outboxRows;
  let found = 0;
  for (let size = limit; ; ) {
    const sets = await loadDestSets(knex, cache, rows.map((row) => row.dest_set));
    const wanted = rows.filter((row) => sets.get(row.dest_set)?.has(destination)).slice(0, limit - found);
    const json = wanted.some((row) => row.json === undefined) ? await eventJsonById(knex, wanted.map((row) => row.event_id)) : undefined;
    for (const row of wanted) queued.push({ streamPos: toNumber(row.stream_pos), eventId: row.event_id, json: (row.json === undefined ? json?.get(row.event_id) : row.json) ?? null });
    found += wanted.length;
    if (found === limit || rows.length < size) break;
    const after = toNumber((rows[rows.length - 1] as OutboxEventRecord).stream_pos);
    size = Math.min(size * 4, SCAN_CHUNK_MAX);
    rows = (await knex("federation_outbox_events").select("stream_pos", "event_id", "dest_set").where("stream_pos", ">", after).orderBy("stream_pos").limit(size)) as OutboxEventRecord[];
  }
  // An exception row and an outbox row never name the same (destination, event); dedupe anyway.
  const byPos = new Map(queued.map((pdu) => [pdu.streamPos, pdu]));
  return [...byPos.values()].sort((a, b) => a.streamPos - b.streamPos).slice(0, limit);
}

/** The stored events (redacted copies once redacted) by ID. */
async function eventJsonById(knex: Knex, eventIds: string[]): Promise<Map<string, string>> {
  const json = new Map<string, string>();
  for (const part of chunk(eventIds)) {
    for (const row of (await knex("events").select("event_id", "json").whereIn("event_id", part)) as Array<{ event_id: string; json: string }>) json.set(row.event_id, row.json);
  }
  return json;
}

/** The lowest cursor among the destinations (those without one have no queue of outbox rows). */
function lowestCursor(destinations: ReadonlySet<string> | undefined, cursors: Map<string, number>): number {
  let lowest = Infinity;
  for (const destination of destinations ?? []) lowest = Math.min(lowest, cursors.get(destination) ?? Infinity);
  return lowest;
}

async function pruneOutboxRows(knex: Knex, cache: DestSetCache): Promise<number> {
  const outbox = await outboxSets(knex);
  if (outbox.length === 0) return 0;
  const cursors = await allCursors(knex);
  const sets = await loadDestSets(knex, cache, outbox.map((set) => set.setId));
  let deleted = 0;
  // Per set, not below the lowest cursor of all: a server that shares no room with us any more
  // keeps its cursor where it stopped, and must not keep every other room's rows alive.
  for (const { setId, oldestPos } of outbox) {
    const ackedByAll = lowestCursor(sets.get(setId), cursors);
    if (ackedByAll < oldestPos) continue;
    const query = knex("federation_outbox_events").where("dest_set", setId);
    if (Number.isFinite(ackedByAll)) query.where("stream_pos", "<=", ackedByAll);
    deleted += await query.del();
  }
  return deleted;
}

export function createFederationRepo(knex: Knex, cache: DestSetCache = new DestSetCache()): FederationRepo {
  // A fan-out hands each event to hundreds of destinations' peeks within moments: parsing it once
  // was a quarter of the drain's time (4,500 events to 415 servers). Keyed by the stored text too,
  // so a redaction, which rewrites it, is parsed anew.
  const parsedPdus = new Map<string, { json: string; pdu: Pdu }>();
  function parsePdu(eventId: string, json: string): Pdu {
    const cached = parsedPdus.get(eventId);
    if (cached !== undefined && cached.json === json) return cached.pdu;
    const pdu = JSON.parse(json) as Pdu;
    parsedPdus.delete(eventId);
    if (parsedPdus.size >= PARSED_PDU_CACHE_ENTRIES) parsedPdus.delete(parsedPdus.keys().next().value as string);
    parsedPdus.set(eventId, { json, pdu });
    return pdu;
  }

  return {
    async enqueuePdus(rows) {
      if (rows.length === 0) return;
      await atomically(knex, (trx) => enqueuePduRows(trx, cache, rows));
    },

    async peekPdus(destination, limit, afterPos) {
      if (limit <= 0) return [];
      // `events.json` is the redacted copy once the event is redacted: a queued PDU goes out as
      // the event is stored at sending time, never with content redacted since.
      const queued = await queuedPdus(knex, cache, destination, limit, afterPos);
      return queued.flatMap(({ streamPos, eventId, json }): OutboxPdu[] => (json === null ? [] : [{ streamPos, eventId, pdu: parsePdu(eventId, json) }]));
    },

    async ackPdus(destination, upToPos) {
      await atomically(knex, async (trx) => {
        await trx("federation_pdu_cursors").where("destination", destination).where("acked_pos", "<", upToPos).update({ acked_pos: upToPos });
        await trx("federation_outbox_extra_pdus").where("destination", destination).where("stream_pos", "<=", upToPos).del();
      });
    },

    async pruneOutbox() {
      return atomically(knex, (trx) => pruneOutboxRows(trx, cache));
    },

    async enqueueEdus(edus) {
      // The port takes no timestamp; created_ts is bookkeeping only (how long EDUs wait), never
      // compared with a caller's clock, so the repository reads it.
      const createdTs = Date.now();
      for (const part of chunk(edus, EDU_ROWS_PER_INSERT)) {
        await knex("federation_outbox_edus").insert(
          // Key order is immaterial here: the sender re-encodes the transaction it signs. Encoding
          // canonically refuses at queue time an EDU that could never be signed (a float, say).
          part.map((e) => ({ destination: e.destination, edu: encodeCanonicalJson(e.edu, "utf16"), created_ts: createdTs })),
        );
      }
    },

    async peekEdus(destination, limit) {
      const rows = (await knex("federation_outbox_edus")
        .select("id", "destination", "edu")
        .where("destination", destination)
        .orderBy("id")
        .limit(limit)) as OutboxEduRecord[];
      return rows.map((r): OutboxEdu => ({ id: toNumber(r.id), destination: r.destination, edu: parseJsonObject(r.edu) }));
    },

    async ackEdus(destination, upToId) {
      await knex("federation_outbox_edus").where("destination", destination).where("id", "<=", upToId).del();
    },

    async destinationsWithBacklog() {
      const backlog = new Set<string>();
      const outbox = await outboxSets(knex);
      if (outbox.length > 0) {
        const cursors = await allCursors(knex);
        const sets = await loadDestSets(knex, cache, outbox.map((set) => set.setId));
        for (const { setId, newestPos } of outbox) {
          for (const destination of sets.get(setId) ?? []) {
            const cursor = cursors.get(destination);
            if (cursor !== undefined && cursor < newestPos) backlog.add(destination);
          }
        }
      }
      const others = (await knex("federation_outbox_extra_pdus").distinct("destination").union(knex("federation_outbox_edus").distinct("destination"))) as Array<{ destination: string }>;
      for (const row of others) backlog.add(row.destination);
      return [...backlog].sort();
    },

    async countQueuedPdus(destination) {
      const extra = (await knex("federation_outbox_extra_pdus").where("destination", destination).count({ n: "*" }).first()) as { n: unknown } | undefined;
      let count = extra ? toNumber(extra.n) : 0;
      const cursor = await cursorOf(knex, destination);
      if (cursor === undefined) return count;
      const outbox = (await outboxSets(knex)).filter((set) => set.newestPos > cursor);
      const sets = await loadDestSets(knex, cache, outbox.map((set) => set.setId));
      for (const { setId } of outbox) {
        if (!sets.get(setId)?.has(destination)) continue;
        const row = (await knex("federation_outbox_events").where("dest_set", setId).where("stream_pos", ">", cursor).count({ n: "*" }).first()) as { n: unknown } | undefined;
        count += row ? toNumber(row.n) : 0;
      }
      return count;
    },

    async getDestination(destination) {
      const row = (await knex("federation_destinations").where("destination", destination).first()) as DestinationRecord | undefined;
      return row && toDestinationRow(row);
    },

    async listDestinations({ from, limit }) {
      // `from` is the previous page's last destination (exclusive), as listPublicRooms' `since`.
      const query = knex("federation_destinations").select("*").orderBy("destination").limit(limit);
      if (from !== undefined) query.where("destination", ">", from);
      return ((await query) as DestinationRecord[]).map(toDestinationRow);
    },

    async putDestination(row) {
      await knex("federation_destinations")
        .insert({
          destination: row.destination,
          failures: row.failures,
          retry_at_ts: row.retryAtTs,
          last_error: row.lastError,
          last_success_ts: row.lastSuccessTs,
        })
        .onConflict("destination")
        .merge();
    },

    async getInboundTxn(origin, txnId) {
      const row = (await knex("federation_inbound_txns").where({ origin, txn_id: txnId }).first()) as InboundTxnRecord | undefined;
      return row && { origin: row.origin, txnId: row.txn_id, response: parseJsonObject(row.response), receivedTs: toNumber(row.received_ts) };
    },

    async putInboundTxn(row) {
      // Two copies of one transaction processed at once: the first response recorded is the one
      // every later repeat replays.
      await knex("federation_inbound_txns")
        .insert({ origin: row.origin, txn_id: row.txnId, response: JSON.stringify(row.response), received_ts: row.receivedTs })
        .onConflict(["origin", "txn_id"])
        .ignore();
    },

    async pruneInboundTxns(beforeTs) {
      return knex("federation_inbound_txns").where("received_ts", "<", beforeTs).del();
    },

    async putCompletedLpdu(lpduId, eventId, origin, ts) {
      // The first completion stands: a resent LPDU must keep mapping to the event appended for it.
      await knex("hub_completed_lpdus").insert({ lpdu_id: lpduId, event_id: eventId, origin, received_ts: ts }).onConflict("lpdu_id").ignore();
    },

    async getCompletedLpdu(lpduId) {
      const row = (await knex("hub_completed_lpdus").select("event_id").where("lpdu_id", lpduId).first()) as { event_id: string } | undefined;
      return row?.event_id;
    },

    async putCompletedLpdus(rows, origin, ts) {
      for (const part of chunk(rows)) {
        await knex("hub_completed_lpdus")
          .insert(part.map(({ lpduId, eventId }) => ({ lpdu_id: lpduId, event_id: eventId, origin, received_ts: ts })))
          .onConflict("lpdu_id")
          .ignore();
      }
    },

    async getCompletedLpdus(lpduIds) {
      const found = new Map<string, string>();
      for (const ids of chunk([...new Set(lpduIds)])) {
        const rows = (await knex("hub_completed_lpdus").select("lpdu_id", "event_id").whereIn("lpdu_id", ids)) as Array<{ lpdu_id: string; event_id: string }>;
        for (const row of rows) found.set(row.lpdu_id, row.event_id);
      }
      return found;
    },

    async addHubViolation(row) {
      await knex("hub_violations").insert({
        room_id: row.roomId,
        event_id: row.eventId,
        hub_server: row.hubServer,
        reason: row.reason,
        detected_ts: row.detectedTs,
      });
    },

    async listHubViolations(roomId) {
      const query = knex("hub_violations").select("room_id", "event_id", "hub_server", "reason", "detected_ts").orderBy("id");
      if (roomId !== undefined) query.where("room_id", roomId);
      return ((await query) as HubViolationRecord[]).map(toHubViolationRow);
    },
  };
}
