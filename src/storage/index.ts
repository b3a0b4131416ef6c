// Opens the configured database. STUB: being implemented (issue 3).
import type { Storage } from "./ports.js";

export type DatabaseSettings =
  | { engine: "sqlite"; path: string }
  /** `schema`: a PostgreSQL schema to use instead of `public` (created if missing); tests use one each. */
  | { engine: "postgres"; url: string; poolSize?: number; schema?: string };

/** Opens the database and runs pending migrations (unless `migrate: false`). */
export async function openStorage(_settings: DatabaseSettings, _options?: { migrate?: boolean }): Promise<Storage> {
  throw new Error("not implemented");
}

/** Runs pending migrations only (the `bobbin migrate` command). */
export async function migrateDatabase(_settings: DatabaseSettings): Promise<{ applied: string[] }> {
  throw new Error("not implemented");
}
