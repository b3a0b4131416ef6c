import { describe, expect, it } from "@jest/globals";
import { ConfigError, parseConfig } from "../../../src/app/config.js";

const base = { source: "bobbin.yaml", baseDir: "/etc/bobbin", env: {} };
const KEY = "l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ";

function configError(text: string): string {
  try {
    parseConfig(text, base);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a config error");
}

describe("the federation section of the configuration", () => {
  it("defaults to HTTPS only, no listener of its own, no delegation and no notaries", () => {
    expect(parseConfig("server_name: example.org\n", base).federation).toEqual({ allowInsecureHttp: false, trustedKeyServers: [] });
  });

  it("reads every key, resolving paths against the file's directory", () => {
    const config = parseConfig(
      [
        "server_name: example.org",
        "federation:",
        "  tls: {certificate_path: tls/cert.pem, private_key_path: /keys/key.pem}",
        "  extra_ca_path: ca.pem",
        "  allow_insecure_http: true",
        "  well_known_server: matrix.example.org:443",
        `  trusted_key_servers: [{server_name: matrix.org, verify_keys: {"ed25519:auto": "${KEY}"}}]`,
      ].join("\n"),
      base,
    );
    expect(config.federation).toEqual({
      tls: { certificatePath: "/etc/bobbin/tls/cert.pem", privateKeyPath: "/keys/key.pem", host: "0.0.0.0", port: 8448 },
      extraCaPath: "/etc/bobbin/ca.pem",
      allowInsecureHttp: true,
      wellKnownServer: "matrix.example.org:443",
      trustedKeyServers: [{ serverName: "matrix.org", verifyKeys: { "ed25519:auto": KEY } }],
    });
  });

  it("refuses bad values, naming the key", () => {
    expect(configError("server_name: a.org\nfederation: {allow_insecure_http: yes}")).toMatch("/federation/allow_insecure_http must be boolean");
    expect(configError("server_name: a.org\nfederation: {well_known_server: 'not a name'}")).toMatch("/federation/well_known_server");
    expect(configError("server_name: a.org\nfederation: {tls: {certificate_path: c.pem}}")).toMatch("/federation/tls/private_key_path is required");
    expect(configError(`server_name: a.org\nfederation: {trusted_key_servers: [{server_name: m.org, verify_keys: {"rsa:1": "${KEY}"}}]}`)).toMatch(
      "/federation/trusted_key_servers/0/verify_keys",
    );
    expect(configError("server_name: a.org\nfederation: {trusted_key_servers: [{server_name: m.org, verify_keys: {'ed25519:a': short}}]}")).toMatch(
      "/federation/trusted_key_servers/0/verify_keys",
    );
    expect(configError("server_name: a.org\nfederation: {trusted_key_servers: [{server_name: m.org, verify_keys: {}}]}")).toMatch("/federation/trusted_key_servers/0/verify_keys");
    expect(configError("server_name: a.org\nfederation: {listen: 1}")).toMatch("/federation/listen is not a known key");
  });
});
