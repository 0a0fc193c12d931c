/**
 * Test support: the local shadow service in a child process (fixtures/service-process.ts) whose memory the test
 * can read (peak and current RSS), and whose death (an uncaught exception) the test can see.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('./fixtures/service-process.ts', import.meta.url));

/** A service running in a child process. */
export interface ServiceProcess {
  readonly httpEndpoint: string;
  readonly mqttUrl: string;
  readonly child: ChildProcess;
  /** Peak RSS (`maxRSS`) and current RSS of the service process, in bytes. */
  memory(): Promise<{ peak: number; current: number }>;
  /** True while the process runs. */
  alive(): boolean;
  /** Stops the service and waits for the process to exit. */
  stop(): Promise<void>;
}

/** Starts the service process and waits for its endpoints. */
export async function startServiceProcess(): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  let buffered = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    buffered += chunk;
    for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      const waiter = waiters.shift();
      if (waiter !== undefined) waiter(line);
      else lines.push(line);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const nextLine = (): Promise<string> => {
    const line = lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return Promise.race([
      new Promise<string>((resolve) => waiters.push(resolve)),
      exited.then(() => {
        throw new Error(`the service process exited (code ${String(child.exitCode)})`);
      }),
    ]);
  };
  const [httpEndpoint = '', mqttUrl = ''] = (await nextLine()).split(' ');
  return {
    httpEndpoint,
    mqttUrl,
    child,
    async memory() {
      child.stdin?.write('?\n');
      const [peak, current] = (await nextLine()).split(' ').map(Number) as [number, number];
      return { peak, current };
    },
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.stdin?.end();
      await exited;
    },
  };
}
