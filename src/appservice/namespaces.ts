// Which users, aliases and rooms an application service claims (Application Service API
// "Registration": namespaces, exclusive namespaces). Pure: registrations and identifiers in,
// answers out.
import type { AppserviceRegistration, Namespace } from "./registration.js";

function matches(namespaces: readonly Namespace[], value: string, exclusiveOnly: boolean): boolean {
  return namespaces.some((ns) => (!exclusiveOnly || ns.exclusive) && ns.pattern.test(value));
}

/** `@<sender_localpart>:<server>`: the service's own user. */
export function senderUserIdOf(registration: AppserviceRegistration, serverName: string): string {
  return `@${registration.senderLocalpart}:${serverName}`;
}

/**
 * Whether the user is the service's sender or in one of its user namespaces. Only local users
 * count: a namespace cannot claim users of other servers (the spec's note under "Registration").
 */
export function isServiceUser(registration: AppserviceRegistration, userId: string, serverName: string, exclusiveOnly = false): boolean {
  if (!userId.endsWith(`:${serverName}`)) return false;
  if (userId === senderUserIdOf(registration, serverName)) return true;
  return matches(registration.namespaces.users, userId, exclusiveOnly);
}

export function isServiceAlias(registration: AppserviceRegistration, alias: string, exclusiveOnly = false): boolean {
  return matches(registration.namespaces.aliases, alias, exclusiveOnly);
}

export function isServiceRoom(registration: AppserviceRegistration, roomId: string): boolean {
  return matches(registration.namespaces.rooms, roomId, false);
}

/** The service holding `userId` in an exclusive namespace (or as its sender), if any. */
export function exclusiveUserOwner(registrations: readonly AppserviceRegistration[], userId: string, serverName: string): AppserviceRegistration | undefined {
  return registrations.find((r) => isServiceUser(r, userId, serverName, true));
}

export function exclusiveAliasOwner(registrations: readonly AppserviceRegistration[], alias: string): AppserviceRegistration | undefined {
  return registrations.find((r) => isServiceAlias(r, alias, true));
}

/**
 * The verdict on a registration or alias creation: free for anyone, or refused because another
 * service holds it exclusively, or (for a service) because it lies outside its own namespaces.
 * Application Service API "Server admin style permissions": both are M_EXCLUSIVE.
 */
export type ClaimVerdict = { ok: true } | { ok: false; reason: string };

export function checkUserClaim(registrations: readonly AppserviceRegistration[], userId: string, serverName: string, claimant: AppserviceRegistration | undefined): ClaimVerdict {
  if (claimant) {
    if (!isServiceUser(claimant, userId, serverName)) return { ok: false, reason: `${userId} is outside the namespaces of application service ${claimant.id}` };
    const other = registrations.find((r) => r.id !== claimant.id && isServiceUser(r, userId, serverName, true));
    return other ? { ok: false, reason: `${userId} is in an exclusive namespace of application service ${other.id}` } : { ok: true };
  }
  const owner = exclusiveUserOwner(registrations, userId, serverName);
  return owner ? { ok: false, reason: `${userId} is in an exclusive namespace of an application service` } : { ok: true };
}

export function checkAliasClaim(registrations: readonly AppserviceRegistration[], alias: string, claimant: AppserviceRegistration | undefined): ClaimVerdict {
  if (claimant) {
    if (!isServiceAlias(claimant, alias)) return { ok: false, reason: `${alias} is outside the alias namespaces of application service ${claimant.id}` };
    const other = registrations.find((r) => r.id !== claimant.id && isServiceAlias(r, alias, true));
    return other ? { ok: false, reason: `${alias} is in an exclusive namespace of application service ${other.id}` } : { ok: true };
  }
  const owner = exclusiveAliasOwner(registrations, alias);
  return owner ? { ok: false, reason: `${alias} is in an exclusive namespace of an application service` } : { ok: true };
}
