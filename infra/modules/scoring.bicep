// The scoring (detector) service on Azure Container Apps with a serverless GPU workload profile.
//
// Network: the environment is internal (no public IP, only an internal load balancer in the VNet). In an
// internal environment `ingress.external: true` means "reachable from the VNet" (the Function app is
// VNet-integrated); `external: false` would limit callers to apps of this environment. Nothing on the
// internet can reach the detector either way.
//
// Cold start: with minReplicas 0 a request after an idle period waits for a GPU replica to be scheduled,
// the image (several GB with CUDA) to be pulled and the model to be loaded: expect tens of seconds up to a
// few minutes before the first detection. Dev accepts that; prod keeps minReplicas >= 1 and pays for one
// GPU replica around the clock.
//
// Model: baked into the image (scoring/Dockerfile[.cpu], build arg SCORING_MODEL): the image is immutable and
// its tag names the model. The build already refused a model that does not load (`python -m scoring
// --check`). At start the replica loads it and only then answers /readyz; the startup probe is /readyz, so a
// revision whose model does not load never gets traffic (in single-revision mode the previous revision keeps
// serving) and the replica log names the file and the expected signature (exit code 3).
//
// Compute: 'gpu' runs on the serverless GPU profile; 'cpu' on the Consumption profile (4 vCPU, 8 GiB per
// replica) for parks without GPU budget, with a small fast model (mdv1000-cedar or -spruce, docs/scoring.md).

import { kvSecretName } from 'naming.bicep'

param location string
param name string
param tags object = {}

param infrastructureSubnetId string
param vnetId string
param logAnalyticsWorkspaceName string

@description('GPU of the serverless workload profile.')
@allowed([
  'T4'
  'A100'
])
param gpu string = 'T4'

@description('gpu: serverless GPU workload profile; cpu: Consumption profile (no GPU).')
@allowed([
  'gpu'
  'cpu'
])
param compute string = 'gpu'

@description('MegaDetector release baked into the image (scoring/catalogue.py), e.g. mdv1000-redwood.')
param model string

@description('Full image reference, e.g. myregistry.azurecr.io/trapalert/scoring:1a2b3c4-mdv1000-redwood.')
param image string

@description('Login server of the registry the image comes from.')
param registryServer string
param registryName string
param registryResourceGroup string

@description('Port the service listens on (SCORING_PORT).')
param targetPort int = 8080

@description('Liveness path of the scoring service (the process answers).')
param healthPath string = '/healthz'

@description('Readiness path (model loaded and warmed up): no traffic before it answers 200.')
param readyPath string = '/readyz'

@description('Replicas kept warm. 0 scales to zero (cold start on the first request after idle).')
@minValue(0)
param minReplicas int
@minValue(1)
param maxReplicas int

@description('Concurrent HTTP requests per replica before the HTTP scale rule adds one.')
@minValue(1)
param concurrentRequests int

param keyVaultName string

var gpuProfiles = {
  T4: {
    profileName: 'gpu-t4'
    workloadProfileType: 'Consumption-GPU-NC8as-T4'
    cpu: '8'
    memory: '56Gi'
  }
  A100: {
    profileName: 'gpu-a100'
    workloadProfileType: 'Consumption-GPU-NC24-A100'
    cpu: '24'
    memory: '220Gi'
  }
}
var cpuProfile = {
  profileName: 'Consumption'
  workloadProfileType: 'Consumption'
  cpu: '4'
  memory: '8Gi'
}
var profile = (compute == 'gpu') ? gpuProfiles[gpu] : cpuProfile
var cpuWorkloadProfiles = [
  {
    name: 'Consumption'
    workloadProfileType: 'Consumption'
  }
]
var gpuWorkloadProfiles = [
  {
    name: 'Consumption'
    workloadProfileType: 'Consumption'
  }
  {
    name: profile.profileName
    workloadProfileType: profile.workloadProfileType
  }
]
// Model loading: download-free (baked in), but the GPU image is large and a 1280 px model warms up in seconds.
var startupFailureThreshold = (compute == 'gpu') ? 30 : 18
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsWorkspaceName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// A user-assigned identity exists before the app, so its AcrPull and Key Vault roles are in place when the
// first revision pulls the image and reads the secret.
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${name}'
  location: location
  tags: tags
}

module pull 'acr-pull.bicep' = {
  name: 'acr-pull-${name}'
  scope: resourceGroup(registryResourceGroup)
  params: {
    registryName: registryName
    principalId: identity.properties.principalId
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, identity.id, keyVaultSecretsUser)
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: 'cae-${name}'
  location: location
  tags: tags
  properties: {
    vnetConfiguration: {
      infrastructureSubnetId: infrastructureSubnetId
      internal: true
    }
    workloadProfiles: (compute == 'gpu') ? gpuWorkloadProfiles : cpuWorkloadProfiles
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
  }
}

// The internal environment's domain resolves only through this zone, linked to the VNet.
resource dnsZone 'Microsoft.Network/privateDnsZones@2020-06-01' = {
  name: environment.properties.defaultDomain
  location: 'global'
  tags: tags
}

resource dnsWildcard 'Microsoft.Network/privateDnsZones/A@2020-06-01' = {
  parent: dnsZone
  name: '*'
  properties: {
    ttl: 300
    aRecords: [
      {
        ipv4Address: environment.properties.staticIp
      }
    ]
  }
}

resource dnsLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = {
  parent: dnsZone
  name: 'vnet-link'
  location: 'global'
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: 'ca-${name}'
  location: location
  tags: union(tags, {
    'azd-service-name': 'scoring'
    'scoring-model': model
    'scoring-compute': compute
  })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: profile.profileName
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: targetPort
        transport: 'auto'
        allowInsecure: false
      }
      registries: [
        {
          server: registryServer
          identity: identity.id
        }
      ]
      secrets: [
        {
          name: 'scoring-api-key'
          keyVaultUrl: '${vault.properties.vaultUri}secrets/${kvSecretName('SCORING_API_KEY')}'
          identity: identity.id
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'scoring'
          image: image
          resources: {
            cpu: json(profile.cpu)
            memory: profile.memory
          }
          env: [
            {
              name: 'SCORING_API_KEY'
              secretRef: 'scoring-api-key'
            }
            {
              name: 'SCORING_HOST'
              value: '0.0.0.0'
            }
            {
              name: 'SCORING_PORT'
              value: string(targetPort)
            }
            {
              // the image must hold this release: a model of another version fails the start (exit 3)
              name: 'SCORING_EXPECTED_MODEL'
              value: model
            }
            {
              // one model call per image on CPU (no batching gain there); batches of up to 8 on a GPU
              name: 'SCORING_MAX_BATCH'
              value: (compute == 'gpu') ? '8' : '1'
            }
          ]
          probes: [
            {
              // /readyz: the model is loaded and warmed up; a model that does not load never passes
              type: 'Startup'
              httpGet: {
                path: readyPath
                port: targetPort
              }
              periodSeconds: 10
              failureThreshold: startupFailureThreshold
            }
            {
              type: 'Liveness'
              httpGet: {
                path: healthPath
                port: targetPort
              }
              periodSeconds: 30
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: {
                path: readyPath
                port: targetPort
              }
              periodSeconds: 10
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http-concurrency'
            http: {
              metadata: {
                concurrentRequests: string(concurrentRequests)
              }
            }
          }
        ]
      }
    }
  }
  dependsOn: [
    pull
    secretsUser
    dnsWildcard
  ]
}

output appName string = app.name
output url string = 'https://${app.properties.configuration.ingress.fqdn}'
output environmentName string = environment.name
output workloadProfileType string = profile.workloadProfileType
output model string = model
