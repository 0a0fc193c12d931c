/**
 * The Lambda `context` and `callback` a rule's Lambda action hands to its handler, declared here rather than
 * imported from `@types/aws-lambda` so that `shadow-sync/emulator` type-checks without that package. The
 * shapes match the Node.js runtime's (and `aws-lambda`'s `Context` / `Callback`), so a handler typed with
 * those can be passed as it is.
 */

/** The `context` argument of a Node.js Lambda handler. */
export interface LambdaContext {
  callbackWaitsForEmptyEventLoop: boolean;
  functionName: string;
  functionVersion: string;
  invokedFunctionArn: string;
  memoryLimitInMB: string;
  awsRequestId: string;
  logGroupName: string;
  logStreamName: string;
  identity?: unknown;
  clientContext?: unknown;
  getRemainingTimeInMillis(): number;
  /** Legacy completion functions of the Node.js runtime. */
  done(error?: Error, result?: unknown): void;
  fail(error: Error | string): void;
  succeed(messageOrObject?: unknown, object?: unknown): void;
}

/** The `callback` argument of a callback-style Node.js Lambda handler. */
export type LambdaCallback<TResult = unknown> = (error?: Error | string | null, result?: TResult) => void;
