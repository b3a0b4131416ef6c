// Opens the configured database: SQLite (embedded default) or PostgreSQL, same schema and queries
// (DESIGN.md "Storage"). Migrations are code in ./migrations/, run through a knex migration source.
import type { Knex } from "knex";
import { createKnex } from "./knex/connection.js";
import { createKnexStorage } from "./knex/storage.js";
import { createSqliteHotPath } from "./knex/sqlite-hot-path.js";
import { migrationSource } from "./migrations/index.js";
import type { Storage } from "./ports.js";

export type DatabaseSettings =
  | { engine: "sqlite"; path: string }
  /** `schema`: a PostgreSQL schema to use instead of `public` (created if missing); tests use one each. */
  | { engine: "postgres"; url: string; poolSize?: number; schema?: string };

/** Opens the database and runs pending migrations (unless `migrate: false`). */
export async function openStorage(settings: DatabaseSettings, options: { migrate?: boolean } = {}): Promise<Storage> {
  const knex = createKnex(settings);
  try {
    await prepareSchema(knex, settings);
    if (options.migrate ?? true) await runMigrations(knex);
  } catch (error) {
    await knex.destroy();
    throw error;
  }
  return createKnexStorage(knex, settings.engine, settings.engine === "sqlite" ? { hotPath: await createSqliteHotPath(knex) } : {});
}

/** Runs pending migrations only (the `bobbin migrate` command). */
export async function migrateDatabase(settings: DatabaseSettings): Promise<{ applied: string[] }> {
  const knex = createKnex(settings);
  try {
    await prepareSchema(knex, settings);
    return { applied: await runMigrations(knex) };
  } finally {
    await knex.destroy();
  }
}

/** PostgreSQL: creates the configured schema, which every connection's search_path points at. */
async function prepareSchema(knex: Knex, settings: DatabaseSettings): Promise<void> {
  if (settings.engine === "postgres" && settings.schema) await knex.raw("CREATE SCHEMA IF NOT EXISTS ??", [settings.schema]);
}

async function runMigrations(knex: Knex): Promise<string[]> {
  // knex takes a lock row (knex_migrations_lock), so two processes starting at once migrate once.
  const [, applied] = (await knex.migrate.latest({ migrationSource: migrationSource() })) as [number, string[]];
  return applied;
}
