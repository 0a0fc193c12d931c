import type { RejectedBody, Rejection, ShadowErrorType } from './document.js';

/** HTTP status of every error type the data plane models (spec 8.3). */
export const STATUS_BY_ERROR_TYPE: Readonly<Record<ShadowErrorType, number>> = Object.freeze({
  InvalidRequestException: 400,
  UnauthorizedException: 401,
  ForbiddenException: 403,
  ResourceNotFoundException: 404,
  MethodNotAllowedException: 405,
  ConflictException: 409,
  RequestEntityTooLargeException: 413,
  UnsupportedDocumentEncodingException: 415,
  ThrottlingException: 429,
  InternalFailureException: 500,
  ServiceUnavailableException: 503,
});

const ERROR_TYPE_BY_STATUS: ReadonlyMap<number, ShadowErrorType> = new Map(
  Object.entries(STATUS_BY_ERROR_TYPE).map(([type, status]) => [status, type as ShadowErrorType]),
);

/**
 * The rejection an MQTT `rejected` body stands for. The body carries only the status number, so the REST
 * error type is the one the data plane uses for that status: an MQTT rejection then maps to the same typed
 * error as the HTTP one. An unknown status counts as `InternalFailureException`.
 */
export function rejectionFromBody(body: Pick<RejectedBody, 'code' | 'message'>): Rejection {
  return {
    code: body.code,
    message: body.message,
    errorType: ERROR_TYPE_BY_STATUS.get(body.code) ?? 'InternalFailureException',
  };
}
