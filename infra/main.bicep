// TrapAlert: one environment (dev or prod) in one resource group. Both environments deploy this template;
// only the parameter files (parameters/dev.json, parameters/prod.json) differ, and they set the same
// parameters.
//
//   az deployment group what-if --resource-group <rg> --template-file infra/main.bicep \
//     --parameters @infra/parameters/dev.json postgresAdminPassword=... scoringApiKey=... scoringImageTag=...
//
// Names of queues, containers and the webhook route are those of functions/names.py; tests/infra checks
// that they stay equal.

import { kvSecretName } from 'modules/naming.bicep'

@description('Environment name; part of every resource name.')
@allowed([
  'dev'
  'prod'
])
param environmentName string

param location string = resourceGroup().location

@description('Prefix of resource names.')
@maxLength(10)
param namePrefix string = 'trapalert'

// ---- photos and privacy
@description('Days after which photos and raw emails are deleted (photos of people are personal data).')
@minValue(1)
param photoRetentionDays int

@description('Parks that set a shorter retention: {"<park-id>": days}.')
param parkPhotoRetentionDays object

// ---- Function app
@description('Always-ready instances of the Function app (Flex Consumption). Empty in dev (scale to zero).')
param functionAlwaysReady array

param functionMaximumInstanceCount int
param functionInstanceMemoryMB int

@description('App setting names of notification channel secrets, e.g. CHANNEL_SECRET_EARTHRANGER_TOKEN, CHANNEL_SECRET_CMORE_PASSWORD (channels may only name CHANNEL_SECRET_* settings).')
param channelSecretNames array

// ---- scoring service
@allowed([
  'T4'
  'A100'
])
param scoringGpu string

@description('Scoring replicas kept warm: 0 in dev (cold start on first request), at least 1 in prod.')
@minValue(0)
param scoringMinReplicas int

param scoringMaxReplicas int
param scoringConcurrentRequests int

@description('Where the detector runs: gpu (serverless GPU profile) or cpu (Consumption profile; parks without GPU budget run mdv1000-cedar or mdv1000-spruce there, docs/scoring.md).')
@allowed([
  'gpu'
  'cpu'
])
param scoringCompute string

@description('MegaDetector release baked into the scoring image (scoring/catalogue.py); the pipeline builds one image per compute and model that a parameter file names.')
@allowed([
  'mdv5a'
  'mdv5b'
  'mdv1000-redwood'
  'mdv1000-cedar'
  'mdv1000-larch'
  'mdv1000-sorrel'
  'mdv1000-spruce'
])
param scoringModel string

@description('Tag of the build (the pipeline passes $(imageTag)); the image is <registry>/<repository>[-cpu]:<tag>-<model>.')
param scoringImageTag string = ''

@description('Repository of the scoring images in the registry (azure-pipelines.yml imageRepository).')
param scoringImageRepository string = 'trapalert/scoring'

@description('Full image reference, overriding the one built from scoringImageTag (e.g. a hotfix image).')
param scoringImage string = ''

param scoringTargetPort int

@description('Shared container registry (infra/registry.bicep) and its resource group.')
param registryName string
param registryResourceGroup string

// ---- database
param postgresSkuName string
param postgresSkuTier string
param postgresStorageGB int
param postgresBackupRetentionDays int
param postgresHighAvailability bool
param postgresFirewallRules array
param postgresAllowAzureServices bool

@description('Entra ID administrator of the database server (best a group: the people on call and the pipeline\'s service principal, which creates the Function app\'s database principal after each deployment). Display name of the group, user or service principal.')
param postgresEntraAdminName string

@description('Entra object id of that administrator (az ad group show --group <name> --query id -o tsv).')
param postgresEntraAdminObjectId string

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param postgresEntraAdminType string

// ---- Key Vault
param keyVaultPurgeProtection bool

@description('Entra object ids of operators who set secrets (Key Vault Secrets Officer).')
param secretOfficerPrincipalIds array

@secure()
param postgresAdminPassword string

@secure()
param scoringApiKey string

@secure()
param sendgridApiKey string = ''

@secure()
param sendgridWebhookPublicKey string = ''

@secure()
@description('Channel secrets by app setting name; each must be listed in channelSecretNames.')
param channelSecrets object = {}

@description('Client id of the park console\'s Entra app registration with app roles viewer, ranger, operator, admin (infra/console-app-roles.json; docs/console.md). Empty: Easy Auth off, one-time links only.')
param consoleClientId string = ''

// ---- names shared with the application (functions/names.py)
var queueNames = [
  'process-image'
  'send-alert'
  'process-image-bulk'
  'process-image-poison'
  'send-alert-poison'
  'process-image-bulk-poison'
  'process-image-poison-poison'
  'send-alert-poison-poison'
  'process-image-bulk-poison-poison'
]
var containerNames = [
  'images'
  'raw-emails'
  'annotated'
]
var photoContainers = [
  'images'
  'raw-emails'
  'annotated'
]
var parkLayoutContainers = [
  'images'
  'annotated'
]
var inboundRoute = 'inbound/sendgrid'

// App settings whose values are secrets (names from functions/settings.py plus the channel secrets).
var secretSettingNames = concat([
  'DATABASE_URL'
  'SCORING_API_KEY'
  'SENDGRID_API_KEY'
  'SENDGRID_WEBHOOK_PUBLIC_KEY'
  'APPLICATIONINSIGHTS_CONNECTION_STRING'
], channelSecretNames)

var suffix = take(uniqueString(subscription().id, resourceGroup().id, environmentName), 6)
var baseName = '${namePrefix}-${environmentName}'
var tags = {
  application: 'trapalert'
  environment: environmentName
  'azd-env-name': environmentName
}
var names = {
  storage: take(toLower('st${namePrefix}${environmentName}${suffix}'), 24)
  keyVault: take('kv-${namePrefix}-${environmentName}-${suffix}', 24)
  postgres: 'psql-${baseName}-${suffix}'
  functionApp: 'func-${baseName}-${suffix}'
  monitoring: baseName
  scoring: 'scoring-${baseName}'
}

module network 'modules/network.bicep' = {
  name: 'network'
  params: {
    location: location
    name: baseName
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    name: names.monitoring
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    name: names.storage
    containers: containerNames
    queues: queueNames
    photoContainers: photoContainers
    parkLayoutContainers: parkLayoutContainers
    photoRetentionDays: photoRetentionDays
    parkPhotoRetentionDays: parkPhotoRetentionDays
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    name: names.keyVault
    tags: tags
    enablePurgeProtection: keyVaultPurgeProtection
    secretOfficerPrincipalIds: secretOfficerPrincipalIds
    appInsightsName: monitoring.outputs.appInsightsName
    scoringApiKey: scoringApiKey
    sendgridApiKey: sendgridApiKey
    sendgridWebhookPublicKey: sendgridWebhookPublicKey
    channelSecrets: channelSecrets
  }
}

// ---- database connection budget
// max_connections of each server size (Azure Database for PostgreSQL flexible server, "Limits"); an unknown
// size fails the deployment here instead of overcommitting the server. Azure keeps 15 of them for
// replication and monitoring; 5 are left for migrations, the pipeline and operators (port 5432).
var postgresMaxConnectionsBySku = {
  Standard_B1ms: 50
  Standard_B2s: 429
  Standard_B2ms: 859
  Standard_B4ms: 1718
  Standard_D2ds_v5: 859
  Standard_D4ds_v5: 1718
  Standard_D8ds_v5: 3437
  Standard_D16ds_v5: 5000
  Standard_E2ds_v5: 1718
  Standard_E4ds_v5: 3437
}
var postgresMaxConnections = postgresMaxConnectionsBySku[postgresSkuName]
var postgresReservedConnections = 15 + 5
// What the Function app may hold when scaled out to its maximum, and so its pool per instance:
//   appConnections    = max_connections - 15 (Azure) - 5 (operators)
//   DATABASE_POOL_MAX = min(32, appConnections / functionMaximumInstanceCount)   (integer division)
//   dev  B1ms     50 connections,  15 instances:  30 / 15  -> 2 per instance
//   prod D2ds_v5 859 connections, 100 instances: 839 / 100 -> 8 per instance
// so instances x DATABASE_POOL_MAX <= appConnections (tests/infra checks it for each parameter file). With
// PgBouncer (General Purpose and up) its server pool is appConnections too: clients beyond it wait in
// PgBouncer, they are not refused. 32 caps what one instance's worker threads could use; 0 fails the
// deployment (functionapp.bicep @minValue(1)): then lower the instances or take a larger server.
var postgresAppConnections = postgresMaxConnections - postgresReservedConnections
var databasePoolMax = min(32, postgresAppConnections / functionMaximumInstanceCount)

module postgres 'modules/postgres.bicep' = {
  name: 'postgres'
  params: {
    location: location
    name: names.postgres
    tags: tags
    skuName: postgresSkuName
    skuTier: postgresSkuTier
    storageSizeGB: postgresStorageGB
    backupRetentionDays: postgresBackupRetentionDays
    highAvailability: postgresHighAvailability
    administratorPassword: postgresAdminPassword
    functionOutboundIp: network.outputs.outboundIp
    firewallRules: postgresFirewallRules
    allowAzureServices: postgresAllowAzureServices
    keyVaultName: keyVault.outputs.name
    entraAdminName: postgresEntraAdminName
    entraAdminObjectId: postgresEntraAdminObjectId
    entraAdminType: postgresEntraAdminType
    appRoleName: names.functionApp
    pgbouncerPoolSize: postgresAppConnections
  }
}

// The image the pipeline built for this environment's compute and model (azure-pipelines.yml, Build stage).
var scoringRepository = (scoringCompute == 'cpu') ? '${scoringImageRepository}-cpu' : scoringImageRepository
var scoringImageRef = empty(scoringImage) ? '${registryName}.azurecr.io/${scoringRepository}:${scoringImageTag}-${scoringModel}' : scoringImage

module scoring 'modules/scoring.bicep' = {
  name: 'scoring'
  params: {
    location: location
    name: names.scoring
    tags: tags
    infrastructureSubnetId: network.outputs.containerAppsSubnetId
    vnetId: network.outputs.vnetId
    logAnalyticsWorkspaceName: monitoring.outputs.workspaceName
    gpu: scoringGpu
    compute: scoringCompute
    model: scoringModel
    image: scoringImageRef
    registryServer: '${registryName}.azurecr.io'
    registryName: registryName
    registryResourceGroup: registryResourceGroup
    targetPort: scoringTargetPort
    minReplicas: scoringMinReplicas
    maxReplicas: scoringMaxReplicas
    concurrentRequests: scoringConcurrentRequests
    keyVaultName: keyVault.outputs.name
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    name: names.functionApp
    tags: tags
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    subnetId: network.outputs.functionsSubnetId
    scoringUrl: scoring.outputs.url
    consoleClientId: consoleClientId
    secretSettingNames: secretSettingNames
    alwaysReady: functionAlwaysReady
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
    databasePoolMax: databasePoolMax
  }
  dependsOn: [
    postgres
  ]
}

// Entra ID sign-in for the park console (docs/console.md); without a client id the console takes only
// one-time links (`trapalert console login-url`, the audited break-glass path).
module consoleAuth 'modules/console-auth.bicep' = if (!empty(consoleClientId)) {
  name: 'console-auth'
  params: {
    siteName: functionApp.outputs.name
    consoleClientId: consoleClientId
  }
}

@description('Give this URL to SendGrid Inbound Parse (Settings > Inbound Parse > Destination URL).')
output sendgridWebhookUrl string = 'https://${functionApp.outputs.defaultHostName}/api/${inboundRoute}'
output functionAppName string = functionApp.outputs.name
output scoringAppName string = scoring.outputs.appName
output scoringUrl string = scoring.outputs.url
output scoringWorkloadProfile string = scoring.outputs.workloadProfileType
output scoringImageRef string = scoringImageRef
output keyVaultName string = keyVault.outputs.name
output storageAccountName string = storage.outputs.name
output postgresServerName string = postgres.outputs.serverName
output postgresFqdn string = postgres.outputs.fqdn
output postgresDatabaseName string = postgres.outputs.databaseName
output postgresAdministratorLogin string = postgres.outputs.administratorLogin
output postgresAppRoleName string = postgres.outputs.appRoleName
output postgresEntraAdminName string = postgresEntraAdminName
output postgresAppPort int = postgres.outputs.appPort
output functionAppPrincipalId string = functionApp.outputs.principalId
output databasePoolMax int = databasePoolMax
output outboundIp string = network.outputs.outboundIp
output databaseUrlSecretName string = kvSecretName('DATABASE_URL')
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = '${registryName}.azurecr.io'
