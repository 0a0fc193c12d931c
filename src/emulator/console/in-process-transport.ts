/**
 * A {@link ShadowTransport} that hands requests straight to the local service's engine, as HTTP requests of the
 * console's own client id: the console's edits go through the same conflict-resolving engine users get, with the
 * service's own answers (409, 429, validation texts), without a network hop or a signature.
 */
import type {
  DeleteAcceptedBody,
  GetAcceptedBody,
  ShadowTarget,
  UpdateAcceptedBody,
} from '../../core/document.js';
import { errorFromRejection, targetContext } from '../../errors.js';
import type { ShadowTransport } from '../../transports/transport.js';
import type { ShadowEngineApi, ShadowResult } from '../engine-api.js';

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

function contextOf(target: ShadowTarget, expectedVersion?: number) {
  return { ...targetContext(target), ...(expectedVersion === undefined ? {} : { expectedVersion }) };
}

/**
 * Creates the transport.
 *
 * @param engine - the service's engine (or the fronts' view of it)
 * @param clientId - the client id the requests carry, so observers can tell them apart from other HTTP writes
 */
export function inProcessTransport(engine: ShadowEngineApi, clientId: string): ShadowTransport {
  const send = (
    operation: 'get' | 'update' | 'delete',
    target: ShadowTarget,
    payload: Uint8Array,
  ): Promise<ShadowResult> => engine.handle({ operation, target, payload, origin: 'http', clientId });
  return {
    async get(target) {
      const result = await send('get', target, EMPTY);
      if (result.ok) return result.body as GetAcceptedBody;
      if (result.rejection.code === 404) return undefined;
      throw errorFromRejection(result.rejection, contextOf(target));
    },
    async update(target, request) {
      const result = await send('update', target, encoder.encode(JSON.stringify(request)));
      if (result.ok) return result.body as UpdateAcceptedBody;
      throw errorFromRejection(result.rejection, contextOf(target, request.version));
    },
    async delete(target) {
      const result = await send('delete', target, EMPTY);
      if (result.ok) return result.body as DeleteAcceptedBody;
      throw errorFromRejection(result.rejection, contextOf(target));
    },
  };
}
