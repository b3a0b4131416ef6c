// Copies a SQLite database into an empty PostgreSQL one (docs/postgres.md "Moving from SQLite"):
// the target gets the schema from the same migrations, then every table's rows, parents before
// children, in batches, inside one PostgreSQL transaction (a failed copy leaves the target empty).
// Rows keep their values, so stream positions — and the sync tokens clients hold — stay valid;
// PostgreSQL's sequences are moved past the copied IDs. The source is read in one transaction,
// a consistent snapshot even if something writes to it meanwhile (the server should be stopped).
import { existsSync } from "node:fs";
import type { Knex } from "knex";
import { migrateDatabase, type DatabaseSettings } from "../index.js";
import { migrations } from "../migrations/index.js";
import { createKnex } from "./connection.js";

export interface PortOptions {
  /** Rows per INSERT; lowered for wide tables to stay under PostgreSQL's 65535 parameters. */
  batchSize?: number;
  /** Called after each batch with the table and the rows copied into it so far. */
  onProgress?: (table: string, rowsCopied: number) => void;
}

export interface PortReport {
  /** Rows copied per table, in the order the tables were copied. */
  tables: Array<{ table: string; rows: number }>;
  /** Sequences moved past the copied IDs: `table.column` -> the next value. */
  sequences: Record<string, number>;
}

/** A database that cannot be copied as asked; the message is one line for the operator. */
export class PortError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PortError";
  }
}

/** knex's own bookkeeping: the target's migrations write it; SQLite's AUTOINCREMENT counters. */
const NOT_COPIED = new Set(["knex_migrations", "knex_migrations_lock", "sqlite_sequence"]);

/** Rows migrations insert themselves (seeds), replaced by the source's copy. */
const SEEDED = new Set(["stream_retired"]);

const MAX_PARAMETERS = 60_000;

interface TargetColumn {
  name: string;
  type: string;
  /** A serial column: its sequence is advanced after the copy. */
  serial: boolean;
}

export async function portDatabase(from: DatabaseSettings, to: DatabaseSettings, options: PortOptions = {}): Promise<PortReport> {
  if (from.engine !== "sqlite") throw new PortError("the source must be a SQLite database");
  if (to.engine !== "postgres") throw new PortError("the target must be a PostgreSQL database");
  // Opening a missing file would create an empty database.
  if (!existsSync(from.path)) throw new PortError(`no such file: ${from.path}`);
  const source = createKnex(from);
  let target: Knex | undefined;
  try {
    await requireCurrentSchema(source);
    // The target's schema comes from the migrations, exactly as a server starting on it would make it.
    await migrateDatabase(to);
    target = createKnex(to);
    const tables = await copyOrder(source, target);
    const columns = new Map<string, TargetColumn[]>();
    for (const table of tables) columns.set(table, await targetColumns(target, table));
    await requireEmpty(target, tables);
    const knexTarget = target;
    return await source.transaction(
      async (reader) =>
        knexTarget.transaction(async (writer) => {
          const report: PortReport = { tables: [], sequences: {} };
          for (const table of tables) {
            const rows = await copyTable(reader, writer, table, columns.get(table) ?? [], options);
            report.tables.push({ table, rows });
          }
          for (const table of tables) {
            for (const column of columns.get(table) ?? []) {
              if (column.serial) report.sequences[`${table}.${column.name}`] = await advanceSequence(writer, table, column.name);
            }
          }
          return report;
        }),
      // SQLite serves every read of one transaction from one snapshot of the WAL.
    );
  } finally {
    await source.destroy();
    await target?.destroy();
  }
}

/** The source must have every migration this version has, and none it does not know. */
async function requireCurrentSchema(source: Knex): Promise<void> {
  const hasTable = await source.schema.hasTable("knex_migrations");
  const applied = hasTable ? ((await source("knex_migrations").select("name").orderBy("id")) as Array<{ name: string }>).map((row) => row.name) : [];
  if (applied.length === 0) throw new PortError("the source is not a Bobbin database (no migrations applied)");
  const known = migrations.map((migration) => migration.name);
  const unknown = applied.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new PortError(`the source was migrated by a newer Bobbin (${unknown.join(", ")}): port with that version`);
  const missing = known.filter((name) => !applied.includes(name));
  if (missing.length > 0) throw new PortError(`the source's schema is not current (missing ${missing.join(", ")}): run \`bobbin migrate\` on it first`);
}

/**
 * The source's tables in creation order (the order of the migrations), then moved so that every
 * table comes after the tables its foreign keys reference in the target.
 */
async function copyOrder(source: Knex, target: Knex): Promise<string[]> {
  const created = ((await source.raw("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")) as Array<{ name: string }>)
    .map((row) => row.name)
    .filter((name) => !NOT_COPIED.has(name) && !name.startsWith("sqlite_"));
  const targetTables = new Set(
    ((await target.raw("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")) as { rows: Array<{ name: string }> }).rows.map((row) => row.name),
  );
  const absent = created.filter((table) => !targetTables.has(table));
  if (absent.length > 0) throw new PortError(`tables missing in the target after migrating it: ${absent.join(", ")}`);
  const references = (
    (await target.raw(`
      SELECT child.relname AS child, parent.relname AS parent
      FROM pg_constraint c
      JOIN pg_class child ON child.oid = c.conrelid
      JOIN pg_class parent ON parent.oid = c.confrelid
      WHERE c.contype = 'f' AND child.relnamespace = current_schema()::regnamespace`)) as { rows: Array<{ child: string; parent: string }> }
  ).rows;
  const ordered: string[] = [];
  const visit = (table: string, path: Set<string>): void => {
    if (ordered.includes(table) || path.has(table)) return;
    path.add(table);
    for (const { child, parent } of references) if (child === table && parent !== table && created.includes(parent)) visit(parent, path);
    ordered.push(table);
  };
  for (const table of created) visit(table, new Set());
  return ordered;
}

async function targetColumns(target: Knex, table: string): Promise<TargetColumn[]> {
  const rows = (
    (await target.raw("SELECT column_name AS name, data_type AS type, column_default AS fallback FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position", [
      table,
    ])) as { rows: Array<{ name: string; type: string; fallback: string | null }> }
  ).rows;
  return rows.map((row) => ({ name: row.name, type: row.type, serial: typeof row.fallback === "string" && row.fallback.startsWith("nextval(") }));
}

/** The target may hold only what its migrations seeded: a port never merges into live data. */
async function requireEmpty(target: Knex, tables: string[]): Promise<void> {
  for (const table of tables) {
    if (SEEDED.has(table)) continue;
    const row = (await target(table).first(target.raw("1 AS present"))) as unknown;
    if (row !== undefined) throw new PortError(`the target is not empty (table ${table} has rows): port into a new database or schema`);
  }
}

async function copyTable(reader: Knex.Transaction, writer: Knex.Transaction, table: string, columns: TargetColumn[], options: PortOptions): Promise<number> {
  if (SEEDED.has(table)) await writer(table).del();
  const names = columns.map((column) => column.name);
  const booleans = columns.filter((column) => column.type === "boolean").map((column) => column.name);
  const batchSize = Math.max(1, Math.min(options.batchSize ?? 1000, Math.floor(MAX_PARAMETERS / Math.max(1, names.length))));
  let copied = 0;
  // Keyset pagination on SQLite's rowid: each batch is an index range, whatever the table's size.
  for (let after = Number.MIN_SAFE_INTEGER; ; ) {
    const batch = (await reader(table)
      .select(reader.raw("rowid AS ??", ["__port_rowid"]), ...names)
      .whereRaw("rowid > ?", [after])
      .orderByRaw("rowid")
      .limit(batchSize)) as Array<Record<string, unknown>>;
    if (batch.length === 0) break;
    after = Number(batch[batch.length - 1]!.__port_rowid);
    const rows = batch.map((row) => {
      const copy: Record<string, unknown> = {};
      for (const name of names) copy[name] = row[name];
      // SQLite stores booleans as 0/1.
      for (const name of booleans) if (copy[name] !== null && copy[name] !== undefined) copy[name] = copy[name] === 1 || copy[name] === true;
      return copy;
    });
    await writer(table).insert(rows);
    copied += rows.length;
    options.onProgress?.(table, copied);
  }
  return copied;
}

/** Sets a serial column's sequence so that the next ID is past every copied one. */
async function advanceSequence(writer: Knex.Transaction, table: string, column: string): Promise<number> {
  const result = (await writer.raw("SELECT setval(pg_get_serial_sequence(?, ?), COALESCE((SELECT MAX(??) FROM ??), 0) + 1, false) AS next", [table, column, column, table])) as {
    rows: Array<{ next: unknown }>;
  };
  return Number(result.rows[0]?.next);
}
