/** Real event shapes the reference Lambdas receive in AWS, built the way API Gateway, IoT and DynamoDB send them. */
import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, AttributeValue, DynamoDBRecord } from 'aws-lambda';

/** A logger that prints nothing, for tests. */
export const silentLogger = (): Logger => new Logger({ serviceName: 'test', logLevel: 'SILENT' });

/**
 * An HTTP API (payload 2.0) event for `PUT /things/{thingName}/desired` after a Cognito JWT authorizer.
 *
 * @param thingName - the path parameter
 * @param body - the raw body string (undefined for none)
 * @param claims - the verified claims
 */
export function putDesiredEvent(
  thingName: string,
  body: string | undefined,
  claims: Record<string, string | number | boolean | string[]>,
  options: { base64?: boolean } = {},
): APIGatewayProxyEventV2WithJWTAuthorizer {
  const encoded = body !== undefined && options.base64 === true ? Buffer.from(body).toString('base64') : body;
  return {
    version: '2.0',
    routeKey: 'PUT /things/{thingName}/desired',
    rawPath: `/things/${thingName}/desired`,
    rawQueryString: '',
    headers: { 'content-type': 'application/json', authorization: 'Bearer eyJ...' },
    pathParameters: { thingName },
    isBase64Encoded: options.base64 === true,
    ...(encoded === undefined ? {} : { body: encoded }),
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: 'abc123.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: {
        method: 'PUT',
        path: `/things/${thingName}/desired`,
        protocol: 'HTTP/1.1',
        sourceIp: '203.0.113.7',
        userAgent: 'aircon-app/1.0',
      },
      requestId: 'req-1',
      routeKey: 'PUT /things/{thingName}/desired',
      stage: '$default',
      time: '29/Nov/2026:09:00:00 +0000',
      timeEpoch: Date.UTC(2026, 10, 29, 9),
      authorizer: {
        principalId: '',
        integrationLatency: 0,
        jwt: { claims, scopes: [] },
      },
    },
  };
}

/** Claims of an ID token of a user who owns the given things (Cognito custom attribute, comma-separated). */
export const ownerClaims = (...things: string[]) => ({
  sub: '11111111-2222-3333-4444-555555555555',
  'cognito:username': 'alice',
  aud: 'client-id',
  token_use: 'id',
  'custom:things': things.join(','),
});

/**
 * One DynamoDB stream record.
 *
 * @param eventName - INSERT, MODIFY or REMOVE
 * @param image - the NEW_IMAGE attributes
 * @param sequence - the sequence number (batch item identifier)
 */
export function streamRecord(
  eventName: 'INSERT' | 'MODIFY' | 'REMOVE',
  image: Record<string, AttributeValue>,
  sequence: string,
): DynamoDBRecord {
  return {
    eventID: `event-${sequence}`,
    eventName,
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    eventSourceARN: 'arn:aws:dynamodb:us-east-1:123456789012:table/Table/stream/2026-11-29T00:00:00.000',
    dynamodb: {
      ApproximateCreationDateTime: 1_795_000_000,
      Keys: { pk: image.pk ?? { S: 'x' }, sk: image.sk ?? { S: 'x' } },
      NewImage: image,
      SequenceNumber: sequence,
      SizeBytes: 200,
      StreamViewType: 'NEW_IMAGE',
    },
  };
}

/** The stream image of a reminder item. */
export function reminderImage(id: string, thingName: string, repeat = 2, intervalSeconds = 60) {
  return {
    pk: { S: `REMINDER#${id}` },
    sk: { S: 'REMINDER' },
    type: { S: 'reminder' },
    reminderId: { S: id },
    thingName: { S: thingName },
    message: { S: 'clean the filter' },
    intervalSeconds: { N: String(intervalSeconds) },
    repeat: { N: String(repeat) },
  } satisfies Record<string, AttributeValue>;
}

/**
 * An `update/documents` body as a rule with `SELECT *, topic(3) AS <name>` delivers it.
 *
 * @param name - the alias of topic(3)
 */
export function documentsRuleEvent(
  name: 'device_id' | 'thing_name',
  thingName: string,
  previous: { reported?: object; desired?: object; version: number } | null,
  current: { reported?: object; desired?: object; version: number },
) {
  const snapshot = (s: { reported?: object; desired?: object; version: number }) => ({
    state: { ...(s.desired ? { desired: s.desired } : {}), ...(s.reported ? { reported: s.reported } : {}) },
    metadata: {},
    version: s.version,
  });
  return {
    previous: previous === null ? null : snapshot(previous),
    current: snapshot(current),
    timestamp: 1_795_000_000,
    [name]: thingName,
  };
}
