// The error the federation HTTP client throws when it gets no usable answer from a server. An HTTP
// error status is an answer, not this error: callers get it as `{status, json}`.

export type FederationFailure =
  /** The server name is not one we can contact (bad grammar, nothing to connect to). */
  | "resolve"
  /** TCP connection refused, reset or unreachable. */
  | "connect"
  /** TLS handshake failed, including a certificate not valid for the name. */
  | "tls"
  | "timeout"
  /** The response body exceeded the size cap. */
  | "too_large"
  /** A 2xx response whose body is not JSON, or a broken HTTP exchange. */
  | "bad_response";

export class FederationRequestError extends Error {
  constructor(
    readonly destination: string,
    readonly failure: FederationFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${destination}: ${message}`, options);
    this.name = "FederationRequestError";
  }
}
