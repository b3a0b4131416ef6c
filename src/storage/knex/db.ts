// Shared plumbing of the knex repositories: the handle they run on, value conversions between the
// two engines, and atomic multi-statement writes.
import type { Knex } from "knex";
import type { JsonObject, JsonValue } from "../../core/json.js";

export type Engine = "sqlite" | "postgres";

/**
 * knex's client as far as Bobbin uses it: the connection hand-out of its tarn pool, and the pool
 * (null before knex creates it and after it is destroyed). knex types `client` as `any`.
 */
export interface PooledKnexClient<Connection = unknown> {
  acquireConnection(): Promise<Connection>;
  releaseConnection(connection: Connection): Promise<void>;
  pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number; numPendingCreates(): number } | null;
}

/**
 * A number from an integer column. Our own pg pool parses int8 to numbers (see connection.ts) and
 * better-sqlite3 returns numbers; strings and bigints are still accepted so that an aggregate an
 * engine types differently cannot leak a string to callers.
 */
export function toNumber(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "string" || typeof value === "bigint") return Number(value);
  throw new TypeError(`expected an integer column, got ${typeof value}`);
}

export function toNumberOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : toNumber(value);
}

/** SQLite stores booleans as 0/1; PostgreSQL returns real booleans. */
export function toBool(value: unknown): boolean {
  return value === true || value === 1 || value === "1" || value === "t";
}

export function parseJsonObject(text: string): JsonObject {
  return JSON.parse(text) as JsonObject;
}

export function parseJsonValue(text: string): JsonValue {
  return JSON.parse(text) as JsonValue;
}

/**
 * Runs a multi-statement write atomically: inside the caller's transaction when there is one,
 * else in a transaction of its own.
 */
export async function atomically<T>(knex: Knex, work: (trx: Knex) => Promise<T>): Promise<T> {
  if (knex.isTransaction) return work(knex);
  return knex.transaction((trx) => work(trx));
}

/** A LIKE pattern matching `term` anywhere, with LIKE's wildcards escaped (use with ESCAPE '\'). */
export function containsPattern(term: string): string {
  return `%${term.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Splits a long `IN (...)` list: SQLite allows at most 32766 bound parameters per statement and
 * PostgreSQL 65535; chunks of 500 stay far below both with room for the other bindings.
 */
export function chunk<T>(items: readonly T[], size = 500): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/**
 * Records that stream rows up to `streamPos` were deleted, so that maxStreamPos() never goes
 * backwards across a restart (see the stream_retired table).
 */
export async function retireStreamPos(knex: Knex, streamPos: number): Promise<void> {
  await knex("stream_retired").where("id", 1).where("stream_pos", "<", streamPos).update({ stream_pos: streamPos });
}
