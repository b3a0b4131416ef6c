// Copies a SQLite database into a new PostgreSQL database (docs/postgres.md "Moving from SQLite"):
//
//   node --import tsx scripts/port-database.ts --from <sqlite file> --to <postgres url> [--schema NAME] [--batch-size N]
//
// Stop the server first. The target gets Bobbin's schema and must hold no data yet. Afterwards
// point the configuration's `database` at PostgreSQL and start the server.
import { parseArgs } from "node:util";
import { PortError, portDatabase } from "../src/storage/knex/port-database.js";

const USAGE = "usage: node --import tsx scripts/port-database.ts --from <sqlite file> --to <postgres url> [--schema NAME] [--batch-size N]";

async function main(): Promise<number> {
  let values: { from?: string; to?: string; schema?: string; "batch-size"?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: { from: { type: "string" }, to: { type: "string" }, schema: { type: "string" }, "batch-size": { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.from || !values.to) {
    console.error(USAGE);
    return 2;
  }
  if (!/^postgres(ql)?:\/\//.test(values.to)) {
    console.error(`--to must be a postgres:// URL\n${USAGE}`);
    return 2;
  }
  const batchSize = values["batch-size"] !== undefined ? Number(values["batch-size"]) : undefined;
  if (batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize > 0)) {
    console.error(`--batch-size must be a positive integer\n${USAGE}`);
    return 2;
  }
  const started = Date.now();
  try {
    const report = await portDatabase(
      { engine: "sqlite", path: values.from },
      { engine: "postgres", url: values.to, ...(values.schema ? { schema: values.schema } : {}) },
      { ...(batchSize ? { batchSize } : {}) },
    );
    for (const { table, rows } of report.tables) console.log(`${table}: ${rows} rows`);
    const total = report.tables.reduce((sum, { rows }) => sum + rows, 0);
    console.log(`copied ${total} rows in ${report.tables.length} tables in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } catch (error) {
    // Expected refusals are one line; anything else keeps its stack for a bug report.
    console.error(error instanceof PortError ? `port-database: ${error.message}` : error);
    return 1;
  }
}

process.exitCode = await main();
