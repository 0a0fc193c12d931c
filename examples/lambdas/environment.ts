/**
 * Reads the environment variables the deploy template sets on each Lambda. Handlers wire their
 * dependencies on the first invocation (not at import), so importing a handler module never needs AWS.
 */

/**
 * Returns an environment variable that must be set.
 *
 * @param name - the variable, for example `TABLE_NAME`
 * @param environment - where to read it from
 * @throws Error naming the missing variable
 */
export function requireEnvironment(name: string, environment: NodeJS.ProcessEnv = process.env): string {
  const value = environment[name];
  if (value === undefined || value === '') {
    throw new Error(`Environment variable ${name} is not set (the deploy template sets it on this function)`);
  }
  return value;
}

/**
 * Runs `create` once, on first use, and keeps its result: the dependencies of an exported `handler`.
 *
 * @param create - builds the dependencies (reads the environment, creates SDK clients)
 */
export function lazily<T>(create: () => T): () => T {
  let created: { value: T } | undefined;
  return () => {
    created ??= { value: create() };
    return created.value;
  };
}
