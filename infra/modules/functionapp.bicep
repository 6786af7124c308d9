// The Function app: Linux, Flex Consumption, Python 3.11, system-assigned identity.
//
// Storage is identity-based (AzureWebJobsStorage__accountName, no key anywhere). Every secret setting is a
// Key Vault reference resolved by the platform with the app's identity; the app reads plain environment
// variables (functions/settings.py). Flex Consumption sets the worker runtime from functionAppConfig, so
// FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION must not be app settings.

import { kvReference } from 'naming.bicep'

param location string
param name string
param tags object = {}

param storageAccountName string
param deploymentContainerUrl string
param keyVaultName string
param appInsightsName string
param subnetId string

@description('Base URL of the scoring service (internal to the VNet).')
param scoringUrl string

// The park console (functions/console/, docs/console.md): people sign in with Microsoft Entra ID through App
// Service authentication (Easy Auth). The app registration (client id below) defines the app roles viewer,
// ranger, operator, admin (infra/console-app-roles.json); users and groups are assigned to them in its
// enterprise application. Empty: no Easy Auth, the console only takes one-time links (break-glass).
@description('Client id of the console\'s Entra app registration (empty: Easy Auth off).')
param consoleClientId string = ''

@description('App settings that hold secrets: each becomes a Key Vault reference to the secret of the same name (lower case, - for _).')
param secretSettingNames array

@description('Always-ready instances: [{"name": "http" | "function:<name>", "instanceCount": n}]. Empty scales to zero.')
param alwaysReady array = []

param maximumInstanceCount int = 100

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Database connections per instance (main.bicep, connection budget: max_connections / maximumInstanceCount).')
@minValue(1)
param databasePoolMax int

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: subnetId
    vnetRouteAllEnabled: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReady
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Publishing with basic credentials is off: the pipeline deploys with its Entra service connection.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, site.id, roles.storageBlobDataOwner)
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, site.id, roles.storageQueueDataContributor)
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, site.id, roles.keyVaultSecretsUser)
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: appInsights
  name: guid(appInsights.id, site.id, roles.monitoringMetricsPublisher)
  properties: {
    principalId: site.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// Settings without secrets. Names are those of functions/settings.py.
// Telemetry: host.json sets "telemetryMode": "OpenTelemetry", so the host and the Python worker
// (configure_azure_monitor in functions/telemetry.py) export one OpenTelemetry stream;
// PYTHON_ENABLE_OPENTELEMETRY lets the worker continue the host's trace context.
// APPLICATIONINSIGHTS_AUTHENTICATION_STRING makes both ingest with the app's system-assigned identity
// (Entra; the Monitoring Metrics Publisher role below) rather than the instrumentation key alone.
var plainSettings = {
  AzureWebJobsStorage__accountName: storage.name
  SCORING_URL: scoringUrl
  PUBLIC_BASE_URL: 'https://${site.properties.defaultHostName}'
  TRAPALERT_LOG_FORMAT: 'json'
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
  // Database: the app's own role with its identity's Entra token (DATABASE_URL, a Key Vault reference, names
  // the role and no password); connections per instance from the connection budget.
  DATABASE_AUTH: 'entra'
  DATABASE_POOL_MAX: string(databasePoolMax)
  // the console trusts X-MS-CLIENT-PRINCIPAL only with this and the platform's WEBSITE_AUTH_ENABLED=True
  CONSOLE_AUTH: empty(consoleClientId) ? 'links' : 'easyauth'
}

// Settings with secrets: Key Vault references only.
var secretSettings = toObject(secretSettingNames, n => n, n => kvReference(vault.properties.vaultUri, n))

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(plainSettings, secretSettings)
  dependsOn: [
    blobOwner
    queueContributor
    secretsUser
  ]
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
output principalId string = site.identity.principalId
