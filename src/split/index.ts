/** Topic-splitting policies: what goes to the shadow, what to a telemetry topic. */
export {
  DEFAULT_SPLIT_POLICY_OPTIONS,
  type FieldRule,
  type ResolvedFieldRule,
  type ResolvedShadowGate,
  type ResolvedSplitPolicyOptions,
  type Route,
  resolveSplitPolicyOptions,
  type ShadowGate,
  type SplitPolicyOptions,
} from './split-options.js';
export {
  type ReportRates,
  type ShadowRateEstimate,
  type SplitPolicy,
  type SplitResult,
  type SplitState,
  splitPolicy,
} from './split-policy.js';
