// Usernames and user IDs as the accounts area reads them (Matrix appendices "User Identifiers").
// New localparts use the restricted grammar `[a-z0-9._=/+-]`. User IDs must not differ only in
// case, and the appendix asks servers to downcase usernames when creating user IDs, so A-Z are
// folded to lower case here (on registration and on login); anything else outside the grammar
// is refused with M_INVALID_USERNAME rather than mapped.
import { randomBytes } from "node:crypto";
import { Errcode, MatrixError } from "../../core/errors.js";

const LOCALPART = /^[a-z0-9._=/+-]+$/;
/** A user ID, sigil and server name included, is at most 255 bytes. */
const MAX_USER_ID_BYTES = 255;

/** The localpart a requested username maps to, or M_INVALID_USERNAME. */
export function localpartOfUsername(username: string, serverName: string): string {
  const localpart = username.replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (!LOCALPART.test(localpart)) {
    throw new MatrixError(Errcode.INVALID_USERNAME, 400, "User ID may only contain the characters a-z, 0-9, '.', '_', '=', '-', '/' and '+'");
  }
  if (Buffer.byteLength(`@${localpart}:${serverName}`) > MAX_USER_ID_BYTES) {
    throw new MatrixError(Errcode.INVALID_USERNAME, 400, "User ID may not be longer than 255 bytes");
  }
  return localpart;
}

/**
 * The local user a login identifier names: a full user ID (`@alice:example.org`) or a bare
 * localpart, case folded. undefined when it names a user of another server or is malformed.
 */
export function localUserIdOf(identifier: string, serverName: string): string | undefined {
  let localpart = identifier;
  if (identifier.startsWith("@")) {
    const colon = identifier.indexOf(":");
    if (colon < 0 || identifier.slice(colon + 1) !== serverName) return undefined;
    localpart = identifier.slice(1, colon);
  }
  localpart = localpart.replace(/[A-Z]/g, (c) => c.toLowerCase());
  return LOCALPART.test(localpart) ? `@${localpart}:${serverName}` : undefined;
}

/** A localpart for a registration that named none (guests, bare `register` calls): 12 digits. */
export function generateLocalpart(): string {
  const digits = randomBytes(8).readBigUInt64BE() % 10n ** 12n;
  return digits.toString().padStart(12, "0");
}

/** The localpart of a user ID (everything between `@` and the first `:`). */
export function localpartOf(userId: string): string {
  const colon = userId.indexOf(":");
  return userId.slice(1, colon < 0 ? undefined : colon);
}
