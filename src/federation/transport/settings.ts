// The federation settings the configuration produces (config key `federation`, docs/config.md).

export interface FederationTlsListener {
  /** PEM certificate chain for the server name (or its delegated name). */
  certificatePath: string;
  /** PEM private key of that certificate. */
  privateKeyPath: string;
  host: string;
  port: number;
}

/** A notary the key ring asks for other servers' keys, and the keys it signs with. */
export interface TrustedKeyServer {
  serverName: string;
  /** Key ID (`ed25519:...`) → unpadded base64 public key. */
  verifyKeys: Record<string, string>;
}

export interface FederationSettings {
  /** A TLS listener serving the federation API; absent when TLS ends at a reverse proxy. */
  tls?: FederationTlsListener;
  /** A PEM file of certificate authorities trusted in addition to the system's. */
  extraCaPath?: string;
  /** Outbound federation over plain HTTP: loopback tests only. */
  allowInsecureHttp: boolean;
  /** `m.server` served at `/.well-known/matrix/server`; absent means that endpoint answers 404. */
  wellKnownServer?: string;
  trustedKeyServers: TrustedKeyServer[];
  /** Outbound queue tuning (tests shorten the backoff). */
  outbound?: { backoff?: { initialMs?: number; maxMs?: number }; requestTimeoutMs?: number };
}
