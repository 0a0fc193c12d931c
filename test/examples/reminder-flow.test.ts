/**
 * The reminder flow: the DynamoDB Streams handler (Step Functions mocked by aws-sdk-client-mock), the iterator
 * Lambda (IoT data plane mocked) and the state machine's ASL structure.
 */
import { readFileSync } from 'node:fs';
import { IoTDataPlaneClient, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import { ExecutionAlreadyExists, InvalidArn, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { DynamoDBStreamEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { createReminderIteratorHandler } from '../../examples/lambdas/reminder-iterator.js';
import { createReminderStreamHandler, stepFunctionsStarter } from '../../examples/lambdas/reminder-stream.js';
import { createShadowClient } from '../../src/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import { reminderImage, silentLogger, streamRecord } from './lambda-events.js';
import { sentRequest, updatePayload } from './sdk-mock-payloads.js';

const arn = 'arn:aws:states:us-east-1:123456789012:stateMachine:Reminders';

describe('reminder-stream', () => {
  const sfn = new SFNClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
  const mock = mockClient(sfn);
  afterEach(() => mock.reset());
  const handler = () =>
    createReminderStreamHandler({ starter: stepFunctionsStarter(sfn, arn), logger: silentLogger() });

  it('starts one execution per new reminder, named after it, with the reminder as input', async () => {
    mock.on(StartExecutionCommand).resolves({ executionArn: 'e', startDate: new Date() });
    const event: DynamoDBStreamEvent = {
      Records: [
        streamRecord('INSERT', reminderImage('r1', 'aircon-1', 3, 30), '100'),
        streamRecord('MODIFY', reminderImage('r0', 'aircon-1'), '101'),
        streamRecord('INSERT', { pk: { S: 'ALERT#aircon-1' }, sk: { S: 'v3' }, type: { S: 'alert' } }, '102'),
        streamRecord('REMOVE', reminderImage('r9', 'aircon-1'), '103'),
      ],
    };
    await expect(handler()(event)).resolves.toEqual({ batchItemFailures: [] });
    const calls = mock.commandCalls(StartExecutionCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]?.args[0].input;
    expect(input?.stateMachineArn).toBe(arn);
    expect(input?.name).toBe('reminder-r1');
    expect(JSON.parse(input?.input ?? '')).toEqual({
      reminderId: 'r1',
      thingName: 'aircon-1',
      message: 'clean the filter',
      intervalSeconds: 30,
      repeat: 3,
    });
  });

  it('treats an execution that already exists as started (a redelivered record)', async () => {
    mock.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    const event = { Records: [streamRecord('INSERT', reminderImage('r1', 'aircon-1'), '1')] };
    await expect(handler()(event)).resolves.toEqual({ batchItemFailures: [] });
  });

  it('reports only the record whose start failed, so the rest of the batch is not replayed', async () => {
    mock
      .on(StartExecutionCommand, { name: 'reminder-bad' })
      .rejects(new InvalidArn({ message: 'no such machine', $metadata: {} }))
      .on(StartExecutionCommand, { name: 'reminder-good' })
      .resolves({ executionArn: 'e', startDate: new Date() });
    const event = {
      Records: [
        streamRecord('INSERT', reminderImage('good', 'a'), '1'),
        streamRecord('INSERT', reminderImage('bad', 'a'), '2'),
      ],
    };
    await expect(handler()(event)).resolves.toEqual({ batchItemFailures: [{ itemIdentifier: '2' }] });
  });

  it('skips a malformed reminder item instead of replaying it forever', async () => {
    const image = { ...reminderImage('r1', 'aircon-1'), repeat: { N: '0' }, message: { S: '' } };
    const event = { Records: [streamRecord('INSERT', image, '1')] };
    await expect(handler()(event)).resolves.toEqual({ batchItemFailures: [] });
    expect(mock.calls()).toHaveLength(0);
  });
});

describe('reminder-iterator', () => {
  const iot = new IoTDataPlaneClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
  const mock = mockClient(iot);
  afterEach(() => mock.reset());
  const handler = () =>
    createReminderIteratorHandler({
      shadows: createShadowClient({ transport: awsTransport(iot) }),
      now: () => 1_795_000_000_000,
      logger: silentLogger(),
    });
  const state = { reminderId: 'r1', thingName: 'aircon-1', message: 'filter', intervalSeconds: 60 };

  it('merges the reminder into desired without a version and counts down', async () => {
    mock.on(UpdateThingShadowCommand).resolves(updatePayload({ desired: { reminder: {} } }, 4));
    await expect(handler()({ ...state, remaining: 2, sent: 0, done: false })).resolves.toEqual({
      ...state,
      remaining: 1,
      sent: 1,
      done: false,
    });
    const sent = sentRequest(mock.commandCalls(UpdateThingShadowCommand)[0]?.args[0].input ?? {});
    expect(sent).toEqual({
      state: { desired: { reminder: { id: 'r1', message: 'filter', sequence: 1, at: 1_795_000_000_000 } } },
    });
  });

  it('is done after the last reminder, and sends nothing once done', async () => {
    mock.on(UpdateThingShadowCommand).resolves(updatePayload({ desired: { reminder: {} } }, 4));
    const last = await handler()({ ...state, remaining: 1, sent: 1, done: false });
    expect(last).toMatchObject({ remaining: 0, sent: 2, done: true });
    await expect(handler()(last)).resolves.toMatchObject({ done: true, sent: 2 });
    expect(mock.commandCalls(UpdateThingShadowCommand)).toHaveLength(1);
  });

  it('refuses an execution state that is not one, naming the field', async () => {
    await expect(handler()({ ...state, remaining: -1, sent: 0, done: false })).rejects.toThrow(/remaining/);
  });
});

interface AslState {
  Type: string;
  Next?: string;
  Default?: string;
  End?: boolean;
  Resource?: string;
  Choices?: { Next: string }[];
  SecondsPath?: string;
  Parameters?: Record<string, unknown>;
}

describe('reminder state machine (ASL)', () => {
  const asl = JSON.parse(
    readFileSync(new URL('../../examples/state-machine/reminder.asl.json', import.meta.url), 'utf8'),
  ) as {
    StartAt: string;
    States: Record<string, AslState>;
  };
  const states = Object.entries(asl.States);

  it('starts at a state that exists', () => {
    expect(Object.keys(asl.States)).toContain(asl.StartAt);
  });

  it('points every Next, Default and Choice target at a state, and every non-terminal state goes somewhere', () => {
    for (const [name, state] of states) {
      const targets = [state.Next, state.Default, ...(state.Choices ?? []).map((choice) => choice.Next)];
      for (const target of targets.filter((t) => t !== undefined)) {
        expect(Object.keys(asl.States), `${name} -> ${target}`).toContain(target);
      }
      const terminal = state.Type === 'Succeed' || state.Type === 'Fail' || state.End === true;
      if (!terminal && state.Type !== 'Choice') expect(state.Next, name).toBeDefined();
    }
  });

  it('has the Pass -> Wait -> Task -> Choice loop, the Task running the iterator Lambda', () => {
    const byType = (type: string) => states.filter(([, s]) => s.Type === type);
    const [pass] = byType('Pass');
    const [wait] = byType('Wait');
    const [task] = byType('Task');
    const [choice] = byType('Choice');
    expect(asl.StartAt).toBe(pass?.[0]);
    expect(pass?.[1].Next).toBe(wait?.[0]);
    expect(wait?.[1].Next).toBe(task?.[0]);
    expect(wait?.[1].SecondsPath).toBe('$.intervalSeconds');
    expect(task?.[1].Next).toBe(choice?.[0]);
    expect(choice?.[1].Default).toBe(wait?.[0]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a SAM DefinitionSubstitutions placeholder, not a template.
    expect(task?.[1].Resource).toBe('${ReminderIteratorFunctionArn}');
    // The Pass state builds exactly the state the iterator validates.
    expect(Object.keys(pass?.[1].Parameters ?? {}).map((k) => k.replace(/\.\$$/, ''))).toEqual([
      'reminderId',
      'thingName',
      'message',
      'intervalSeconds',
      'remaining',
      'sent',
      'done',
    ]);
  });

  it('every state is reachable from StartAt', () => {
    const seen = new Set<string>();
    const visit = (name: string) => {
      if (seen.has(name)) return;
      seen.add(name);
      const state = asl.States[name];
      for (const next of [state?.Next, state?.Default, ...(state?.Choices ?? []).map((c) => c.Next)]) {
        if (next !== undefined) visit(next);
      }
    };
    visit(asl.StartAt);
    expect([...seen].sort()).toEqual(Object.keys(asl.States).sort());
  });
});
