// Key Vault (RBAC authorization) holding every secret of the Function app and the scoring service.
//
// Secrets written here come from secure deployment parameters (pipeline secret variables). A secret whose
// parameter is empty is not touched, so an operator may set it once with `az keyvault secret set` and later
// deployments leave it alone. DATABASE_URL is written by postgres.bicep (it knows the password and host).

import { kvSecretName } from 'naming.bicep'

param location string
param name string
param tags object = {}

@description('Enable purge protection (cannot be turned off again; use in prod).')
param enablePurgeProtection bool

@description('Entra object ids (users or groups) that may read and write secrets (Key Vault Secrets Officer).')
param secretOfficerPrincipalIds array = []

@description('Application Insights component whose connection string is stored as a secret.')
param appInsightsName string

@secure()
@description('Shared key between the Function app and the scoring service.')
param scoringApiKey string

@secure()
param sendgridApiKey string = ''

@secure()
@description('Public key of the SendGrid signed event webhook (not secret, but rotated without a deployment).')
param sendgridWebhookPublicKey string = ''

@secure()
@description('Channel secrets by app setting name, e.g. {"CHANNEL_SECRET_EARTHRANGER_TOKEN": "..."}; empty values are skipped.')
param channelSecrets object = {}

var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: enablePurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource officers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in secretOfficerPrincipalIds: {
  scope: vault
  name: guid(vault.id, p, keyVaultSecretsOfficer)
  properties: {
    principalId: p
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
  }
}]

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource appInsightsSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: kvSecretName('APPLICATIONINSIGHTS_CONNECTION_STRING')
  properties: {
    value: appInsights.properties.ConnectionString
  }
}

resource scoringKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: kvSecretName('SCORING_API_KEY')
  properties: {
    value: scoringApiKey
  }
}

resource sendgridKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(sendgridApiKey)) {
  parent: vault
  name: kvSecretName('SENDGRID_API_KEY')
  properties: {
    value: sendgridApiKey
  }
}

resource sendgridWebhookKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(sendgridWebhookPublicKey)) {
  parent: vault
  name: kvSecretName('SENDGRID_WEBHOOK_PUBLIC_KEY')
  properties: {
    value: sendgridWebhookPublicKey
  }
}

resource channelSecretValues 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for s in items(channelSecrets): if(!empty(s.value)) {
  parent: vault
  name: kvSecretName(s.key)
  properties: {
    value: s.value
  }
}]

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
