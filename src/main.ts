// The `bobbin` command line: generate-config, start, register-user, migrate.
// Expected failures (bad configuration, unreadable key file, database unreachable, port in use)
// print one line to stderr and exit 1; usage mistakes print the usage and exit 2; --help exits 0.
import { mkdirSync, realpathSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { createAuthService } from "./client-api/accounts/index.js";
import { MatrixError } from "./core/errors.js";
import { isValidServerName } from "./core/identifiers.js";
import { renderConfigFile } from "./app/config-docs.js";
import { ConfigError, describeDatabase, findConfigFile, loadConfig, parseConfig, toHomeserverSettings, type BobbinConfig } from "./app/config.js";
import { startHomeserver } from "./app/homeserver.js";
import { createLogger } from "./app/logger.js";
import { loadOrCreateSigningKey, SigningKeyError } from "./app/signing-key-store.js";
import { migrateDatabase, openStorage, type DatabaseSettings } from "./storage/index.js";
import { KeyFileError, readOldVerifyKeys, rotateSigningKey } from "./federation/keys/key-rotation.js";

export const USAGE = `Usage: bobbin <command> [options]

Commands:
  generate-config --server-name NAME [--data-dir DIR] [--port N]
      Print a commented configuration file for NAME to standard output.
  start [--config FILE]
      Run the homeserver until SIGTERM or SIGINT (a second signal forces exit).
  register-user [--config FILE] --user LOCALPART --password PASSWORD [--admin]
      Create an account, whether open registration is enabled or not, and print its user ID.
  migrate [--config FILE]
      Bring the database schema up to date.
  rotate-key [--config FILE]
      Replace the signing key with a new one; the old key stays published under old_verify_keys
      (docs/signing-keys.md). Restart the server afterwards.

The configuration is read from --config FILE, else $BOBBIN_CONFIG, else ./bobbin.yaml if it
exists, else the embedded default (localhost:8008, SQLite in ./data). See docs/config.md.
`;

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  cwd: string;
}

/** A mistake in the command line: the usage is printed and the exit code is 2. */
class UsageError extends Error {}

/** An expected failure: its message is the one line printed, with no stack trace. */
class CliFailure extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;

const configOption: Options = { config: { type: "string", short: "c" } };

/** Runs one command and returns the process exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === "--help" || command === "-h" || command === "help" || rest.includes("--help") || rest.includes("-h")) {
      // Asking for help succeeds; no command at all is a usage mistake.
      if (command === undefined) {
        io.stderr(USAGE);
        return 2;
      }
      io.stdout(USAGE);
      return 0;
    }
    switch (command) {
      case "generate-config":
        return generateConfig(rest, io);
      case "start":
        return await start(rest, io);
      case "register-user":
        return await registerUser(rest, io);
      case "migrate":
        return await migrate(rest, io);
      case "rotate-key":
        return rotateKey(rest, io);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`bobbin: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    if (error instanceof ConfigError || error instanceof SigningKeyError || error instanceof KeyFileError || error instanceof CliFailure) {
      io.stderr(`bobbin: ${error.message}\n`);
      return 1;
    }
    // A bug, not an operator's mistake: the stack is what a bug report needs.
    io.stderr(`bobbin: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

function parse(args: string[], options: Options): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    // parseArgs explains unknown options, missing values and stray arguments.
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

function requireString(values: Record<string, string | boolean | undefined>, name: string): string {
  const value = values[name];
  if (typeof value !== "string" || value === "") throw new UsageError(`--${name} is required`);
  return value;
}

function readConfig(values: Record<string, string | boolean | undefined>, io: CliIo): BobbinConfig {
  const flag = typeof values.config === "string" ? values.config : undefined;
  return loadConfig(findConfigFile(flag, { cwd: io.cwd }), { cwd: io.cwd });
}

// bobbin generate-config --server-name NAME [--data-dir DIR] [--port N]
function generateConfig(args: string[], io: CliIo): number {
  const values = parse(args, { "server-name": { type: "string" }, "data-dir": { type: "string" }, port: { type: "string" } });
  const serverName = requireString(values, "server-name");
  if (!isValidServerName(serverName)) throw new UsageError(`--server-name ${JSON.stringify(serverName)} is not a server name (a host name with an optional :port)`);
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!/^[0-9]{1,5}$/.test(String(values.port)) || port > 65535) throw new UsageError(`--port ${JSON.stringify(values.port)} is not a port number`);
  }
  const dataDir = typeof values["data-dir"] === "string" ? values["data-dir"] : undefined;
  const text = renderConfigFile({ serverName, ...(dataDir !== undefined ? { dataDir } : {}), ...(port !== undefined ? { port } : {}) });
  // What is printed must load unedited; a failure here is a bug in the template.
  parseConfig(text, { source: "generated configuration", baseDir: io.cwd, env: {} });
  io.stdout(text);
  return 0;
}

// bobbin start [--config FILE]
async function start(args: string[], io: CliIo): Promise<number> {
  const values = parse(args, configOption);
  const config = readConfig(values, io);
  const logger = createLogger(config.logLevel);
  logger.info({ config: config.source, server_name: config.serverName, database: describeDatabase(config.database) }, "starting");
  const { signingKey, created } = loadOrCreateSigningKey(config.signingKeyPath, config.signingKeyBackend);
  if (created) logger.info({ path: config.signingKeyPath, key_id: signingKey.keyId }, "generated a new signing key");
  else logger.info({ path: config.signingKeyPath, key_id: signingKey.keyId }, "loaded signing key");
  prepareDatabaseDirectory(config.database);

  let homeserver;
  try {
    const oldVerifyKeys = readOldVerifyKeys(config.signingKeyPath);
    homeserver = await startHomeserver({ ...toHomeserverSettings(config, { signingKey, logger }), oldVerifyKeys });
  } catch (error) {
    throw explainStartupFailure(error, config);
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting without waiting");
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, "shutting down");
      homeserver.close().then(
        () => finish(0),
        (error: unknown) => {
          logger.error({ err: error }, "shutdown failed");
          finish(1);
        },
      );
    };
    const finish = (code: number) => {
      logger.info({ code }, "exiting");
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      resolve(code);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    // Before this line a signal kills the process outright (Node's default), with nothing to clean up yet.
    logger.info({ urls: homeserver.urls, ...(homeserver.metricsUrl ? { metrics_url: homeserver.metricsUrl } : {}) }, "ready");
  });
}

// bobbin register-user [--config FILE] --user LOCALPART --password PASSWORD [--admin]
async function registerUser(args: string[], io: CliIo): Promise<number> {
  const values = parse(args, { ...configOption, user: { type: "string", short: "u" }, password: { type: "string", short: "p" }, admin: { type: "boolean" } });
  const localpart = requireString(values, "user");
  const password = requireString(values, "password");
  const config = readConfig(values, io);
  prepareDatabaseDirectory(config.database);
  const storage = await openDatabase(() => openStorage(config.database), config);
  try {
    const auth = createAuthService({ storage, now: Date.now, serverName: config.serverName });
    const { userId } = await auth.registerUser({ localpart, password, admin: values.admin === true });
    io.stdout(`${userId}\n`);
    return 0;
  } catch (error) {
    if (error instanceof MatrixError) throw new CliFailure(`cannot register ${localpart}: ${error.message} (${error.errcode})`);
    throw error;
  } finally {
    await storage.close();
  }
}

// bobbin migrate [--config FILE]
async function migrate(args: string[], io: CliIo): Promise<number> {
  const values = parse(args, configOption);
  const config = readConfig(values, io);
  prepareDatabaseDirectory(config.database);
  const { applied } = await openDatabase(() => migrateDatabase(config.database), config);
  io.stdout(applied.length === 0 ? "database is up to date\n" : `applied ${applied.length} migration(s): ${applied.join(", ")}\n`);
  return 0;
}

/** SQLite creates the file but not its directory. */
function prepareDatabaseDirectory(database: DatabaseSettings): void {
  if (database.engine !== "sqlite") return;
  try {
    mkdirSync(dirname(database.path), { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new CliFailure(`cannot create the database directory ${dirname(database.path)}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Every failure to open or migrate the database is the operator's to fix: one line naming it. */
async function openDatabase<T>(open: () => Promise<T>, config: BobbinConfig): Promise<T> {
  try {
    return await open();
  } catch (error) {
    throw new CliFailure(`cannot open the database (${describeDatabase(config.database)}): ${messageOf(error)}`);
  }
}

// Errors that mean the database cannot be reached or opened: node's network errors, SQLite's
// result codes, PostgreSQL's connection and authentication SQLSTATEs (classes 08, 28, 3D).
const DATABASE_ERROR_CODES = /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|SQLITE_\w+|08\w{3}|28\w{3}|3D\w{3})$/;

function explainStartupFailure(error: unknown, config: BobbinConfig): Error {
  const { code, syscall, address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (syscall === "listen") {
    const reason = code === "EADDRINUSE" ? "address already in use" : code === "EACCES" ? "permission denied" : messageOf(error);
    return new CliFailure(`cannot listen on ${address ?? "?"}:${port ?? "?"}: ${reason}`);
  }
  if (typeof code === "string" && DATABASE_ERROR_CODES.test(code)) {
    return new CliFailure(`cannot open the database (${describeDatabase(config.database)}): ${messageOf(error)}`);
  }
  return error instanceof Error ? error : new Error(String(error));
}

function messageOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0] ?? message;
}

/** The process entry: `node dist/main.js <command>` or the `bobbin` bin script. */
export async function main(argv: string[]): Promise<void> {
  const code = await runCli(argv, {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    cwd: process.cwd(),
  });
  process.exitCode = code;
  // Everything is closed by now; if a stray handle keeps the loop alive, do not hang on it.
  setTimeout(() => process.exit(code), 2000).unref();
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

// bobbin rotate-key [--config FILE]
function rotateKey(args: string[], io: CliIo): number {
  const values = parse(args, configOption);
  const config = readConfig(values, io);
  const rotation = rotateSigningKey(config.signingKeyPath, Date.now(), config.signingKeyBackend);
  io.stdout(`new signing key ${rotation.newKeyId}; retired ${rotation.retiredKeyIds.join(", ")} (kept in ${config.signingKeyPath}.old)\nRestart the server to sign with it.\n`);
  return 0;
}

if (isEntryPoint()) await main(process.argv.slice(2));

