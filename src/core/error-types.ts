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

/**
 * The rejection the service answers with: `errorType`'s status, `message`, and the request's `clientToken`
 * when it could be read (no `clientToken` key otherwise). One builder for the core's rejections.
 *
 * @param errorType - the AWS error type
 * @param message - the text of the rejection
 * @param clientToken - the request's valid clientToken, if any
 * @example rejectionOf('ConflictException', 'Version conflict') // { code: 409, message: 'Version conflict', errorType: 'ConflictException' }
 */
export function rejectionOf(errorType: ShadowErrorType, message: string, clientToken?: string): Rejection {
  const rejection: Rejection = { code: STATUS_BY_ERROR_TYPE[errorType], message, errorType };
  if (clientToken !== undefined) rejection.clientToken = clientToken;
  return rejection;
}

/**
 * The rejection an MQTT `rejected` body stands for. The body carries only the status number, so the REST
 * error type is the one the data plane uses for that status: an MQTT rejection then maps to the same typed
 * error as the HTTP one. An unknown status counts as `InternalFailureException`. (Looked up per call, not
 * through a module-level map: that map would be built, and kept, in every bundle, issue #11.)
 */
export function rejectionFromBody(body: Pick<RejectedBody, 'code' | 'message'>): Rejection {
  return {
    code: body.code,
    message: body.message,
    errorType:
      (Object.keys(STATUS_BY_ERROR_TYPE) as ShadowErrorType[]).find(
        (type) => STATUS_BY_ERROR_TYPE[type] === body.code,
      ) ?? 'InternalFailureException',
  };
}
