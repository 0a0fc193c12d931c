/**
 * Where illegal-state alerts are recorded, idempotently: recording the same (device, key) twice keeps the
 * first record. In AWS a DynamoDB conditional put; locally a map in memory.
 */
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';

/** One alert. */
export interface AlertRecord {
  /** The thing whose shadow reported the illegal state. */
  deviceId: string;
  /** What makes the alert unique for its device, for example `v42` (the shadow version). */
  alertKey: string;
  /** The shadow version, when known. */
  version?: number;
  /** The reported values that were illegal. */
  reported: Record<string, unknown>;
  /** When the service saw it, epoch milliseconds. */
  observedAt: number;
}

/** Records alerts at most once per (deviceId, alertKey). */
export interface AlertStore {
  /**
   * Records an alert unless one with the same device and key exists.
   *
   * @returns true when this call recorded it, false when it was already there
   */
  record(alert: AlertRecord): Promise<boolean>;
}

/** An {@link AlertStore} in memory, for the local system and tests. */
export interface MemoryAlertStore extends AlertStore {
  /** Every alert recorded, in order. */
  readonly alerts: readonly AlertRecord[];
}

/** Creates an {@link AlertStore} in memory. */
export function memoryAlertStore(): MemoryAlertStore {
  const seen = new Set<string>();
  const alerts: AlertRecord[] = [];
  return {
    alerts,
    async record(alert) {
      // deviceId is a thing name, which cannot contain '/': the joined key is unambiguous.
      const key = `${alert.deviceId}/${alert.alertKey}`;
      if (seen.has(key)) return false;
      seen.add(key);
      alerts.push(structuredClone(alert));
      return true;
    },
  };
}

/**
 * An {@link AlertStore} on a DynamoDB table with partition key `pk` (S) and sort key `sk` (S): one item per
 * alert, `pk = ALERT#<deviceId>`, `sk = <alertKey>`, written with `attribute_not_exists(pk)` so a redelivered
 * rule event does not record it twice.
 *
 * @param client - a DynamoDB client
 * @param tableName - the table (`TABLE_NAME`)
 */
export function dynamoAlertStore(client: DynamoDBClient, tableName: string): AlertStore {
  return {
    async record(alert) {
      try {
        await client.send(
          new PutItemCommand({
            TableName: tableName,
            Item: {
              pk: { S: `ALERT#${alert.deviceId}` },
              sk: { S: alert.alertKey },
              type: { S: 'alert' },
              deviceId: { S: alert.deviceId },
              ...(alert.version === undefined ? {} : { version: { N: String(alert.version) } }),
              reported: { S: JSON.stringify(alert.reported) },
              observedAt: { N: String(alert.observedAt) },
            },
            ConditionExpression: 'attribute_not_exists(pk)',
          }),
        );
        return true;
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return false;
        if ((error as { name?: unknown }).name === 'ConditionalCheckFailedException') return false;
        throw error;
      }
    },
  };
}
