import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pino from "pino";
import { renderConfigFile, type ConfigFileOptions } from "../../src/app/config-docs.js";
import { ConfigError, describeDatabase, findConfigFile, loadConfig, parseConfig, toHomeserverSettings } from "../../src/app/config.js";
import { nativeEd25519 } from "../../src/core/ed25519.js";

const base = { source: "bobbin.yaml", baseDir: "/etc/bobbin", env: {} };

function configError(text: string, env = {}): string {
  try {
    parseConfig(text, { ...base, env });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a config error");
}

describe("defaults", () => {
  it("fills every key from a file holding only server_name, paths under data_dir next to the file", () => {
    const config = parseConfig("server_name: example.org\n", base);
    expect(config).toEqual({
      source: "bobbin.yaml",
      serverName: "example.org",
      listeners: [{ host: "127.0.0.1", port: 8008 }],
      dataDir: "/etc/bobbin/data",
      database: { engine: "sqlite", path: "/etc/bobbin/data/homeserver.db" },
      signingKeyPath: "/etc/bobbin/data/example.org.signing.key",
      signingKeyBackend: "native",
      registration: { enabled: false, allowGuests: false },
      rateLimits: {
        login: { perSecond: 0.17, burst: 3 },
        register: { perSecond: 0.17, burst: 3 },
        message: { perSecond: 0.2, burst: 10 },
        per_user: { perSecond: 100, burst: 500 },
        per_ip: { perSecond: 200, burst: 1000 },
        per_origin: { perSecond: 500, burst: 2500 },
      },
      logLevel: "info",
      maxRequestBytes: 1048576,
      maxUploadBytes: 52428800,
      federation: { allowInsecureHttp: false, trustedKeyServers: [] },
    });
  });

  it("keeps what the file sets and defaults the rest of a section", () => {
    const config = parseConfig(
      [
        "server_name: example.org:8448",
        "data_dir: /var/lib/bobbin",
        "listeners: [{port: 9000}, {host: '::', port: 9001}]",
        "registration: {enabled: true}",
        "rate_limits: {login: {burst: 7}}",
        "signing_key_path: keys/server.key",
        "signing_key_backend: noble",
        "log_level: debug",
        "limits: {max_request_bytes: 4096}",
      ].join("\n"),
      base,
    );
    expect(config.listeners).toEqual([
      { host: "127.0.0.1", port: 9000 },
      { host: "::", port: 9001 },
    ]);
    expect(config.database).toEqual({ engine: "sqlite", path: "/var/lib/bobbin/homeserver.db" });
    expect(config.signingKeyPath).toBe("/etc/bobbin/keys/server.key");
    expect(config.signingKeyBackend).toBe("noble");
    expect(config.registration).toEqual({ enabled: true, allowGuests: false });
    expect(config.rateLimits.login).toEqual({ perSecond: 0.17, burst: 7 });
    expect(config.logLevel).toBe("debug");
    expect(config.maxRequestBytes).toBe(4096);
    expect(config.maxUploadBytes).toBe(52428800);
  });

  it("reads a PostgreSQL database section", () => {
    const config = parseConfig("server_name: a.org\ndatabase: {engine: postgres, url: 'postgres://u:pw@db/bobbin', pool_size: 4, schema: bobbin}\n", base);
    expect(config.database).toEqual({ engine: "postgres", url: "postgres://u:pw@db/bobbin", poolSize: 4, schema: "bobbin" });
    expect(describeDatabase(config.database)).toBe("PostgreSQL postgres://u:***@db/bobbin");
  });

  it("the embedded default: localhost:8008, one listener on 8008, SQLite and the key under ./data", () => {
    const config = loadConfig(undefined, { cwd: "/srv/bobbin", env: {} });
    expect(config.source).toBe("embedded default");
    expect(config.serverName).toBe("localhost:8008");
    expect(config.listeners).toEqual([{ host: "127.0.0.1", port: 8008 }]);
    expect(config.database).toEqual({ engine: "sqlite", path: "/srv/bobbin/data/homeserver.db" });
    expect(config.signingKeyPath).toBe("/srv/bobbin/data/localhost:8008.signing.key");
    expect(config.registration).toEqual({ enabled: false, allowGuests: false });
  });

  it("becomes HomeserverSettings", () => {
    const config = parseConfig("server_name: example.org\nregistration: {enabled: true, allow_guests: true}\n", base);
    const signingKey = { keyId: "ed25519:a_test", signer: nativeEd25519.signerFromSeed(new Uint8Array(32)) };
    const logger = pino({ level: "silent" });
    expect(toHomeserverSettings(config, { signingKey, logger })).toEqual({
      serverName: "example.org",
      database: config.database,
      signingKey,
      listeners: [{ host: "127.0.0.1", port: 8008 }],
      registration: { enabled: true, allowGuests: true },
      rateLimits: config.rateLimits,
      maxRequestBytes: 1048576,
      federation: { allowInsecureHttp: false, trustedKeyServers: [] },
      logger,
    });
  });
});

describe("validation errors name the key", () => {
  it.each([
    ["registration: {enabled: yes}", "/registration/enabled must be boolean"],
    ["listeners: [{port: 80000}]", "/listeners/0/port must be <= 65535"],
    ["listeners: [{host: x}]", "/listeners/0/port is required"],
    ["listeners: []", "/listeners must NOT have fewer than 1 items"],
    ["data_dir: 5", "/data_dir must be string"],
    ["database: {engine: mysql}", '/database/engine must be one of sqlite, postgres, not "mysql"'],
    ["database: {engine: postgres}", "/database/url is required when /database/engine is postgres"],
    ["database: {url: 'postgres://x/y'}", "/database/url is not allowed when /database/engine is sqlite"],
    ["database: {engine: postgres, url: 'postgres://x/y', path: a.db}", "/database/path is not allowed when /database/engine is postgres"],
    ["database: {engine: postgres, url: 'mysql://x/y'}", "/database/url must be a postgres:// or postgresql:// URL"],
    ["database: {engine: postgres, url: 'postgres://x/y', pool_size: 0}", "/database/pool_size must be >= 1"],
    ["signing_key_backend: openssl", "/signing_key_backend must be one of native, noble"],
    ["rate_limits: {message: {per_second: 0}}", "/rate_limits/message/per_second must be > 0"],
    ["rate_limits: {login: {burst: 1.5}}", "/rate_limits/login/burst must be integer"],
    ["log_level: loud", "/log_level must be one of trace, debug, info, warn, error, fatal, silent"],
    ["limits: {max_request_bytes: '1M'}", "/limits/max_request_bytes must be integer"],
  ])("%s", (line, message) => {
    expect(configError(`server_name: example.org\n${line}\n`)).toContain(`config error: bobbin.yaml: ${message}`);
  });

  it("a missing or invalid server_name", () => {
    expect(configError("log_level: info\n")).toBe("config error: bobbin.yaml: /server_name is required");
    expect(configError("")).toBe("config error: bobbin.yaml: /server_name is required");
    expect(configError("server_name: 127.0.0.1\n")).toContain("/server_name must be a server name");
    expect(configError("server_name: 'exa mple.org'\n")).toContain("/server_name must be a server name");
  });

  it("reports every error at once", () => {
    const message = configError("server_name: example.org\nregistration: {enabled: 1}\nlog_level: 3\n");
    expect(message).toContain("/registration/enabled must be boolean");
    expect(message).toContain("/log_level must be one of");
    expect(message.split("\n")).toHaveLength(1);
  });

  it("rejects unknown keys, at the top and inside sections, listing the known ones", () => {
    expect(configError("server_name: example.org\nregistation: {enabled: true}\n")).toContain("/registation is not a known key (known keys here: server_name, listeners,");
    expect(configError("server_name: example.org\nregistration: {open: true}\n")).toContain("/registration/open is not a known key (known keys here: enabled, allow_guests)");
    expect(configError("server_name: example.org\nlisteners: [{port: 1, tls: true}]\n")).toContain("/listeners/0/tls is not a known key");
    expect(configError("server_name: example.org\nrate_limits: {join: {burst: 1}}\n")).toContain("/rate_limits/join is not a known key");
  });

  it("rejects text that is not a YAML mapping", () => {
    expect(configError("server_name: [unclosed\n")).toMatch(/^config error: bobbin.yaml: not valid YAML: .*line 2/);
    expect(configError("- server_name\n")).toBe("config error: bobbin.yaml: the file must be a mapping of keys to values");
    expect(configError("server_name: a.org\nserver_name: b.org\n")).toContain("not valid YAML: Map keys must be unique");
  });
});

describe("environment", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "bobbin-config-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("DATABASE_URL forces PostgreSQL with that URL, over a SQLite section", () => {
    const env = { DATABASE_URL: "postgresql://bobbin:secret@db:5432/bobbin" };
    const config = parseConfig("server_name: example.org\ndatabase: {engine: sqlite, path: my.db}\n", { ...base, env });
    expect(config.database).toEqual({ engine: "postgres", url: "postgresql://bobbin:secret@db:5432/bobbin", poolSize: 10 });
    expect(loadConfig(undefined, { cwd: dir, env }).database).toEqual({ engine: "postgres", url: env.DATABASE_URL, poolSize: 10 });
  });

  it("DATABASE_URL keeps the file's pool size and schema", () => {
    const env = { DATABASE_URL: "postgres://other/db" };
    const config = parseConfig("server_name: example.org\ndatabase: {engine: postgres, url: 'postgres://x/y', pool_size: 3, schema: s1}\n", { ...base, env });
    expect(config.database).toEqual({ engine: "postgres", url: "postgres://other/db", poolSize: 3, schema: "s1" });
  });

  it("a DATABASE_URL that is not PostgreSQL is named as the source of the error", () => {
    expect(configError("server_name: example.org\n", { DATABASE_URL: "sqlite:///x.db" })).toContain("/database/url must be a postgres:// or postgresql:// URL (it comes from DATABASE_URL)");
  });

  it("finds the file: --config, else BOBBIN_CONFIG, else ./bobbin.yaml, else none", () => {
    const env = { BOBBIN_CONFIG: "conf/from-env.yaml" };
    expect(findConfigFile("given.yaml", { cwd: dir, env })).toBe(join(dir, "given.yaml"));
    expect(findConfigFile(undefined, { cwd: dir, env })).toBe(join(dir, "conf/from-env.yaml"));
    expect(findConfigFile(undefined, { cwd: dir, env: {} })).toBeUndefined();
    writeFileSync(join(dir, "bobbin.yaml"), "server_name: local.example\n");
    expect(findConfigFile(undefined, { cwd: dir, env: {} })).toBe(join(dir, "bobbin.yaml"));
    expect(findConfigFile(undefined, { cwd: dir, env })).toBe(join(dir, "conf/from-env.yaml"));
  });

  it("loads the file BOBBIN_CONFIG names; a named file that is missing is an error", () => {
    const path = join(dir, "env.yaml");
    writeFileSync(path, "server_name: env.example\n");
    const env = { BOBBIN_CONFIG: path };
    expect(loadConfig(findConfigFile(undefined, { cwd: "/", env }), { cwd: "/", env }).serverName).toBe("env.example");
    const missing = join(dir, "missing.yaml");
    expect(() => loadConfig(missing, { cwd: dir, env: {} })).toThrow(`config error: cannot read ${missing}: no such file`);
  });
});

describe("generate-config output", () => {
  const cases: Array<[ConfigFileOptions]> = [
    [{ serverName: "example.org" }],
    [{ serverName: "localhost:8008", port: 8008 }],
    [{ serverName: "matrix.example.com:8448", port: 443, dataDir: "/var/lib/bobbin" }],
    [{ serverName: "x-y.z", port: 0, dataDir: "./my data: with 'quotes' # and hash" }],
    [{ serverName: "true", port: 65535, dataDir: "null" }],
  ];
  it.each(cases)("loads with no edits: %j", (options) => {
    const text = renderConfigFile(options);
    const config = parseConfig(text, base);
    expect(config.serverName).toBe(options.serverName);
    expect(config.listeners).toEqual([{ host: "127.0.0.1", port: options.port ?? 8008 }]);
    expect(config.dataDir).toBe(resolve("/etc/bobbin", options.dataDir ?? "./data"));
    expect(config.registration.enabled).toBe(false);
  });

  it("explains every key it writes", () => {
    const lines = renderConfigFile({ serverName: "example.org" }).split("\n");
    lines.forEach((line, index) => {
      // A key line follows a comment line (its description) or another key at a shallower level.
      if (/^\s*[a-z_]+:/.test(line) && !/^\s*- /.test(line) && !/^\s+(host|port):/.test(line)) {
        expect(lines[index - 1]).toMatch(/^\s*#/);
      }
    });
  });
});
