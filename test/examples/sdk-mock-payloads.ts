/** IoT data plane response payloads as the AWS SDK hands them out, for aws-sdk-client-mock. */

/** A response blob: bytes with the SDK's string view. */
export const blob = (value: unknown) => {
  const text = JSON.stringify(value);
  return Object.assign(new TextEncoder().encode(text), { transformToString: () => text });
};

/** Metadata mirroring a state tree, as the service stores it (objects stay objects, leaves get a timestamp). */
export function metadataOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(() => ({ timestamp: 1_795_000_000 }));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, metadataOf(child)]));
  }
  return { timestamp: 1_795_000_000 };
}

/** A GetThingShadow payload with consistent metadata. */
export const getPayload = (state: { desired?: object; reported?: object }, version: number) => ({
  payload: blob({ state, metadata: metadataOf(state), version, timestamp: 1_795_000_000 }),
});

/** An UpdateThingShadow payload (the request echoed). */
export const updatePayload = (state: object, version: number) => ({
  payload: blob({ state, metadata: {}, version, timestamp: 1_795_000_000 }),
});

/** The `$metadata` and message of an SDK exception. */
export const failure = (httpStatusCode: number, message: string) => ({
  $metadata: { httpStatusCode },
  message,
});

/** The JSON request an UpdateThingShadow call sent. */
export const sentRequest = (input: object) =>
  JSON.parse(new TextDecoder().decode((input as { payload?: Uint8Array }).payload)) as {
    state: { desired?: object };
    version?: number;
  };
