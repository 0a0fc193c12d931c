/**
 * Test support: runs the subset of Amazon States Language the reminder state machine uses (Pass with Parameters,
 * Wait with SecondsPath, Task on a substituted Lambda, Choice on BooleanEquals, Succeed), so the flow can run
 * against the local service. Paths are the `$.field` form only; anything else throws, naming it.
 */

interface AslState {
  Type: string;
  Next?: string;
  End?: boolean;
  Parameters?: Record<string, unknown>;
  SecondsPath?: string;
  Seconds?: number;
  Resource?: string;
  Choices?: { Variable: string; BooleanEquals?: boolean; Next: string }[];
  Default?: string;
}

/** A state machine definition. */
export interface AslDefinition {
  StartAt: string;
  States: Record<string, AslState>;
}

/** What a run needs: the Task resources by their substituted ARN placeholder, and the Wait clock. */
export interface AslRunOptions {
  tasks: Record<string, (input: unknown) => Promise<unknown>>;
  sleep: (seconds: number) => Promise<void>;
  /** Most state transitions before giving up (a loop guard). */
  maxTransitions?: number;
}

function read(input: unknown, path: string): unknown {
  const match = /^\$\.([A-Za-z0-9_]+)$/.exec(path);
  if (match === null) throw new Error(`asl-runner: unsupported path '${path}'`);
  return (input as Record<string, unknown>)[match[1] as string];
}

/**
 * Runs the machine on `input` and resolves to its output and the states it went through.
 *
 * @throws Error for an unsupported construct or when `maxTransitions` is exceeded
 */
export async function runAsl(
  definition: AslDefinition,
  input: unknown,
  options: AslRunOptions,
): Promise<{ output: unknown; path: string[] }> {
  let name = definition.StartAt;
  let data = input;
  const path: string[] = [];
  const limit = options.maxTransitions ?? 1000;
  for (;;) {
    if (path.length >= limit) throw new Error(`asl-runner: more than ${limit} transitions`);
    const state = definition.States[name];
    if (state === undefined) throw new Error(`asl-runner: no state '${name}'`);
    path.push(name);
    switch (state.Type) {
      case 'Pass': {
        if (state.Parameters !== undefined) {
          const out: Record<string, unknown> = {};
          for (const [key, value] of Object.entries(state.Parameters)) {
            if (key.endsWith('.$')) out[key.slice(0, -2)] = read(data, String(value));
            else out[key] = value;
          }
          data = out;
        }
        break;
      }
      case 'Wait':
        await options.sleep(
          state.SecondsPath === undefined ? (state.Seconds ?? 0) : Number(read(data, state.SecondsPath)),
        );
        break;
      case 'Task': {
        const task = options.tasks[state.Resource ?? ''];
        if (task === undefined) throw new Error(`asl-runner: no task for resource '${state.Resource}'`);
        data = await task(data);
        break;
      }
      case 'Choice': {
        const choice = (state.Choices ?? []).find(
          (c) => c.BooleanEquals !== undefined && read(data, c.Variable) === c.BooleanEquals,
        );
        const next = choice?.Next ?? state.Default;
        if (next === undefined) throw new Error(`asl-runner: no choice matched in '${name}'`);
        name = next;
        continue;
      }
      case 'Succeed':
        return { output: data, path };
      default:
        throw new Error(`asl-runner: unsupported state type '${state.Type}'`);
    }
    if (state.End === true) return { output: data, path };
    if (state.Next === undefined) throw new Error(`asl-runner: state '${name}' has no Next`);
    name = state.Next;
  }
}
