/**
 * How many fast-check runs each fuzz property makes: a bounded number in CI (the whole suite stays well under
 * 30 s on two shared cores), more on demand with `FUZZ_RUNS=<n>` (`npm run test:fuzz` sets 5,000).
 */
export function fuzzRuns(ciDefault: number): number {
  const raw = process.env.FUZZ_RUNS;
  if (raw === undefined || raw === '') return ciDefault;
  const runs = Number(raw);
  if (!Number.isSafeInteger(runs) || runs < 1)
    throw new Error(`FUZZ_RUNS must be a positive integer, got '${raw}'`);
  return runs;
}

/** Seconds a test may take for `runs` runs: generous, because the long run is meant to run long. */
export function fuzzTimeoutMs(runs: number): number {
  return 60_000 + runs * 200;
}
