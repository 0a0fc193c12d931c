import { describe, expect, it } from 'vitest';
import { rejectionFromBody, STATUS_BY_ERROR_TYPE } from '../../src/core/error-types.js';

describe('error types by status (spec 8.3)', () => {
  it('an MQTT rejected body maps to the REST error type of its status', () => {
    expect(rejectionFromBody({ code: 409, message: 'Version conflict' })).toEqual({
      code: 409,
      message: 'Version conflict',
      errorType: 'ConflictException',
    });
    for (const [type, status] of Object.entries(STATUS_BY_ERROR_TYPE)) {
      expect(rejectionFromBody({ code: status, message: 'm' }).errorType).toBe(type);
    }
  });

  it('an unknown status counts as an internal failure', () => {
    expect(rejectionFromBody({ code: 418, message: 'teapot' }).errorType).toBe('InternalFailureException');
  });
});
