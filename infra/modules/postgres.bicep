// PostgreSQL Flexible Server with public access limited by firewall rules: the Function app's outbound IP
// (the NAT gateway of the network), operator ranges from the parameter file, and nothing else. The pipeline
// opens a rule for its agent only while it runs migrations. TLS is required (server default).
//
// Authentication: Microsoft Entra ID for the application. The Function app connects as its own database
// role, named like the app, with its managed identity's access token as the password (DATABASE_AUTH=entra,
// functions/db). That role is created after deployment by the Entra administrator below
// (pgaadauth_create_principal_with_oid; infra/pipelines/deploy-steps.yml, docs/deploy.md). Password
// authentication stays on for the administrator login only (migrations, break-glass); its password lives
// in the pipeline's variable group and nowhere else: DATABASE_URL in Key Vault names the app's role and no
// password.
//
// Connections: PgBouncer (port 6432, transaction pooling) where the tier offers it (General Purpose and
// Memory Optimized, not Burstable); its server pool for the app is the app's share of max_connections
// (main.bicep, "connection budget").

import { kvSecretName } from 'naming.bicep'

param location string
param name string
param tags object = {}

param skuName string
@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
param skuTier string
param storageSizeGB int
param backupRetentionDays int
param highAvailability bool

@description('Database of the application.')
param databaseName string = 'trapalert'

param administratorLogin string = 'trapalert_admin'

@secure()
param administratorPassword string

@description('Public IP the Function app leaves from (NAT gateway).')
param functionOutboundIp string

@description('Extra firewall rules: [{"name": "office", "start": "203.0.113.10", "end": "203.0.113.10"}].')
param firewallRules array = []

@description('Allow every Azure service (0.0.0.0 rule). Off by default: the rules above are enough.')
param allowAzureServices bool = false

@description('Key Vault that receives the DATABASE_URL secret.')
param keyVaultName string

@description('Entra ID administrator of the server: display name of the group, user or service principal.')
param entraAdminName string

@description('Entra object id of that administrator.')
param entraAdminObjectId string

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param entraAdminType string

@description('Database role of the Function app: the name of its system-assigned managed identity (the app name).')
param appRoleName string

@description('Server connections PgBouncer may open for the app (its share of max_connections, main.bicep).')
@minValue(1)
param pgbouncerPoolSize int

// Azure offers the built-in PgBouncer on General Purpose and Memory Optimized servers only.
var pgbouncerEnabled = skuTier != 'Burstable'
// The app goes through PgBouncer where there is one.
var appPort = pgbouncerEnabled ? 6432 : 5432

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    version: '16'
    administratorLogin: administratorLogin
    administratorLoginPassword: administratorPassword
    storage: {
      storageSizeGB: storageSizeGB
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: backupRetentionDays
      geoRedundantBackup: 'Disabled'
    }
    highAvailability: {
      mode: highAvailability ? 'ZoneRedundant' : 'Disabled'
    }
    network: {
      publicNetworkAccess: 'Enabled'
    }
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: 'Enabled' // the administrator login only (migrations, break-glass); the app uses Entra
      tenantId: subscription().tenantId
    }
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
}

// The server accepts one change at a time: the administrator and the parameters are applied in sequence.
resource entraAdmin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = {
  parent: server
  name: entraAdminObjectId
  properties: {
    principalName: entraAdminName
    principalType: entraAdminType
    tenantId: subscription().tenantId
  }
  dependsOn: [
    database
  ]
}

resource pgbouncer 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = if (pgbouncerEnabled) {
  parent: server
  name: 'pgbouncer.enabled'
  properties: {
    value: 'true'
    source: 'user-override'
  }
  dependsOn: [
    entraAdmin
  ]
}

// Server connections per user/database pair: the app's role and database are one pair, so PgBouncer never
// holds more than the app's share of max_connections; more clients wait in PgBouncer instead of failing.
resource pgbouncerPool 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = if (pgbouncerEnabled) {
  parent: server
  name: 'pgbouncer.default_pool_size'
  properties: {
    value: string(pgbouncerPoolSize)
    source: 'user-override'
  }
  dependsOn: [
    pgbouncer
  ]
}

resource functionRule 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = {
  parent: server
  name: 'function-app-outbound'
  properties: {
    startIpAddress: functionOutboundIp
    endIpAddress: functionOutboundIp
  }
}

resource extraRules 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = [for r in firewallRules: {
  parent: server
  name: r.name
  properties: {
    startIpAddress: r.start
    endIpAddress: r.end
  }
  dependsOn: [
    functionRule
  ]
}]

resource azureServicesRule 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = if (allowAzureServices) {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// The app's connection: its own role, PgBouncer's port, TLS, and no password (the token is the password).
resource databaseUrl 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: kvSecretName('DATABASE_URL')
  properties: {
    value: 'postgresql://${uriComponent(appRoleName)}@${server.properties.fullyQualifiedDomainName}:${appPort}/${databaseName}?sslmode=require'
  }
}

output serverName string = server.name
output fqdn string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
output administratorLogin string = administratorLogin
output appRoleName string = appRoleName
output appPort int = appPort
output pgbouncerEnabled bool = pgbouncerEnabled
