import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseRuleExpression,
  parseRuleSql,
  type RuleExpression,
  RuleSqlError,
} from '../../../src/emulator/rules/rule-sql.js';
import { isShadowError } from '../../../src/errors.js';

const SEED =
  "SELECT *, topic(3) as device_id FROM '$aws/things/+/shadow/update' WHERE state.reported.someIllegalState = True";

function refusal(sql: string): RuleSqlError {
  try {
    parseRuleSql(sql);
  } catch (error) {
    expect(error).toBeInstanceOf(RuleSqlError);
    return error as RuleSqlError;
  }
  throw new Error(`expected ${sql} to be refused`);
}

describe('parseRuleSql: the supported subset', () => {
  it("parses the seed's rule", () => {
    const ast = parseRuleSql(SEED);
    expect(ast.from).toBe('$aws/things/+/shadow/update');
    expect(ast.select).toEqual([
      { kind: 'all' },
      { kind: 'expression', name: 'device_id', expression: { kind: 'topic', level: 3 } },
    ]);
    expect(ast.where).toEqual({
      kind: 'compare',
      operator: '=',
      left: { kind: 'field', path: ['state', 'reported', 'someIllegalState'] },
      right: { kind: 'literal', value: true },
    });
  });

  it('reads keywords and booleans in any case', () => {
    const ast = parseRuleSql("select * from 'a/#' where NOT x = FALSE and y = true Or z = TrUe");
    expect(ast.where).toEqual({
      kind: 'or',
      left: {
        kind: 'and',
        left: {
          kind: 'not',
          operand: {
            kind: 'compare',
            operator: '=',
            left: { kind: 'field', path: ['x'] },
            right: { kind: 'literal', value: false },
          },
        },
        right: {
          kind: 'compare',
          operator: '=',
          left: { kind: 'field', path: ['y'] },
          right: { kind: 'literal', value: true },
        },
      },
      right: {
        kind: 'compare',
        operator: '=',
        left: { kind: 'field', path: ['z'] },
        right: { kind: 'literal', value: true },
      },
    });
  });

  it('gives AND precedence over OR, and parentheses override it', () => {
    const flat = parseRuleSql("SELECT * FROM 't' WHERE a = 1 OR b = 2 AND c = 3").where;
    expect(flat?.kind).toBe('or');
    const grouped = parseRuleSql("SELECT * FROM 't' WHERE (a = 1 OR b = 2) AND c = 3").where;
    expect(grouped?.kind).toBe('and');
  });

  it('parses every comparison operator, != as <>', () => {
    for (const [text, operator] of [
      ['=', '='],
      ['<>', '<>'],
      ['!=', '<>'],
      ['<', '<'],
      ['<=', '<='],
      ['>', '>'],
      ['>=', '>='],
    ] as const) {
      const where = parseRuleSql(`SELECT * FROM 't' WHERE temp ${text} -2.5e1`).where;
      expect(where).toEqual({
        kind: 'compare',
        operator,
        left: { kind: 'field', path: ['temp'] },
        right: { kind: 'literal', value: -25 },
      });
    }
  });

  it('parses literals, functions and aliases in SELECT', () => {
    const ast = parseRuleSql(
      "SELECT state.reported.mode, 'it''s' AS s, 42 AS n, null AS z, clientid() AS c, timestamp() AS ts, topic() AS t FROM 'a/+/b'",
    );
    expect(ast.select).toEqual([
      {
        kind: 'expression',
        name: 'mode',
        expression: { kind: 'field', path: ['state', 'reported', 'mode'] },
      },
      { kind: 'expression', name: 's', expression: { kind: 'literal', value: "it's" } },
      { kind: 'expression', name: 'n', expression: { kind: 'literal', value: 42 } },
      { kind: 'expression', name: 'z', expression: { kind: 'literal', value: null } },
      { kind: 'expression', name: 'c', expression: { kind: 'clientid' } },
      { kind: 'expression', name: 'ts', expression: { kind: 'timestamp' } },
      { kind: 'expression', name: 't', expression: { kind: 'topic', level: undefined } },
    ]);
    expect(ast.where).toBeUndefined();
  });

  it('reads numbers in every JSON-like form', () => {
    for (const [text, number] of [
      ['0', 0],
      ['-7', -7],
      ['3.25', 3.25],
      ['.5', 0.5],
      ['-.5', -0.5],
      ['1e3', 1000],
      ['2.5E-2', 0.025],
    ] as const)
      expect(parseRuleExpression(`x > ${text}`)).toEqual({
        kind: 'compare',
        operator: '>',
        left: { kind: 'field', path: ['x'] },
        right: { kind: 'literal', value: number },
      });
  });

  it('parses substitution-template expressions', () => {
    expect(parseRuleExpression('topic(3)')).toEqual({ kind: 'topic', level: 3 });
    expect(parseRuleExpression('state.reported.mode')).toEqual({
      kind: 'field',
      path: ['state', 'reported', 'mode'],
    });
  });
});

describe('parseRuleSql: refusals name the unsupported part and its offset', () => {
  const cases: [sql: string, unsupported: string, pattern: RegExp][] = [
    ["SELECT * FROM 't' WHERE a IN (1, 2)", 'IN', /Unsupported keyword IN/],
    ["SELECT VALUE x FROM 't'", 'VALUE', /Unsupported keyword VALUE/],
    ["SELECT upper(x) AS u FROM 't'", 'upper', /Unsupported function upper\(\)/],
    ["SELECT * FROM 't' WHERE a + 1 > 2", '+', /Unsupported arithmetic operator '\+'/],
    ["SELECT * FROM 't' WHERE a[0] = 1", '[', /array indexing/],
    ['SELECT * FROM \'t\' WHERE a = "x"', '"', /double-quoted/],
    ["SELECT CASE x WHEN 1 THEN 2 END AS y FROM 't'", 'CASE', /Unsupported keyword CASE/],
    ["SELECT * FROM 't' WHERE a = 1 -- comment", '-', /Unsupported arithmetic operator/],
    ["SELECT topic(3) FROM 't'", 'topic(3)', /needs AS <name>/],
    ["SELECT * FROM 't' WHERE topic(0) = 'x'", '0', /topic\(\) takes a level number/],
    ["SELECT * FROM 't' WHERE clientid(1) = 'x'", '1', /clientid\(\) takes no arguments/],
    ["SELECT * FROM 't' WHERE a = 1 = 2", '=', /Chained comparison/],
    ["SELECT * FROM 'a/#/b'", "'a/#/b'", /Invalid topic filter/],
    ["SELECT * FROM 'a/b+'", "'a/b+'", /Invalid topic filter/],
    ['SELECT * FROM a/b', 'a', /quoted topic filter/],
    ["SELECT * FROM 't' WHERE", 'end of statement', /Expected a value/],
    ["SELECT * FROM 't' WHERE a = 'open", "'open", /Unterminated string/],
    ["SELECT a.* FROM 't'", 'a.*', /Unsupported wildcard/],
    ["SELECT *, * FROM 't'", '*', /twice/],
    ["SELECT * FROM 't' WHERE a = 1 ORDER BY a", 'ORDER', /Unsupported keyword ORDER/],
    ["SELECT * FROM 't' WHERE a IS NULL", 'IS', /Unsupported keyword IS/],
    ["SELECT * FROM 't';", ';', /statement separator/],
    ['UPDATE t SET a = 1', 'UPDATE', /Expected SELECT/],
  ];
  for (const [sql, unsupported, pattern] of cases) {
    it(`refuses ${sql}`, () => {
      const error = refusal(sql);
      expect(error.unsupported).toBe(unsupported);
      expect(error.message).toMatch(pattern);
      expect(error.message).toContain(`at offset ${error.position}`);
      expect(sql.slice(error.position)).toMatch(
        unsupported === 'end of statement'
          ? /^$/
          : new RegExp(`^${unsupported.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
      );
      expect(isShadowError(error)).toBe(true);
      expect(error.code).toBe('OPTIONS');
      expect(error.sql).toBe(sql);
    });
  }
});

describe('parseRuleSql: property', () => {
  const keywords = new Set(['select', 'from', 'where', 'as', 'and', 'or', 'not', 'true', 'false', 'null']);
  const unsupported = new Set([
    'in',
    'is',
    'like',
    'between',
    'case',
    'when',
    'then',
    'else',
    'end',
    'set',
    'value',
  ]);
  const identifier = fc
    .stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/)
    .filter((name) => !keywords.has(name.toLowerCase()) && !unsupported.has(name.toLowerCase()));
  const { expression } = fc.letrec<{ expression: RuleExpression; leaf: RuleExpression }>((tie) => ({
    leaf: fc.oneof(
      fc.integer({ min: -1000, max: 1000 }).map((value) => ({ kind: 'literal', value }) as RuleExpression),
      fc.string({ maxLength: 6 }).map((value) => ({ kind: 'literal', value }) as RuleExpression),
      fc.boolean().map((value) => ({ kind: 'literal', value }) as RuleExpression),
      fc.constant({ kind: 'literal', value: null } as RuleExpression),
      fc
        .array(identifier, { minLength: 1, maxLength: 3 })
        .map((path) => ({ kind: 'field', path }) as RuleExpression),
      fc
        .option(fc.integer({ min: 1, max: 9 }), { nil: undefined })
        .map((level) => ({ kind: 'topic', level }) as RuleExpression),
      fc.constant({ kind: 'clientid' } as RuleExpression),
      fc.constant({ kind: 'timestamp' } as RuleExpression),
    ),
    expression: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      tie('leaf'),
      fc
        .record({
          kind: fc.constant('compare' as const),
          operator: fc.constantFrom('=', '<>', '<', '<=', '>', '>=' as const),
          left: tie('leaf'),
          right: tie('leaf'),
        })
        .map((e) => e as RuleExpression),
      fc
        .record({
          kind: fc.constantFrom('and' as const, 'or' as const),
          left: tie('expression'),
          right: tie('expression'),
        })
        .map((e) => e as RuleExpression),
      fc
        .record({ kind: fc.constant('not' as const), operand: tie('expression') })
        .map((e) => e as RuleExpression),
    ),
  }));

  function print(e: RuleExpression): string {
    switch (e.kind) {
      case 'literal':
        if (typeof e.value === 'string') return `'${e.value.replaceAll("'", "''")}'`;
        if (e.value === null) return 'NULL';
        return e.value === true ? 'True' : e.value === false ? 'false' : String(e.value);
      case 'field':
        return e.path.join('.');
      case 'topic':
        return `topic(${e.level ?? ''})`;
      case 'clientid':
        return 'clientid()';
      case 'timestamp':
        return 'timestamp()';
      case 'compare':
        return `${print(e.left)} ${e.operator} ${print(e.right)}`;
      case 'and':
      case 'or':
        return `(${print(e.left)}) ${e.kind.toUpperCase()} (${print(e.right)})`;
      case 'not':
        return `NOT (${print(e.operand)})`;
    }
  }

  it('parses back what a printer of the subset writes', () => {
    fc.assert(
      fc.property(expression, (where) => {
        const ast = parseRuleSql(`SELECT *, ${print(where)} AS v FROM 'a/+/#' WHERE ${print(where)}`);
        expect(ast.where).toEqual(where);
        expect(ast.select[1]).toEqual({ kind: 'expression', name: 'v', expression: where });
      }),
      { numRuns: 300 },
    );
  });
});
