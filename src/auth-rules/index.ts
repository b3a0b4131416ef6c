// Public API of the auth rules (LM draft "Authorization Rules").
export { authorize, type AuthVerdict, type SignatureInput } from "./authorize.js";
export {
  authEventKeys,
  membershipIn,
  membershipOf,
  selectAuthEvents,
  type AuthEventsSubject,
  type StateKey,
} from "./auth-events.js";
export {
  ACTION_DEFAULTS,
  CREATOR_DEFAULT_LEVEL,
  EVENTS_DEFAULT,
  STATE_DEFAULT,
  USERS_DEFAULT,
  creatorOf,
  powerLevelsFrom,
  powerLevelsFromContent,
  type PowerAction,
  type PowerLevels,
} from "./power-levels.js";
