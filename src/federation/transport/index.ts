// The federation transport: X-Matrix request signing and verification, server name resolution,
// the HTTPS client and the well-known delegation route.
export { createFederationClient, withQuery, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_REQUEST_TIMEOUT_MS } from "./client.js";
export type { FederationClient, FederationClientOptions, FederationRequestOptions, FederationResponse, KeyFetcher, QueryValue } from "./client.js";
export { FederationRequestError, type FederationFailure } from "./errors.js";
export { createHttpExchanger, type ConnectTarget, type HttpExchanger, type HttpExchangerOptions } from "./http-exchange.js";
export { requireFederationAuth, authorizationHeaders, type FederationAuthDeps } from "./require-auth.js";
export {
  chooseSrvRecord,
  createServerResolver,
  createWellKnownFetcher,
  parseCacheControl,
  parseServerName,
  DEFAULT_FEDERATION_PORT,
  type ResolvedServer,
  type ServerResolver,
  type ServerResolverOptions,
  type SrvRecord,
  type SrvResolver,
  type WellKnownFetcher,
  type WellKnownResult,
} from "./resolve.js";
export type { FederationSettings, FederationTlsListener, TrustedKeyServer } from "./settings.js";
export { wellKnownRoutes } from "./well-known-route.js";
export {
  formatXMatrix,
  parseAuthorization,
  requestSigningObject,
  signRequest,
  verifyRequest,
  xMatrixParams,
  type BodylessContent,
  type Credentials,
  type ReceivedRequest,
  type RequestKeyLookup,
  type SignedRequest,
  type VerifyRequestOptions,
  type XMatrixParams,
} from "./x-matrix.js";
