"""The part of RunPod's GraphQL schema the simulator serves, with RunPod's own names.

Only what the `runpod` SDK (v1.12.0) and podmgr use is declared, so a query for a field
RunPod lacks fails validation here as it would there. Input types list RunPod's fields,
including ones the simulator accepts and ignores (stopAfter, terminateAfter, ...).
"""

from __future__ import annotations

from functools import cache

from graphql import GraphQLSchema, build_schema

__all__ = ["SDL", "runpod_schema"]

SDL = """
scalar Void

enum CloudTypeEnum { ALL SECURE COMMUNITY }

enum PodStatus { CREATED RUNNING RESTARTING EXITED PAUSED DEAD TERMINATED }

input GpuTypeFilter { id: String ids: [String] }

input GpuLowestPriceInput {
  gpuCount: Int
  minDisk: Int
  minMemoryInGb: Int
  minVcpuCount: Int
  secureCloud: Boolean
  compliance: [String]
  dataCenterId: String
  globalNetwork: Boolean
  countryCode: String
  minDownload: Int
  minUpload: Int
  supportPublicIp: Boolean
  includeAiApi: Boolean
  allowedCudaVersions: [String]
}

type LowestPrice {
  gpuName: String
  gpuTypeId: String
  minimumBidPrice: Float
  uninterruptablePrice: Float
  minMemory: Int
  minVcpu: Int
  rentalPercentage: Float
  rentedCount: Int
  totalCount: Int
  stockStatus: String
  minDownload: Int
  minDisk: Int
  minUpload: Int
  countryCode: String
  supportPublicIp: Boolean
  compliance: [String]
  maxUnreservedGpuCount: Int
  availableGpuCounts: [Int]
}

type GpuType {
  id: String
  displayName: String
  manufacturer: String
  memoryInGb: Int
  cudaCores: Int
  secureCloud: Boolean
  communityCloud: Boolean
  securePrice: Float
  communityPrice: Float
  oneMonthPrice: Float
  threeMonthPrice: Float
  oneWeekPrice: Float
  communitySpotPrice: Float
  secureSpotPrice: Float
  maxGpuCount: Int
  maxGpuCountCommunityCloud: Int
  maxGpuCountSecureCloud: Int
  minPodGpuCount: Int
  lowestPrice(input: GpuLowestPriceInput): LowestPrice
}

type PodRuntimePorts {
  ip: String
  isIpPublic: Boolean
  privatePort: Int
  publicPort: Int
  type: String
}

type PodRuntimeGpus { id: String gpuUtilPercent: Int memoryUtilPercent: Int }

type PodRuntimeContainer { cpuPercent: Int memoryPercent: Int }

type PodRuntime {
  uptimeInSeconds: Int
  ports: [PodRuntimePorts]
  gpus: [PodRuntimeGpus]
  container: PodRuntimeContainer
}

type PodMachineInfo {
  id: String
  podHostId: String
  gpuDisplayName: String
  gpuTypeId: String
  location: String
  secureCloud: Boolean
}

type Pod {
  id: String!
  name: String
  runtime: PodRuntime
  machine: PodMachineInfo
  machineId: String
  containerDiskInGb: Int
  costPerHr: Float
  adjustedCostPerHr: Float
  desiredStatus: PodStatus
  dockerArgs: String
  dockerId: String
  env: [String]
  gpuCount: Int
  gpuTypeId: String
  imageName: String
  lastStatusChange: String
  locked: Boolean
  memoryInGb: Float
  podType: String
  port: Int
  ports: String
  templateId: String
  uptimeSeconds: Int
  vcpuCount: Float
  volumeInGb: Float
  volumeMountPath: String
  lastStartedAt: String
}

type NetworkVolume { id: String name: String size: Int dataCenterId: String }

type User {
  id: String
  email: String
  pubKey: String
  clientBalance: Float
  currentSpendPerHr: Float
  networkVolumes: [NetworkVolume]
  pods: [Pod]
}

input EnvironmentVariableInput { key: String! value: String! }

input PodFindAndDeployOnDemandInput {
  aiApiId: String
  allowedCudaVersions: [String]
  cloudType: CloudTypeEnum
  containerDiskInGb: Int
  countryCode: String
  cudaVersion: String
  dataCenterId: String
  deployCost: Float
  dockerArgs: String
  env: [EnvironmentVariableInput]
  globalNetwork: Boolean
  gpuCount: Int
  gpuTypeId: String
  gpuTypeIdList: [String]
  imageName: String
  minDisk: Int
  minDownload: Int
  minMemoryInGb: Int
  minUpload: Int
  minVcpuCount: Int
  name: String
  networkVolumeId: String
  port: Int
  ports: String
  savingsPlan: String
  startJupyter: Boolean
  startSsh: Boolean
  stopAfter: String
  supportPublicIp: Boolean
  templateId: String
  terminateAfter: String
  volumeInGb: Int
  volumeKey: String
  volumeMountPath: String
}

# Spot pods: RunPod's `podRentInterruptable` (SkyPilot's RunPod backend: "Spot pods have no
# v2 endpoint yet"); its input is the on-demand one plus the bid per GPU.
input PodRentInterruptableInput {
  bidPerGpu: Float!
  aiApiId: String
  allowedCudaVersions: [String]
  cloudType: CloudTypeEnum
  containerDiskInGb: Int
  countryCode: String
  cudaVersion: String
  dataCenterId: String
  deployCost: Float
  dockerArgs: String
  env: [EnvironmentVariableInput]
  globalNetwork: Boolean
  gpuCount: Int
  gpuTypeId: String
  gpuTypeIdList: [String]
  imageName: String
  minDisk: Int
  minDownload: Int
  minMemoryInGb: Int
  minUpload: Int
  minVcpuCount: Int
  name: String
  networkVolumeId: String
  port: Int
  ports: String
  savingsPlan: String
  startJupyter: Boolean
  startSsh: Boolean
  stopAfter: String
  supportPublicIp: Boolean
  templateId: String
  terminateAfter: String
  volumeInGb: Int
  volumeKey: String
  volumeMountPath: String
}

input PodFilter { podId: String! }

input PodStopInput { podId: String! incrementVersion: Boolean }

input PodResumeInput { podId: String! gpuCount: Int! syncMachine: Boolean }

input PodTerminateInput { podId: String! }

type Query {
  myself: User
  pod(input: PodFilter): Pod
  gpuTypes(input: GpuTypeFilter): [GpuType]
}

type Mutation {
  podFindAndDeployOnDemand(input: PodFindAndDeployOnDemandInput): Pod
  podRentInterruptable(input: PodRentInterruptableInput!): Pod
  podStop(input: PodStopInput!): Pod
  podResume(input: PodResumeInput!): Pod
  podTerminate(input: PodTerminateInput!): Void
}
"""


@cache
def runpod_schema() -> GraphQLSchema:
    """The schema, built once per process."""
    return build_schema(SDL)
