// PostgreSQL Flexible Server with public access limited by firewall rules: the Function app's outbound IP
// (the NAT gateway of the network), operator ranges from the parameter file, and nothing else. The pipeline
// opens a rule for its agent only while it runs migrations. TLS is required (server default).
// Writes DATABASE_URL (with the password) into Key Vault: the password exists nowhere else.

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
      passwordAuth: 'Enabled'
      activeDirectoryAuth: 'Disabled'
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

resource databaseUrl 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: kvSecretName('DATABASE_URL')
  properties: {
    value: 'postgresql://${administratorLogin}:${uriComponent(administratorPassword)}@${server.properties.fullyQualifiedDomainName}:5432/${databaseName}?sslmode=require'
  }
}

output serverName string = server.name
output fqdn string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
