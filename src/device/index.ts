/** `shadow-sync/device`: the device agent. */
export {
  type AgentErrorInfo,
  type ConflictEvent,
  createDeviceAgent,
  type DeltaEvent,
  type DeviceAgent,
  type DeviceAgentEvents,
  type DeviceAgentStats,
  type SyncedEvent,
} from './device-agent.js';
export {
  DEVICE_AGENT_DEFAULTS,
  type DeltaContext,
  type DeltaHandler,
  type DeviceAgentOptions,
  type DeviceMqttOption,
  type ResolvedDeviceAgentOptions,
  resolveDeviceAgentOptions,
} from './device-agent-options.js';
export { createTelemetryBuffer, type TelemetryBuffer } from './telemetry-buffer.js';
