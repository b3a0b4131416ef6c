// Loading the configuration: find the file, parse YAML, validate against the schema once (with
// defaults), apply the environment overrides, resolve paths, and turn the result into the
// settings startHomeserver takes. The only module that reads process.env.
import { existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, join, resolve } from "node:path";
import { Ajv, type ErrorObject } from "ajv";
import type { Logger } from "pino";
import YAML from "yaml";
import type { RateLimitSettings } from "../client-api/accounts/rate-limit.js";
import type { Ed25519BackendName } from "../core/ed25519.js";
import { isValidServerName } from "../core/identifiers.js";
import type { SigningKey } from "../core/signing.js";
import { parseServerName } from "../federation/transport/resolve.js";
import type { FederationSettings } from "../federation/transport/settings.js";
import type { DatabaseSettings } from "../storage/index.js";
import { loadRegistrationFiles, RegistrationError } from "../appservice/load.js";
import type { AppserviceRegistration } from "../appservice/registration.js";
import { configSchema, type ConfigFile, type LogLevel } from "./config-schema.js";
import type { HomeserverSettings } from "./homeserver.js";

/** A configuration the server cannot start with; the message is one line for the operator. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(`config error: ${message}`);
    this.name = "ConfigError";
  }
}

/** The environment variables Bobbin reads (docs/config.md "Environment"). */
export interface ConfigEnvironment {
  /** Path of the configuration file when `--config` is not given. */
  BOBBIN_CONFIG?: string | undefined;
  /** A PostgreSQL URL; forces `database.engine: postgres` with this URL. */
  DATABASE_URL?: string | undefined;
}

export function readEnvironment(env: NodeJS.ProcessEnv = process.env): ConfigEnvironment {
  return { BOBBIN_CONFIG: env.BOBBIN_CONFIG, DATABASE_URL: env.DATABASE_URL };
}

/** The configuration with every default applied and every path absolute. */
export interface BobbinConfig {
  /** The file it was read from, or "embedded default". */
  readonly source: string;
  readonly serverName: string;
  readonly listeners: Array<{ host: string; port: number }>;
  readonly dataDir: string;
  readonly database: DatabaseSettings;
  readonly signingKeyPath: string;
  readonly signingKeyBackend: Ed25519BackendName;
  readonly registration: { enabled: boolean; allowGuests: boolean };
  /** Enables `/_synapse/admin/v1/register`; undefined: disabled. */
  readonly registrationSharedSecret: string | undefined;
  /** The application services registered by `app_service_config_files`, loaded and validated; absent when none. */
  readonly appservices?: AppserviceRegistration[];
  readonly rateLimits: RateLimitSettings;
  /** Reverse proxies whose X-Forwarded-For is believed (config `trusted_proxies`); absent when none. */
  readonly trustedProxies?: string[];
  readonly logLevel: LogLevel;
  readonly maxRequestBytes: number;
  /** For the media repository, which does not exist yet. */
  readonly maxUploadBytes: number;
  readonly federation: FederationSettings;
  /** The Prometheus listener; undefined when `metrics.enabled` is false. */
  readonly metrics: { host: string; port: number } | undefined;
}

/** What runs when no file is found: one listener on 8008, SQLite and the key under ./data. */
export const EMBEDDED_DEFAULT_CONFIG = { server_name: "localhost:8008" } as const;
export const EMBEDDED_DEFAULT_SOURCE = "embedded default";
/** Looked for in the working directory when neither `--config` nor BOBBIN_CONFIG is given. */
export const DEFAULT_CONFIG_FILE = "bobbin.yaml";

/**
 * The configuration file to read: `--config`, else BOBBIN_CONFIG, else `./bobbin.yaml` if it
 * exists; undefined means the embedded default. An explicitly named file that is missing is an
 * error when it is read, not a silent fallback.
 */
export function findConfigFile(flag: string | undefined, options: { cwd: string; env?: ConfigEnvironment }): string | undefined {
  const env = options.env ?? readEnvironment();
  if (flag !== undefined) return resolve(options.cwd, flag);
  if (env.BOBBIN_CONFIG) return resolve(options.cwd, env.BOBBIN_CONFIG);
  const local = join(options.cwd, DEFAULT_CONFIG_FILE);
  return existsSync(local) ? local : undefined;
}

/** Reads and checks a configuration file, or the embedded default when `path` is undefined. */
export function loadConfig(path: string | undefined, options: { cwd: string; env?: ConfigEnvironment }): BobbinConfig {
  const env = options.env ?? readEnvironment();
  if (path === undefined) {
    return checkConfig(structuredClone(EMBEDDED_DEFAULT_CONFIG), { source: EMBEDDED_DEFAULT_SOURCE, baseDir: options.cwd, env });
  }
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message;
    throw new ConfigError(`cannot read ${path}: ${reason}`);
  }
  return parseConfig(text, { source: path, baseDir: dirname(path), env });
}

/** Parses YAML text and checks it; relative paths in it are resolved against `baseDir`. */
export function parseConfig(text: string, options: { source: string; baseDir: string; env?: ConfigEnvironment }): BobbinConfig {
  const document = YAML.parseDocument(text);
  const yamlError = document.errors[0];
  // The message's first line names the line and column; the rest is a source excerpt.
  if (yamlError) throw new ConfigError(`${options.source}: not valid YAML: ${yamlError.message.split("\n")[0]?.replace(/:$/, "")}`);
  // An empty file is an empty mapping: it then fails only for the missing server_name.
  const raw: unknown = document.toJS() ?? {};
  return checkConfig(raw, { ...options, env: options.env ?? readEnvironment() });
}

function checkConfig(raw: unknown, options: { source: string; baseDir: string; env: ConfigEnvironment }): BobbinConfig {
  const overridden = applyEnvironment(raw, options.env);
  const validate = compileValidator();
  if (!validate(overridden)) {
    const messages = [...new Set((validate.errors ?? []).flatMap((error) => describeError(error, overridden, options.env)))];
    throw new ConfigError(`${options.source}: ${messages.join("; ")}`);
  }
  return resolveConfig(overridden, options.baseDir, options.source);
}

/** DATABASE_URL replaces the database engine and URL (a path for SQLite no longer applies). */
function applyEnvironment(raw: unknown, env: ConfigEnvironment): unknown {
  if (!env.DATABASE_URL || !isPlainObject(raw)) return raw;
  const database = isPlainObject(raw.database) ? { ...raw.database } : {};
  delete database.path;
  return { ...raw, database: { ...database, engine: "postgres", url: env.DATABASE_URL } };
}

function compileValidator() {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strictTypes: false, strictRequired: false });
  ajv.addKeyword({ keyword: "defaultText", schemaType: "string" });
  ajv.addFormat("server-name", { type: "string", validate: isValidServerName });
  // `m.server` may also be an IP literal (Matrix "Resolving server names" step 3.1).
  ajv.addFormat("delegated-server-name", { type: "string", validate: (name: string) => parseServerName(name) !== undefined });
  ajv.addFormat("proxy-address", { type: "string", validate: isProxyAddress });
  // The schema and ConfigFile are kept in step by hand; test/app/config.test.ts checks the defaults.
  return ajv.compile<ConfigFile>(configSchema);
}

/** One operator-readable line per schema error, naming the key by its JSON Pointer path. */
function describeError(error: ErrorObject, data: unknown, env: ConfigEnvironment): string[] {
  const path = error.instancePath;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    // The failing branch's own errors say what is wrong; these only repeat that a branch failed.
    case "if":
      return [];
    case "additionalProperties": {
      const known = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return [`${path}/${String(params.additionalProperty)} is not a known key (known keys here: ${known.join(", ")})`];
    }
    case "required": {
      const key = `${path}/${String(params.missingProperty)}`;
      if (key === "/database/url") return [`${key} is required when /database/engine is postgres (or set DATABASE_URL)`];
      return [`${key} is required`];
    }
    case "not": {
      const engine = isPlainObject(data) && isPlainObject(data.database) ? String(data.database.engine ?? "sqlite") : "sqlite";
      return [`${path} is not allowed when /database/engine is ${engine}`];
    }
    case "enum":
      return [`${path} must be one of ${(params.allowedValues as string[]).join(", ")}, not ${JSON.stringify(error.data)}`];
    case "format":
      if (path.startsWith("/trusted_proxies/")) return [`${path} must be an IP address, a CIDR subnet (10.0.0.0/8) or loopback, linklocal or uniquelocal, not ${JSON.stringify(error.data)}`];
      return [`${path} must be a server name (a host name with an optional :port, e.g. example.org), not ${JSON.stringify(error.data)}`];
    case "pattern":
      if (path === "/database/url") {
        const from = env.DATABASE_URL ? " (it comes from DATABASE_URL)" : "";
        return [`${path} must be a postgres:// or postgresql:// URL${from}`];
      }
      return [`${path} ${error.message ?? "is not valid"}`];
    case "type":
      if (path === "") return ["the file must be a mapping of keys to values"];
      return [`${path} ${error.message ?? "is not valid"}`];
    default:
      return [`${path || "/"} ${error.message ?? "is not valid"}`];
  }
}

function resolveConfig(file: ConfigFile, baseDir: string, source: string): BobbinConfig {
  const dataDir = resolve(baseDir, file.data_dir);
  const database: DatabaseSettings =
    file.database.engine === "postgres"
      ? {
          engine: "postgres",
          // The schema requires url for postgres.
          url: file.database.url as string,
          poolSize: file.database.pool_size ?? 10,
          ...(file.database.schema !== undefined ? { schema: file.database.schema } : {}),
        }
      : { engine: "sqlite", path: file.database.path !== undefined ? resolve(baseDir, file.database.path) : join(dataDir, "homeserver.db") };
  const signingKeyPath = file.signing_key_path !== undefined ? resolve(baseDir, file.signing_key_path) : join(dataDir, `${file.server_name}.signing.key`);
  const rateLimits: RateLimitSettings = {};
  for (const [bucket, limit] of Object.entries(file.rate_limits)) rateLimits[bucket] = { perSecond: limit.per_second, burst: limit.burst };
  return {
    source,
    serverName: file.server_name,
    listeners: file.listeners.map((listener) => ({ host: listener.host, port: listener.port })),
    dataDir,
    database,
    signingKeyPath,
    signingKeyBackend: file.signing_key_backend,
    registration: { enabled: file.registration.enabled, allowGuests: file.registration.allow_guests },
    registrationSharedSecret: file.registration_shared_secret,
    ...(file.app_service_config_files.length > 0 ? { appservices: loadAppservices(file.app_service_config_files.map((path) => resolve(baseDir, path)), source) } : {}),
    rateLimits,
    ...(file.trusted_proxies.length > 0 ? { trustedProxies: [...file.trusted_proxies] } : {}),
    logLevel: file.log_level,
    maxRequestBytes: file.limits.max_request_bytes,
    maxUploadBytes: file.limits.max_upload_bytes,
    federation: resolveFederation(file.federation, baseDir),
    metrics: file.metrics.enabled ? { host: file.metrics.host, port: file.metrics.port } : undefined,
  };
}

/** Registration files are part of the configuration: a problem in one is a ConfigError naming file and key. */
function loadAppservices(paths: string[], source: string): AppserviceRegistration[] {
  try {
    return loadRegistrationFiles(paths);
  } catch (error) {
    if (error instanceof RegistrationError) throw new ConfigError(`${source}: app_service_config_files: ${error.problems.join("; ")}`);
    throw error;
  }
}

function resolveFederation(federation: ConfigFile["federation"], baseDir: string): FederationSettings {
  const { tls } = federation;
  return {
    ...(tls !== undefined
      ? { tls: { certificatePath: resolve(baseDir, tls.certificate_path), privateKeyPath: resolve(baseDir, tls.private_key_path), host: tls.host, port: tls.port } }
      : {}),
    ...(federation.extra_ca_path !== undefined ? { extraCaPath: resolve(baseDir, federation.extra_ca_path) } : {}),
    allowInsecureHttp: federation.allow_insecure_http,
    ...(federation.well_known_server !== undefined ? { wellKnownServer: federation.well_known_server } : {}),
    trustedKeyServers: federation.trusted_key_servers.map((notary) => ({ serverName: notary.server_name, verifyKeys: { ...notary.verify_keys } })),
  };
}

/** The settings startHomeserver takes, from a checked configuration and what start-up made of it. */
export function toHomeserverSettings(config: BobbinConfig, runtime: { signingKey: SigningKey; logger: Logger }): HomeserverSettings {
  return {
    serverName: config.serverName,
    database: config.database,
    signingKey: runtime.signingKey,
    listeners: config.listeners,
    registration: config.registration,
    ...(config.appservices ? { appservices: config.appservices } : {}),
    ...(config.registrationSharedSecret !== undefined ? { registrationSharedSecret: config.registrationSharedSecret } : {}),
    rateLimits: config.rateLimits,
    ...(config.trustedProxies ? { trustedProxies: config.trustedProxies } : {}),
    maxRequestBytes: config.maxRequestBytes,
    federation: config.federation,
    ...(config.metrics ? { metrics: config.metrics } : {}),
    logger: runtime.logger,
  };
}

/** A PostgreSQL URL with its password hidden, or the SQLite path: safe for logs and error lines. */
export function describeDatabase(database: DatabaseSettings): string {
  if (database.engine === "sqlite") return `SQLite ${database.path}`;
  try {
    const url = new URL(database.url);
    if (url.password) url.password = "***";
    return `PostgreSQL ${url.toString()}`;
  } catch {
    return "PostgreSQL (unparsable URL)";
  }
}

/** What `trusted_proxies` accepts (proxy-addr's syntax, which express's `trust proxy` shares): an address, a subnet (`/bits` or `/netmask`), or a named range. */
function isProxyAddress(entry: string): boolean {
  if (entry === "loopback" || entry === "linklocal" || entry === "uniquelocal") return true;
  const [address, range, ...rest] = entry.split("/");
  const family = isIP(address ?? "");
  if (family === 0 || rest.length > 0) return false;
  if (range === undefined) return true;
  if (/^[0-9]{1,3}$/.test(range)) return Number(range) <= (family === 4 ? 32 : 128);
  return family === 4 && isIP(range) === 4;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
