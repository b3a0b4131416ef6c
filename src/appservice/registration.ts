// Application service registrations (Application Service API "Registration"): the YAML files an
// operator lists under `app_service_config_files`. Parsing and validation are pure: a file's text
// in, a registration or a list of problems out, each naming the key by its JSON Pointer path.
import YAML from "yaml";

/** One entry of a `users`, `aliases` or `rooms` namespace list. */
export interface Namespace {
  exclusive: boolean;
  /** The regex as written in the file. */
  regex: string;
  /** Compiled, anchored at the start like the Python `re.match` that registrations were written against. */
  pattern: RegExp;
}

export interface AppserviceRegistration {
  id: string;
  /** Where transactions and queries go; null for a send-only service (no traffic pushed). */
  url: string | null;
  asToken: string;
  hsToken: string;
  senderLocalpart: string;
  namespaces: { users: Namespace[]; aliases: Namespace[]; rooms: Namespace[] };
  /** `rate_limited`; default true. The sender is never rate limited (registration schema). */
  rateLimited: boolean;
  protocols: string[];
  /** `receive_ephemeral` (spec v1.13), or MSC2409's `de.sorunome.msc2409.push_ephemeral` / `push_ephemeral`. */
  receiveEphemeral: boolean;
  /** MSC4203's `org.matrix.msc4203.receive_to_device` (or `receive_to_device`). */
  receiveToDevice: boolean;
}

export type RegistrationVerdict = { ok: true; registration: AppserviceRegistration } | { ok: false; problems: string[] };

type Raw = Record<string, unknown>;

function isMapping(value: unknown): value is Raw {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The user ID localpart grammar new users get (appendices "User Identifiers"): the sender is registered like any user. */
const LOCALPART = /^[a-z0-9._=/+-]+$/;

function compileNamespace(value: unknown, path: string, problems: string[]): Namespace | undefined {
  if (!isMapping(value)) {
    problems.push(`${path} must be a mapping with exclusive and regex`);
    return undefined;
  }
  const { exclusive, regex } = value;
  let ok = true;
  if (typeof exclusive !== "boolean") {
    problems.push(`${path}/exclusive must be true or false`);
    ok = false;
  }
  if (typeof regex !== "string" || regex.length === 0) {
    problems.push(`${path}/regex must be a non-empty string`);
    return undefined;
  }
  let pattern: RegExp;
  try {
    pattern = new RegExp(`^(?:${regex})`, "u");
  } catch (error) {
    problems.push(`${path}/regex is not a valid regular expression: ${(error as Error).message}`);
    return undefined;
  }
  return ok ? { exclusive: exclusive as boolean, regex, pattern } : undefined;
}

function namespaceList(namespaces: Raw, kind: "users" | "aliases" | "rooms", problems: string[]): Namespace[] {
  const list = namespaces[kind];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) {
    problems.push(`/namespaces/${kind} must be a list`);
    return [];
  }
  return list.flatMap((entry, index) => compileNamespace(entry, `/namespaces/${kind}/${index}`, problems) ?? []);
}

function requiredString(raw: Raw, key: string, problems: string[]): string {
  const value = raw[key];
  if (value === undefined || value === null) problems.push(`/${key} is required`);
  else if (typeof value !== "string" || value.length === 0) problems.push(`/${key} must be a non-empty string`);
  return typeof value === "string" ? value : "";
}

function optionalBoolean(raw: Raw, keys: string[], fallback: boolean, problems: string[]): boolean {
  for (const key of keys) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== "boolean") {
      problems.push(`/${key} must be true or false`);
      return fallback;
    }
    return value;
  }
  return fallback;
}

/** Validates one registration document (already parsed from YAML). Unknown keys are ignored: bridges write their own. */
export function validateRegistration(raw: unknown): RegistrationVerdict {
  if (!isMapping(raw)) return { ok: false, problems: ["the file must be a mapping of keys to values"] };
  const problems: string[] = [];
  const id = requiredString(raw, "id", problems);
  const asToken = requiredString(raw, "as_token", problems);
  const hsToken = requiredString(raw, "hs_token", problems);
  const senderLocalpart = requiredString(raw, "sender_localpart", problems);
  if (senderLocalpart && !LOCALPART.test(senderLocalpart)) problems.push(`/sender_localpart must be a user ID localpart (a-z, 0-9, . _ = - / +), not ${JSON.stringify(senderLocalpart)}`);
  if (asToken && asToken === hsToken) problems.push("/hs_token must differ from /as_token");

  // `url` is required but may be null: a service that only sends (Registration schema).
  let url: string | null = null;
  if (!("url" in raw)) problems.push("/url is required (null for a service that receives no traffic)");
  else if (raw.url !== null) {
    if (typeof raw.url !== "string") problems.push("/url must be an http(s) URL or null");
    else {
      try {
        const parsed = new URL(raw.url);
        if (parsed.protocol !== "http:" && parsed.protocol !== "https:") problems.push(`/url must be an http(s) URL, not ${JSON.stringify(raw.url)}`);
        url = raw.url.replace(/\/+$/, "");
      } catch {
        problems.push(`/url must be an http(s) URL, not ${JSON.stringify(raw.url)}`);
      }
    }
  }

  let namespaces: AppserviceRegistration["namespaces"] = { users: [], aliases: [], rooms: [] };
  if (raw.namespaces === undefined || raw.namespaces === null) problems.push("/namespaces is required");
  else if (!isMapping(raw.namespaces)) problems.push("/namespaces must be a mapping with users, aliases and rooms");
  else {
    const ns = raw.namespaces;
    namespaces = { users: namespaceList(ns, "users", problems), aliases: namespaceList(ns, "aliases", problems), rooms: namespaceList(ns, "rooms", problems) };
  }

  const rateLimited = optionalBoolean(raw, ["rate_limited"], true, problems);
  let protocols: string[] = [];
  if (raw.protocols !== undefined && raw.protocols !== null) {
    if (!Array.isArray(raw.protocols) || raw.protocols.some((p) => typeof p !== "string")) problems.push("/protocols must be a list of strings");
    else protocols = raw.protocols as string[];
  }
  const receiveEphemeral = optionalBoolean(raw, ["receive_ephemeral", "de.sorunome.msc2409.push_ephemeral", "push_ephemeral"], false, problems);
  const receiveToDevice = optionalBoolean(raw, ["org.matrix.msc4203.receive_to_device", "receive_to_device"], false, problems);

  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, registration: { id, url, asToken, hsToken, senderLocalpart, namespaces, rateLimited, protocols, receiveEphemeral, receiveToDevice } };
}

/** Parses and validates a registration file's text; problems are prefixed with `source` (the file's path). */
export function parseRegistration(text: string, source: string): RegistrationVerdict {
  const document = YAML.parseDocument(text);
  const yamlError = document.errors[0];
  if (yamlError) return { ok: false, problems: [`${source}: not valid YAML: ${yamlError.message.split("\n")[0]?.replace(/:$/, "")}`] };
  const verdict = validateRegistration(document.toJS() ?? {});
  return verdict.ok ? verdict : { ok: false, problems: verdict.problems.map((p) => `${source}: ${p}`) };
}

/**
 * Checks a set of registrations against each other: `id` and `as_token` identify a service and
 * must be unique (Application Service API "Registration": the homeserver MUST enforce this).
 * `sources[i]` names the file of `registrations[i]`.
 */
export function checkRegistrationSet(registrations: readonly AppserviceRegistration[], sources: readonly string[]): string[] {
  const problems: string[] = [];
  const ids = new Map<string, string>();
  const tokens = new Map<string, string>();
  registrations.forEach((registration, index) => {
    const source = sources[index] ?? `registration ${index}`;
    const sameId = ids.get(registration.id);
    if (sameId !== undefined) problems.push(`${source}: /id ${JSON.stringify(registration.id)} is already used by ${sameId}`);
    else ids.set(registration.id, source);
    const sameToken = tokens.get(registration.asToken);
    if (sameToken !== undefined) problems.push(`${source}: /as_token is already used by ${sameToken}`);
    tokens.set(registration.asToken, source);
  });
  return problems;
}
