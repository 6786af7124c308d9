// Storage account of the pipeline: blob containers for photos and emails, the work queues and their
// poison queues, and the lifecycle rule that deletes photos after the retention period.
//
// No shared key: every client (Functions host, app code, operators) uses Microsoft Entra ID, so there is
// no account key to leak into an app setting.

param location string

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Blob containers of the application (from functions/names.py).')
param containers array

@description('Queues of the application, work queues and their poison queues (from functions/names.py).')
param queues array

@description('Containers holding photos or emails with photos: the lifecycle rule deletes their blobs.')
param photoContainers array

@description('Containers laid out as <park>/<camera>/...: per-park retention applies to them.')
param parkLayoutContainers array

@description('Default retention of photos (days). Photos of people are personal data.')
@minValue(1)
param photoRetentionDays int

@description('Shorter retention for some parks: {"<park-id>": days}. A longer value is capped at photoRetentionDays.')
param parkPhotoRetentionDays object = {}

@description('Container Flex Consumption deploys the app package to (infra only, not an app container).')
param deploymentContainerName string = 'app-package'

param tags object = {}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource appContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for c in containers: {
  parent: blobService
  name: c
  properties: {
    publicAccess: 'None'
  }
}]

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource appQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for q in queues: {
  parent: queueService
  name: q
}]

// Lifecycle management: one default rule over every photo container, plus one rule per park that chose a
// shorter period. When several rules delete the same blob, the earliest deletion wins, so a park can only
// shorten the default (min() below keeps the parameter honest).
var defaultRule = {
  enabled: true
  name: 'photosDefaultRetention'
  type: 'Lifecycle'
  definition: {
    filters: {
      blobTypes: [
        'blockBlob'
      ]
      prefixMatch: [for c in photoContainers: '${c}/']
    }
    actions: {
      baseBlob: {
        delete: {
          daysAfterCreationGreaterThan: photoRetentionDays
        }
      }
    }
  }
}

var parkRules = map(items(parkPhotoRetentionDays), park => {
  enabled: true
  name: 'park${replace(replace(park.key, '-', ''), '_', '')}Retention'
  type: 'Lifecycle'
  definition: {
    filters: {
      blobTypes: [
        'blockBlob'
      ]
      prefixMatch: map(parkLayoutContainers, c => '${c}/${park.key}/')
    }
    actions: {
      baseBlob: {
        delete: {
          daysAfterCreationGreaterThan: min(park.value, photoRetentionDays)
        }
      }
    }
  }
})

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: concat([
        defaultRule
      ], parkRules)
    }
  }
  dependsOn: [
    appContainers
  ]
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
