/** MQTT topic filters (MQTT 3.1.1 section 4.7): validation and containment, for the broker's policy and the rules. */

/** Why a topic filter is invalid, or `undefined` when it is valid (MQTT 3.1.1 section 4.7). */
export function topicFilterProblem(filter: string): string | undefined {
  if (filter === '') return 'it is empty';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1))
      return "'#' must be the whole last level";
    if (level.includes('+') && level !== '+') return "'+' must be a whole level";
  }
  return undefined;
}

/**
 * True when every topic matched by `filter` is also matched by `pattern` (both MQTT topic filters; a plain topic
 * name is a filter without wildcards, so this is also "topic matches pattern").
 *
 * @param filter - the topic or subscription filter a client asked for
 * @param pattern - the filter the policy allows
 */
export function filterWithin(filter: string, pattern: string): boolean {
  const f = filter.split('/');
  const p = pattern.split('/');
  for (let i = 0; ; i++) {
    const pl = p[i];
    const fl = f[i];
    if (pl === '#') return true;
    if (fl === undefined || pl === undefined) return fl === pl;
    if (fl === '#') return false;
    if (pl === '+') continue;
    if (fl === '+' || fl !== pl) return false;
  }
}
