// `GET /v3/capabilities` (Client-Server API "Capabilities negotiation").
import type { Router } from "../../../app/http/router.js";
import { DEFAULT_ROOM_VERSION, knownRoomVersions } from "../../../core/room-versions.js";
import type { TokenAuthenticator } from "../../http.js";
import { requireAuth } from "../../http.js";

export function mountCapabilitiesRoutes(router: Router, authenticator: TokenAuthenticator): void {
  // GET /v3/capabilities
  router.get("/v3/capabilities", requireAuth(authenticator), (_req, res) => {
    const available = Object.fromEntries(knownRoomVersions().map((v) => [v.id, v.stability]));
    res.json({
      capabilities: {
        "m.change_password": { enabled: true },
        "m.room_versions": { default: DEFAULT_ROOM_VERSION, available },
        "m.set_displayname": { enabled: true },
        "m.set_avatar_url": { enabled: true },
        "m.3pid_changes": { enabled: false },
        "m.get_login_token": { enabled: false },
      },
    });
  });
}
