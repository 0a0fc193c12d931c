/**
 * The configured field paths of a split policy as a tree keyed by path segment, so that routing a value costs
 * one map lookup per key of the reported object and never builds path strings for keys nobody configured.
 */
import type { ResolvedFieldRule, Route } from './split-options.js';

/** One node of the route tree: the rule configured exactly at this path, if any, and deeper paths. */
export interface RouteNode {
  rule: ResolvedFieldRule | undefined;
  children: Map<string, RouteNode>;
}

/**
 * Builds the route tree of the configured paths.
 *
 * @param fields - configured rules keyed by dotted path (validated: non-empty segments)
 * @param otherFields - the route of values no configured path covers, held by the root
 */
export function buildRouteTable(
  fields: ReadonlyMap<string, ResolvedFieldRule>,
  otherFields: Route,
): RouteNode {
  const root: RouteNode = { rule: { route: otherFields, gate: undefined }, children: new Map() };
  for (const [path, rule] of fields) {
    let node = root;
    for (const segment of path.split('.')) {
      let child = node.children.get(segment);
      if (child === undefined) {
        child = { rule: undefined, children: new Map() };
        node.children.set(segment, child);
      }
      node = child;
    }
    node.rule = rule;
  }
  return root;
}

/**
 * The rule of a dotted path: the rule of the longest configured path that is a prefix of it (segment-wise),
 * else the root's `otherFields` rule.
 */
export function ruleFor(root: RouteNode, path: string): ResolvedFieldRule {
  let rule = root.rule as ResolvedFieldRule;
  let node: RouteNode | undefined = root;
  for (const segment of path.split('.')) {
    node = node.children.get(segment);
    if (node === undefined) break;
    if (node.rule !== undefined) rule = node.rule;
  }
  return rule;
}
