/**
 * The deploy template: parsed with `yaml` (CloudFormation's short-form tags), every function's handler exists in
 * the build and exports `handler`, every IoT rule's SQL parses with the local service's rules parser and matches
 * the SQL the local system runs, references resolve, and policies stay least-privilege.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, type Tags, type YAMLMap, type YAMLSeq } from 'yaml';
import { DESIRED_CLEANUP_RULE_SQL } from '../../examples/lambdas/desired-cleanup.js';
import { ILLEGAL_STATE_RULE_SQL } from '../../examples/lambdas/illegal-state-alert.js';
import { REFERENCE_RULE_NAMES } from '../../examples/lambdas/local-rules.js';
import { LAMBDA_SHADOW_CLIENT_OPTIONS } from '../../examples/lambdas/shadows-from-environment.js';
import { TELEMETRY_RULE_SQL } from '../../examples/lambdas/telemetry-sink.js';
import { parseRuleSql } from '../../src/emulator/index.js';

const examples = fileURLToPath(new URL('../../examples/', import.meta.url));

/** CloudFormation short forms: `!Ref X` -> `{ Ref: X }`, `!GetAtt A.B` -> `{ 'Fn::GetAtt': [A, B] }`, others `Fn::*`. */
const FUNCTIONS = [
  'Sub',
  'Join',
  'If',
  'Select',
  'Split',
  'Equals',
  'Not',
  'And',
  'Or',
  'FindInMap',
  'Base64',
  'Cidr',
  'ImportValue',
  'GetAZs',
];
const customTags: Tags = [
  { tag: '!Ref', resolve: (value: string) => ({ Ref: value }) },
  { tag: '!Condition', resolve: (value: string) => ({ Condition: value }) },
  { tag: '!GetAtt', resolve: (value: string) => ({ 'Fn::GetAtt': value.split('.', 2) }) },
  {
    tag: '!GetAtt',
    collection: 'seq',
    resolve: (value: YAMLMap.Parsed | YAMLSeq.Parsed) => ({ 'Fn::GetAtt': value.toJSON() }),
  },
  ...FUNCTIONS.flatMap((name) => [
    { tag: `!${name}`, resolve: (value: string) => ({ [`Fn::${name}`]: value }) },
    {
      tag: `!${name}`,
      collection: 'seq' as const,
      resolve: (value: YAMLMap.Parsed | YAMLSeq.Parsed) => ({ [`Fn::${name}`]: value.toJSON() }),
    },
    {
      tag: `!${name}`,
      collection: 'map' as const,
      resolve: (value: YAMLMap.Parsed | YAMLSeq.Parsed) => ({ [`Fn::${name}`]: value.toJSON() }),
    },
  ]),
];

interface Resource {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: { BuildMethod?: string; BuildProperties?: { EntryPoints?: string[] } };
}
const template = parse(readFileSync(join(examples, 'template.yaml'), 'utf8'), { customTags }) as {
  Transform: string;
  Parameters: Record<string, unknown>;
  Globals: { Function: { CodeUri: string; Timeout: number } };
  Resources: Record<string, Resource>;
};
const resources = Object.entries(template.Resources);
const ofType = (type: string) => resources.filter(([, resource]) => resource.Type === type);
const functions = ofType('AWS::Serverless::Function');
const rules = ofType('AWS::IoT::TopicRule');
/** A resource's properties, `{}` when it has none. */
const props = (resource: Resource): Record<string, unknown> => resource.Properties ?? {};
const normalize = (sql: string) => sql.replace(/\s+/g, ' ').trim();

/** Every value in a tree, for reference checks. */
function* walk(value: unknown): Generator<unknown> {
  yield value;
  if (Array.isArray(value)) for (const item of value) yield* walk(item);
  else if (typeof value === 'object' && value !== null)
    for (const item of Object.values(value)) yield* walk(item);
}

describe('examples/template.yaml', () => {
  it('is a SAM template with the expected parts', () => {
    expect(template.Transform).toBe('AWS::Serverless-2016-10-31');
    expect(functions.map(([name]) => name).sort()).toEqual([
      'DesiredCleanupFunction',
      'IllegalStateAlertFunction',
      'ReminderIteratorFunction',
      'ReminderStreamFunction',
      'SetDesiredFunction',
      'TelemetrySinkFunction',
    ]);
    for (const type of [
      'AWS::Serverless::HttpApi',
      'AWS::DynamoDB::Table',
      'AWS::Serverless::StateMachine',
      'AWS::S3::Bucket',
    ]) {
      expect(ofType(type), type).toHaveLength(1);
    }
    expect(rules).toHaveLength(3);
  });

  it.each(functions)('%s: its esbuild entry point exists and exports handler', async (_name, resource) => {
    expect(resource.Metadata?.BuildMethod).toBe('esbuild');
    const entries = resource.Metadata?.BuildProperties?.EntryPoints ?? [];
    expect(entries).toHaveLength(1);
    const entry = join(examples, template.Globals.Function.CodeUri, entries[0] as string);
    expect(existsSync(entry), entry).toBe(true);
    // esbuild writes <entry name>.mjs at the artifact root; Handler is <file>.<export>.
    const [file, exported] = String(resource.Properties?.Handler).split('.');
    expect(file).toBe(basename(entry, '.ts'));
    const module = (await import(entry)) as Record<string, unknown>;
    expect(typeof module[exported as string]).toBe('function');
  });

  it("the shadow client's retry budget ends before the functions time out (409/429, not a timeout)", () => {
    expect(LAMBDA_SHADOW_CLIENT_OPTIONS.maxElapsedMs).toBeLessThan(template.Globals.Function.Timeout * 1000);
    for (const [name, resource] of functions) expect(props(resource).Timeout, name).toBeUndefined();
  });

  it.each(functions)('%s: sets every environment variable its handler reads', (_name, resource) => {
    const entry = join(
      examples,
      template.Globals.Function.CodeUri,
      resource.Metadata?.BuildProperties?.EntryPoints?.[0] ?? '',
    );
    const source = readFileSync(entry, 'utf8');
    const needed = [...source.matchAll(/requireEnvironment\('([A-Z_]+)'\)/g)].map((match) => match[1]);
    if (source.includes("from './shadows-from-environment.js'")) needed.push('IOT_DATA_ENDPOINT');
    expect(needed.length).toBeGreaterThan(0);
    const variables = (props(resource).Environment as { Variables: Record<string, unknown> }).Variables;
    for (const name of needed) expect(Object.keys(variables), name).toContain(name);
  });

  it.each(rules)(
    '%s: its SQL parses with the local rules parser and is the SQL the local system runs',
    (name, rule) => {
      const payload = rule.Properties?.TopicRulePayload as {
        Sql: string;
        Actions: { Lambda: { FunctionArn: unknown } }[];
      };
      expect(() => parseRuleSql(payload.Sql)).not.toThrow();
      const localSql = {
        [REFERENCE_RULE_NAMES.illegalState]: ILLEGAL_STATE_RULE_SQL,
        [REFERENCE_RULE_NAMES.telemetry]: TELEMETRY_RULE_SQL,
        [REFERENCE_RULE_NAMES.documents]: DESIRED_CLEANUP_RULE_SQL,
      }[name];
      expect(localSql, `${name} is one of referenceRules`).toBeDefined();
      expect(normalize(payload.Sql)).toBe(normalize(localSql ?? ''));
      // It invokes a function of this template, which grants IoT (this rule only) permission to invoke it.
      const action = payload.Actions[0] ?? { Lambda: { FunctionArn: {} } };
      const target = (action.Lambda.FunctionArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'];
      expect(target[1]).toBe('Arn');
      expect(functions.map(([n]) => n)).toContain(target[0]);
      const permissions = ofType('AWS::Lambda::Permission').filter(
        ([, p]) => (props(p).FunctionName as { Ref: string }).Ref === target[0],
      );
      expect(permissions).toHaveLength(1);
      expect(permissions[0]?.[1].Properties).toMatchObject({
        Action: 'lambda:InvokeFunction',
        Principal: 'iot.amazonaws.com',
        SourceArn: { 'Fn::GetAtt': [name, 'Arn'] },
      });
    },
  );

  it('rejects SQL outside the parser (the check above can fail)', () => {
    expect(() => parseRuleSql("SELECT * FROM 'a/+' WHERE x LIKE 'y'")).toThrow();
  });

  it('every !Ref, !GetAtt and !Sub placeholder names a parameter, resource or pseudo parameter', () => {
    const known = new Set([...Object.keys(template.Parameters), ...Object.keys(template.Resources)]);
    const pseudo = (name: string) => name.startsWith('AWS::');
    for (const value of walk(template.Resources)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
      const node = value as Record<string, unknown>;
      if (typeof node.Ref === 'string' && !pseudo(node.Ref)) expect(known, node.Ref).toContain(node.Ref);
      const getAtt = node['Fn::GetAtt'];
      if (Array.isArray(getAtt)) expect(known, String(getAtt[0])).toContain(getAtt[0]);
      if (typeof node['Fn::Sub'] === 'string') {
        for (const [, inner] of node['Fn::Sub'].matchAll(/\$\{([^}]+)\}/g)) {
          const name = (inner as string).split('.')[0] as string;
          if (!pseudo(name)) expect(known, name).toContain(name);
        }
      }
    }
  });

  it('the state machine definition exists and its Task runs the iterator function', () => {
    const [[, machine] = ['', {} as Resource]] = ofType('AWS::Serverless::StateMachine');
    const path = join(examples, String(machine.Properties?.DefinitionUri));
    const definition = readFileSync(path, 'utf8');
    const substitutions = machine.Properties?.DefinitionSubstitutions as Record<
      string,
      { 'Fn::GetAtt': string[] }
    >;
    for (const [, placeholder] of definition.matchAll(/\$\{([A-Za-z0-9]+)\}/g)) {
      expect(Object.keys(substitutions)).toContain(placeholder);
    }
    expect(substitutions.ReminderIteratorFunctionArn?.['Fn::GetAtt']).toEqual([
      'ReminderIteratorFunction',
      'Arn',
    ]);
    const iterator = template.Resources.ReminderIteratorFunction;
    expect(iterator?.Properties?.Handler).toBe('reminder-iterator.handler');
    expect(dirname(path)).toBe(join(examples, 'state-machine'));
  });

  it('policies are least-privilege: no wildcard actions, shadow access only on thing ARNs', () => {
    for (const [name, resource] of functions) {
      for (const value of walk(resource.Properties?.Policies ?? [])) {
        if (typeof value !== 'object' || value === null || !('Action' in value)) continue;
        const statement = value as { Action: string | string[]; Resource: unknown };
        const actions = ([] as string[]).concat(statement.Action);
        for (const action of actions) expect(action, name).not.toMatch(/\*/);
        if (actions.some((action) => action.startsWith('iot:'))) {
          expect(
            actions.every((action) => /^iot:(Get|Update)ThingShadow$/.test(action)),
            name,
          ).toBe(true);
          expect((statement.Resource as { 'Fn::Sub': string })['Fn::Sub']).toMatch(
            /:iot:\$\{AWS::Region\}:\$\{AWS::AccountId\}:thing\//,
          );
        }
      }
    }
  });

  it('the app API uses a Cognito JWT authorizer on PUT /things/{thingName}/desired', () => {
    const api = template.Resources.HttpApi?.Properties as {
      Auth: {
        DefaultAuthorizer: string;
        Authorizers: Record<string, { JwtConfiguration: { issuer: unknown } }>;
      };
    };
    expect(api.Auth.Authorizers[api.Auth.DefaultAuthorizer]?.JwtConfiguration.issuer).toEqual({
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a CloudFormation !Sub string, not a template.
      'Fn::Sub': 'https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}',
    });
    const events = template.Resources.SetDesiredFunction?.Properties?.Events as Record<
      string,
      { Properties: object }
    >;
    expect(Object.values(events)[0]?.Properties).toMatchObject({
      Method: 'PUT',
      Path: '/things/{thingName}/desired',
    });
  });
});
