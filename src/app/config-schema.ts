// The configuration file's JSON Schema: the single source of truth for what a key means, its type
// and its default. config.ts validates against it, `bobbin generate-config` writes its comments
// from it and docs/config.md is generated from it (config-docs.ts), so a key is added here only.
//
// Keys are snake_case like Synapse's homeserver.yaml. `default` is applied by the validator;
// `defaultText` (an annotation, not validated) describes defaults computed from other keys.

/** The file after validation and defaults, before paths are resolved (config.ts does that). */
export interface ConfigFile {
  server_name: string;
  listeners: Array<{ host: string; port: number }>;
  data_dir: string;
  database: {
    engine: "sqlite" | "postgres";
    path?: string;
    url?: string;
    pool_size?: number;
    schema?: string;
  };
  signing_key_path?: string;
  signing_key_backend: "native" | "noble";
  registration: { enabled: boolean; allow_guests: boolean };
  registration_shared_secret?: string;
  app_service_config_files: string[];
  rate_limits: Record<RateLimitBucket, { per_second: number; burst: number }>;
  trusted_proxies: string[];
  log_level: LogLevel;
  limits: { max_request_bytes: number; max_upload_bytes: number };
  federation: {
    tls?: { certificate_path: string; private_key_path: string; host: string; port: number };
    extra_ca_path?: string;
    allow_insecure_http: boolean;
    well_known_server?: string;
    trusted_key_servers: Array<{ server_name: string; verify_keys: Record<string, string> }>;
  };
  metrics: { enabled: boolean; host: string; port: number };
}

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The rate-limited actions: three Client-Server API actions (per user or per client address), then
 * every Client-Server request per user and per client address, and every Federation API request per
 * origin server.
 */
export const RATE_LIMIT_BUCKETS = ["login", "register", "message", "per_user", "per_ip", "per_origin"] as const;
export type RateLimitBucket = (typeof RATE_LIMIT_BUCKETS)[number];

/** A node of the schema as this project writes it (a subset of JSON Schema draft-07). */
export interface SchemaNode {
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  description?: string;
  default?: unknown;
  defaultText?: string;
  /** Example values; generate-config shows the first, commented out, for keys it leaves unset. */
  examples?: unknown[];
  properties?: Record<string, SchemaNode>;
  required?: string[];
  /** false, or the schema every property not listed in `properties` must match. */
  additionalProperties?: boolean | SchemaNode;
  propertyNames?: SchemaNode;
  items?: SchemaNode;
  enum?: readonly string[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
  minProperties?: number;
  minLength?: number;
  pattern?: string;
  format?: string;
  allOf?: SchemaNode[];
  if?: SchemaNode;
  then?: SchemaNode;
  const?: unknown;
  not?: SchemaNode;
}

/** Fails whatever the value: marks a key that is not allowed in a branch of `if`/`then`. */
const forbidden: SchemaNode = { not: {} };

// Synapse's defaults for rc_login, rc_registration and rc_message. The request limits are far above
// what a client or a server does in normal use (a busy client syncs and sends a few times a second;
// a peer has one transaction in flight at a time): they stop floods, not users.
const rateLimitDefaults: Record<RateLimitBucket, { per_second: number; burst: number; what: string }> = {
  login: { per_second: 0.17, burst: 3, what: "Login attempts." },
  register: { per_second: 0.17, burst: 3, what: "Registration attempts." },
  message: { per_second: 0.2, burst: 10, what: "Messages and other room events sent." },
  per_user: { per_second: 100, burst: 500, what: "Every authenticated Client-Server API request, per user." },
  per_ip: {
    per_second: 200,
    burst: 1000,
    what: "Every Client-Server API request, per client IP address (the `X-Forwarded-For` address only from `trusted_proxies`). Several users behind one NAT share it.",
  },
  per_origin: { per_second: 500, burst: 2500, what: "Every authenticated Federation API request, per origin server." },
};

function rateLimitBucket(bucket: RateLimitBucket): SchemaNode {
  const { per_second, burst, what } = rateLimitDefaults[bucket];
  return {
    type: "object",
    description: what,
    additionalProperties: false,
    default: {},
    properties: {
      per_second: { type: "number", exclusiveMinimum: 0, default: per_second, description: "Sustained rate: requests allowed per second once the burst is used up." },
      burst: { type: "integer", minimum: 1, default: burst, description: "Requests allowed at once before the sustained rate applies." },
    },
  };
}

export const configSchema: SchemaNode = {
  type: "object",
  additionalProperties: false,
  required: ["server_name"],
  properties: {
    server_name: {
      type: "string",
      format: "server-name",
      description:
        "The server's name: the part after the colon in user IDs (`@alice:example.org`) and room IDs. " +
        "A host name with an optional port. It cannot be changed once users and rooms exist.",
    },
    listeners: {
      type: "array",
      minItems: 1,
      default: [{ host: "127.0.0.1", port: 8008 }],
      description:
        "Where Bobbin listens for HTTP. Every listener serves both the Client-Server API and the Federation API. " +
        "Production federation needs HTTPS: put a reverse proxy in front (the default host, 127.0.0.1, suits that), " +
        "or set host to 0.0.0.0 to listen on every interface.",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["port"],
        properties: {
          host: { type: "string", minLength: 1, default: "127.0.0.1", description: "Address to bind: an IPv4 or IPv6 address or a host name." },
          port: { type: "integer", minimum: 0, maximum: 65535, description: "TCP port. 0 picks a free port (for tests)." },
        },
      },
    },
    data_dir: {
      type: "string",
      minLength: 1,
      default: "./data",
      description:
        "Directory for the server's files: the SQLite database and the signing key unless their paths are set. " +
        "Created on first start. A relative path is relative to the directory of the configuration file.",
    },
    database: {
      type: "object",
      additionalProperties: false,
      default: {},
      description: "The database. SQLite needs nothing else; PostgreSQL suits larger servers and several processes.",
      properties: {
        engine: { type: "string", enum: ["sqlite", "postgres"], default: "sqlite", description: "`sqlite` or `postgres`. The `DATABASE_URL` environment variable forces `postgres`." },
        path: { type: "string", minLength: 1, examples: ["/var/lib/bobbin/homeserver.db"], defaultText: "`<data_dir>/homeserver.db`", description: "SQLite only: the database file. Relative to the configuration file's directory." },
        url: {
          type: "string",
          pattern: "^postgres(ql)?://",
          examples: ["postgres://bobbin:secret@localhost:5432/bobbin"],
          defaultText: "none (required for `postgres`)",
          description: "PostgreSQL only: connection URL, `postgres://user:password@host:5432/database`. Overridden by `DATABASE_URL`.",
        },
        pool_size: { type: "integer", minimum: 1, examples: [10], defaultText: "`10`", description: "PostgreSQL only: most connections the server opens." },
        schema: {
          type: "string",
          pattern: "^[a-z_][a-z0-9_]*$",
          examples: ["bobbin"],
          defaultText: "`public`",
          description: "PostgreSQL only: the schema holding Bobbin's tables (created if missing).",
        },
      },
      allOf: [
        // `url` without `engine: postgres` is almost always a forgotten engine: say so rather than ignore it.
        {
          if: { properties: { engine: { const: "sqlite" } } },
          then: { properties: { url: forbidden, pool_size: forbidden, schema: forbidden } },
        },
        { if: { properties: { engine: { const: "postgres" } }, required: ["engine"] }, then: { required: ["url"], properties: { path: forbidden } } },
      ],
    },
    signing_key_path: {
      type: "string",
      minLength: 1,
      defaultText: "`<data_dir>/<server_name>.signing.key`",
      examples: ["/etc/bobbin/signing.key"],
      description:
        "The server's Ed25519 signing key, in Synapse's format (so keys move between Synapse and Bobbin). " +
        "Generated on first start if the file does not exist. Keep it secret and back it up: " +
        "other servers remember it. Relative to the configuration file's directory.",
    },
    signing_key_backend: {
      type: "string",
      enum: ["native", "noble"],
      default: "native",
      description: "Ed25519 implementation: `native` (native code, fast: libsodium signs, OpenSSL verifies) or `noble` (@noble/ed25519, pure JavaScript).",
    },
    registration: {
      type: "object",
      additionalProperties: false,
      default: {},
      description: "Who may create accounts through the Client-Server API. `bobbin register-user` works either way.",
      properties: {
        enabled: { type: "boolean", default: false, description: "Open registration: anyone who can reach the server may create an account." },
        allow_guests: { type: "boolean", default: false, description: "Allow guest accounts (`kind=guest`)." },
      },
    },
    registration_shared_secret: {
      type: "string",
      minLength: 1,
      examples: ["a long random string"],
      description:
        "Enables shared-secret registration (`/_synapse/admin/v1/register`, as Synapse defines it, so its `register_new_matrix_user` " +
        "and other scripts work): whoever knows this secret can create accounts, admins included, even with registration closed. " +
        "Unset: the endpoint is disabled.",
    },
    app_service_config_files: {
      type: "array",
      default: [],
      examples: [["/etc/bobbin/appservices/irc.yaml"]],
      description:
        "Registration files of application services (bridges, bots), in the Application Service API's YAML format: `id`, `url`, " +
        "`as_token`, `hs_token`, `sender_localpart`, `namespaces`, `rate_limited`, `protocols`. A relative path is relative to the " +
        "directory of the configuration file. A file that is missing or invalid stops start-up with the file and key named (docs/bridges.md).",
      items: { type: "string", minLength: 1 },
    },
    rate_limits: {
      type: "object",
      additionalProperties: false,
      default: {},
      description:
        "Token-bucket rate limits per action. Requests over the limit get 429 `M_LIMIT_EXCEEDED` with `retry_after_ms`. " +
        "Application services registered with `rate_limited: false` are exempt from every Client-Server limit (docs/rate-limits.md).",
      properties: Object.fromEntries(RATE_LIMIT_BUCKETS.map((bucket) => [bucket, rateLimitBucket(bucket)])),
    },
    trusted_proxies: {
      type: "array",
      default: [],
      examples: [["127.0.0.1", "::1"]],
      description:
        "Reverse proxies whose `X-Forwarded-For` header names the client: IP addresses, CIDR subnets (`10.0.0.0/8`) or `loopback`. " +
        "Requests from these addresses count against the client address the proxy reports (rate limits, devices' last seen address). " +
        "Empty: the header is ignored and the address of the connection is the client's. Set it when Bobbin is behind nginx or a load balancer.",
      items: { type: "string", format: "proxy-address" },
    },
    log_level: {
      type: "string",
      enum: LOG_LEVELS,
      default: "info",
      description: "Least severe log level written. Logs are JSON lines on standard output.",
    },
    limits: {
      type: "object",
      additionalProperties: false,
      default: {},
      description: "Size limits.",
      properties: {
        max_request_bytes: {
          type: "integer",
          minimum: 1024,
          default: 1048576,
          description: "Largest JSON request body accepted, in bytes; larger requests get 413 `M_TOO_LARGE`.",
        },
        max_upload_bytes: {
          type: "integer",
          minimum: 1024,
          default: 52428800,
          description: "Largest media upload, in bytes. Reserved for the media repository, which is not implemented yet.",
        },
      },
    },
    federation: {
      type: "object",
      additionalProperties: false,
      default: {},
      description:
        "Server-to-server federation: how other servers reach this one and how this one reaches them. " +
        "Outbound requests are HTTPS with the certificate checked for the name that server name resolution chose.",
      examples: [{ tls: { certificate_path: "/etc/bobbin/tls/fullchain.pem", private_key_path: "/etc/bobbin/tls/privkey.pem" } }],
      properties: {
        tls: {
          type: "object",
          additionalProperties: false,
          required: ["certificate_path", "private_key_path"],
          description:
            "A TLS listener for the Federation API, for servers not behind a reverse proxy that ends TLS. " +
            "The certificate must be valid for the server name, or for the name `well_known_server` delegates to.",
          properties: {
            certificate_path: { type: "string", minLength: 1, description: "PEM certificate chain (leaf first). Relative to the configuration file's directory." },
            private_key_path: { type: "string", minLength: 1, description: "PEM private key of the certificate. Relative to the configuration file's directory." },
            host: { type: "string", minLength: 1, default: "0.0.0.0", description: "Address the TLS listener binds." },
            port: { type: "integer", minimum: 0, maximum: 65535, default: 8448, description: "TCP port of the TLS listener; 8448 is where other servers look when nothing delegates elsewhere." },
          },
        },
        extra_ca_path: {
          type: "string",
          minLength: 1,
          examples: ["/etc/bobbin/private-ca.pem"],
          defaultText: "none (the system's certificate authorities only)",
          description:
            "A PEM file of certificate authorities trusted for outbound federation in addition to the system's: " +
            "a private federation's CA, or a test CA. Relative to the configuration file's directory.",
        },
        allow_insecure_http: {
          type: "boolean",
          default: false,
          description:
            "Send outbound federation requests over plain HTTP instead of HTTPS. Only for test servers talking to each other on loopback: " +
            "requests and server keys travel unauthenticated and other servers cannot be reached. Never enable it on a server on the internet.",
        },
        well_known_server: {
          type: "string",
          format: "delegated-server-name",
          examples: ["matrix.example.org:443"],
          defaultText: "none (the endpoint answers 404)",
          description:
            "Served as `m.server` at `/.well-known/matrix/server`, telling other servers to connect to this host and port instead of " +
            "`<server_name>:8448`. Only useful when this server also answers `https://<server_name>/` (port 443) for the server name.",
        },
        trusted_key_servers: {
          type: "array",
          default: [],
          description:
            "Notary servers asked for another server's signing keys when that server cannot be asked directly, " +
            "with the keys they sign their answers with. Empty: keys are only fetched from each server itself.",
          items: {
            type: "object",
            additionalProperties: false,
            required: ["server_name", "verify_keys"],
            properties: {
              server_name: { type: "string", format: "server-name", description: "The notary's server name." },
              verify_keys: {
                type: "object",
                minProperties: 1,
                propertyNames: { pattern: "^ed25519:[A-Za-z0-9_]+$" },
                additionalProperties: { type: "string", pattern: "^[A-Za-z0-9+/]{43}=?$" },
                description: "The notary's keys: key ID (`ed25519:...`) to unpadded base64 public key.",
              },
            },
          },
        },
      },
    },
    metrics: {
      type: "object",
      additionalProperties: false,
      default: {},
      description:
        "Prometheus metrics, served at `/metrics` on a listener of their own so they can stay private while the APIs are public: " +
        "HTTP requests and durations per route, events persisted, outbound federation queues per destination, syncs in progress, " +
        "the database connection pool, MLS commits accepted and rejected, and the process's CPU, memory and event loop.",
      examples: [{ enabled: true, host: "127.0.0.1", port: 9090 }],
      properties: {
        enabled: { type: "boolean", default: false, description: "Serve the metrics." },
        host: { type: "string", minLength: 1, default: "127.0.0.1", description: "Address the metrics listener binds. Anyone who can reach it reads the metrics: keep it private." },
        port: { type: "integer", minimum: 0, maximum: 65535, default: 9090, description: "TCP port of the metrics listener." },
      },
    },
  },
};
