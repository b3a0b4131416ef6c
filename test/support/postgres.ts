// Finds a PostgreSQL server for the suites that run on it: DATABASE_URL if set, else the CI/dev
// default (trust auth on 127.0.0.1:5432, database `test`). Suites skip, with one line saying why,
// when nothing answers.
import pg from "pg";

const defaultUrl = "postgres://postgres@127.0.0.1:5432/test";

/** The URL of a PostgreSQL server that answers `SELECT 1`, or undefined (a warning says why). */
export async function postgresUrl(): Promise<string | undefined> {
  const url = process.env.DATABASE_URL || defaultUrl;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  // An unreachable server can also surface as an 'error' event after connect() fails.
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return url;
  } catch (error) {
    console.warn(`PostgreSQL suite skipped: no server at ${redact(url)} (${(error as Error).message})`);
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Drops a schema and everything in it (each PostgreSQL test run uses a schema of its own). */
export async function dropPostgresSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema.replace(/"/g, '""')}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "<unparseable DATABASE_URL>";
  }
}
