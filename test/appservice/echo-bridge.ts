// A small echo bridge on matrix-appservice (the application service framework under
// matrix-appservice-bridge): it receives transactions from Bobbin, answers user and alias queries
// by creating the ghost or room through the Client-Server API with its as_token, and answers pings.
// Its Client-Server requests are plain HTTP with `?user_id=` masquerading, as bridge SDKs make them.
//
// Echo rule: a message from a user who is not a ghost in a room where the bot is joined gets the
// reply "echo: <body>" from the ghost `@_echo_<sender localpart>`, registered on first use.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppService, AppServiceRegistration } from "matrix-appservice";
import { parseRegistration, type AppserviceRegistration } from "../../src/appservice/registration.js";

export interface ReceivedEvent {
  event_id: string;
  room_id: string;
  sender: string;
  type: string;
  state_key?: string;
  content: Record<string, unknown>;
}

export interface EchoBridgeOptions {
  id?: string;
  port: number;
  serverName: string;
  /** Ghost namespace prefix (default `_echo_`); the bot is `<prefix>bot`. */
  prefix?: string;
  rateLimited?: boolean;
  /** Opt in to EDUs (MSC2409's key, as the framework writes it). */
  ephemeral?: boolean;
}

/** The registration as the framework writes it (outputAsYaml), loaded through Bobbin's own loader. */
export function echoRegistration(options: EchoBridgeOptions): { file: AppServiceRegistration; loaded: AppserviceRegistration } {
  const prefix = options.prefix ?? "_echo_";
  const registration = new AppServiceRegistration(`http://127.0.0.1:${options.port}`);
  registration.setId(options.id ?? "echo");
  registration.setHomeserverToken(AppServiceRegistration.generateToken());
  registration.setAppServiceToken(AppServiceRegistration.generateToken());
  registration.setSenderLocalpart(`${prefix}bot`);
  registration.addRegexPattern("users", `@${prefix}.*`, true);
  registration.addRegexPattern("aliases", `#${prefix}.*`, true);
  if (options.rateLimited === false) registration.setRateLimited(false);
  if (options.ephemeral) registration.pushEphemeral = true;
  const dir = mkdtempSync(join(tmpdir(), "bobbin-as-"));
  const path = join(dir, "registration.yaml");
  registration.outputAsYaml(path);
  const verdict = parseRegistration(readFileSync(path, "utf8"), path);
  rmSync(dir, { recursive: true, force: true });
  if (!verdict.ok) throw new Error(verdict.problems.join("; "));
  return { file: registration, loaded: verdict.registration };
}

export class EchoBridge {
  /** Every event of every transaction, in arrival order (duplicates would show here). */
  readonly events: ReceivedEvent[] = [];
  /** EDUs of every transaction, in arrival order. */
  readonly ephemeral: Array<{ type: string; room_id?: string; content: Record<string, unknown> }> = [];
  /** Transaction IDs in arrival order, including ones the framework recognised as repeats. */
  readonly txnIds: string[] = [];
  /** Raw transaction bodies in arrival order (repeats included): the framework drops keys it does not know, like MSC4203's. */
  readonly bodies: Array<Record<string, unknown>> = [];
  readonly pings: string[] = [];
  private service: AppService | undefined;
  private readonly prefix: string;
  /** Answer pings with this status instead of 200 (tests of M_BAD_STATUS). */
  pingStatus = 200;

  constructor(
    readonly registration: AppserviceRegistration,
    private readonly homeserverUrl: string,
    private readonly options: EchoBridgeOptions,
  ) {
    this.prefix = options.prefix ?? "_echo_";
  }

  get botUserId(): string {
    return `@${this.prefix}bot:${this.options.serverName}`;
  }

  ghostOf(userId: string): string {
    return `@${this.prefix}${userId.slice(1, userId.indexOf(":"))}:${this.options.serverName}`;
  }

  /** A Client-Server API request with the as_token, as `asUser` when given. */
  async call(method: string, path: string, body?: unknown, asUser?: string): Promise<{ status: number; body: any }> {
    const url = new URL(this.homeserverUrl + path);
    if (asUser) url.searchParams.set("user_id", asUser);
    const response = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${this.registration.asToken}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  }

  /** Registers the ghost (M_USER_IN_USE: it exists already) and gives it a display name. */
  async ensureGhost(userId: string): Promise<void> {
    const localpart = userId.slice(1, userId.indexOf(":"));
    const registered = await this.call("POST", "/_matrix/client/v3/register", { type: "m.login.application_service", username: localpart, inhibit_login: true });
    if (registered.status === 200) {
      await this.call("PUT", `/_matrix/client/v3/profile/${encodeURIComponent(userId)}/displayname`, { displayname: `Echo of ${localpart.slice(this.prefix.length)}` }, userId);
    } else if (registered.body?.errcode !== "M_USER_IN_USE") {
      throw new Error(`registering ${userId}: ${registered.status} ${JSON.stringify(registered.body)}`);
    }
  }

  async start(): Promise<void> {
    const service = new AppService({ homeserverToken: this.registration.hsToken });
    service.onUserQuery = async (userId: string) => {
      // Only ghosts of this bridge exist on demand; anything else stays unknown.
      if (!userId.startsWith(`@${this.prefix}`) || userId === this.botUserId) throw new Error("not a ghost");
      await this.ensureGhost(userId);
    };
    service.onAliasQuery = async (alias: string) => {
      const created = await this.call("POST", "/_matrix/client/v3/createRoom", { room_alias_name: alias.slice(1, alias.indexOf(":")), name: `Bridged ${alias}`, preset: "public_chat" });
      if (created.status !== 200) throw new Error(`createRoom: ${created.status} ${JSON.stringify(created.body)}`);
    };
    service.on("event", (raw: Record<string, unknown>) => {
      const event = raw as unknown as ReceivedEvent;
      this.events.push(event);
      void this.handle(event);
    });
    service.on("ephemeral", (raw: Record<string, unknown>) => {
      this.ephemeral.push(raw as unknown as EchoBridge["ephemeral"][number]);
    });
    // The bridge side of Application Service API "Pinging": the framework version has no route for it.
    service.expressApp.post("/_matrix/app/v1/ping", (req, res) => {
      if (req.headers.authorization !== `Bearer ${this.registration.hsToken}`) {
        res.status(403).send({ errcode: "M_FORBIDDEN" });
        return;
      }
      this.pings.push(String((req.body as { transaction_id?: unknown })?.transaction_id));
      res.status(this.pingStatus).send({});
    });
    // Record every transaction ID the homeserver sends, before the framework's own handling.
    service.expressApp.use((req, _res, next) => {
      const match = /^\/_matrix\/app\/v1\/transactions\/([^/]+)$/.exec(req.path);
      if (match && req.method === "PUT") {
        this.txnIds.push(decodeURIComponent(match[1]!));
        this.bodies.push(req.body as Record<string, unknown>);
      }
      next();
    });
    moveLastLayerFirst(service);
    await service.listen(this.options.port, "127.0.0.1", 511);
    this.service = service;
  }

  async stop(): Promise<void> {
    const service = this.service;
    this.service = undefined;
    if (!service) return;
    // Keep-alive sockets from Bobbin would hold close() open; the framework keeps its server private.
    (service as unknown as { server?: Server }).server?.closeAllConnections();
    await service.close();
  }

  /** Messages of the transactions, in order: room ID and body. */
  messages(): Array<{ sender: string; body: unknown }> {
    return this.events.filter((e) => e.type === "m.room.message").map((e) => ({ sender: e.sender, body: e.content.body }));
  }

  private async handle(event: ReceivedEvent): Promise<void> {
    // The bot accepts every invite.
    if (event.type === "m.room.member" && event.state_key === this.botUserId && event.content.membership === "invite") {
      await this.call("POST", `/_matrix/client/v3/join/${encodeURIComponent(event.room_id)}`, {});
      return;
    }
    if (event.type !== "m.room.message" || event.sender.startsWith(`@${this.prefix}`)) return;
    const body = event.content.body;
    if (typeof body !== "string" || !body.startsWith("echo ")) return;
    const ghost = this.ghostOf(event.sender);
    await this.ensureGhost(ghost);
    await this.call("POST", `/_matrix/client/v3/join/${encodeURIComponent(event.room_id)}`, {}, ghost);
    await this.call("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(event.room_id)}/send/m.room.message/${encodeURIComponent(event.event_id)}`, { msgtype: "m.notice", body: `echo: ${body.slice(5)}` }, ghost);
  }
}

/** express appends middleware; the transaction recorder must run before the framework's routes. */
function moveLastLayerFirst(service: AppService): void {
  // express 4 keeps its stack on `_router`; its typings do not show it.
  const router = (service.expressApp as unknown as { _router: { stack: unknown[] } })._router;
  const layer = router.stack.pop();
  // After express's own query and JSON parsers (the first layers), before the routes.
  const firstRoute = router.stack.findIndex((l) => (l as { route?: unknown }).route !== undefined);
  router.stack.splice(firstRoute, 0, layer);
}
