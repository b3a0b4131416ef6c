// Matrix error codes (Client-Server API "Standard error response", Server-Server API, LM draft
// "Errors") and the one error type services throw. Pure code returns values instead of throwing
// for expected outcomes; MatrixError is for the service layers and for malformed input at the edge.

export const Errcode = {
  FORBIDDEN: "M_FORBIDDEN",
  UNKNOWN_TOKEN: "M_UNKNOWN_TOKEN",
  MISSING_TOKEN: "M_MISSING_TOKEN",
  BAD_JSON: "M_BAD_JSON",
  NOT_JSON: "M_NOT_JSON",
  NOT_FOUND: "M_NOT_FOUND",
  LIMIT_EXCEEDED: "M_LIMIT_EXCEEDED",
  UNRECOGNIZED: "M_UNRECOGNIZED",
  UNKNOWN: "M_UNKNOWN",
  UNAUTHORIZED: "M_UNAUTHORIZED",
  USER_DEACTIVATED: "M_USER_DEACTIVATED",
  USER_IN_USE: "M_USER_IN_USE",
  INVALID_USERNAME: "M_INVALID_USERNAME",
  ROOM_IN_USE: "M_ROOM_IN_USE",
  INVALID_ROOM_STATE: "M_INVALID_ROOM_STATE",
  THREEPID_IN_USE: "M_THREEPID_IN_USE",
  UNSUPPORTED_ROOM_VERSION: "M_UNSUPPORTED_ROOM_VERSION",
  INCOMPATIBLE_ROOM_VERSION: "M_INCOMPATIBLE_ROOM_VERSION",
  BAD_STATE: "M_BAD_STATE",
  GUEST_ACCESS_FORBIDDEN: "M_GUEST_ACCESS_FORBIDDEN",
  CAPTCHA_NEEDED: "M_CAPTCHA_NEEDED",
  MISSING_PARAM: "M_MISSING_PARAM",
  INVALID_PARAM: "M_INVALID_PARAM",
  TOO_LARGE: "M_TOO_LARGE",
  EXCLUSIVE: "M_EXCLUSIVE",
  RESOURCE_LIMIT_EXCEEDED: "M_RESOURCE_LIMIT_EXCEEDED",
  CANNOT_LEAVE_SERVER_NOTICE_ROOM: "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM",
  WEAK_PASSWORD: "M_WEAK_PASSWORD",
  UNKNOWN_POS: "M_UNKNOWN_POS",
  WRONG_ROOM_KEYS_VERSION: "M_WRONG_ROOM_KEYS_VERSION",
  USER_LOCKED: "M_USER_LOCKED",
  USER_SUSPENDED: "M_USER_SUSPENDED",
  WRONG_SERVER: "M_WRONG_SERVER",
  MISSING_PARAMS: "M_MISSING_PARAMS",
} as const;

export type Errcode = (typeof Errcode)[keyof typeof Errcode];

/** The error every Bobbin service throws; one HTTP handler turns it into `{errcode, error}`. */
export class MatrixError extends Error {
  constructor(
    readonly errcode: Errcode,
    readonly httpStatus: number,
    message: string,
    /** Extra top-level fields for the error body, e.g. `retry_after_ms`. */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "MatrixError";
  }

  toJSON(): Record<string, unknown> {
    return { errcode: this.errcode, error: this.message, ...this.extra };
  }
}
