// Log Analytics workspace + workspace-based Application Insights.
// Ingestion is Entra-authenticated only (DisableLocalAuth): the connection string locates the resource, the
// app's identity authorizes what it sends. The connection string goes to Key Vault (keyvault-secret module, called from main.bicep), never into an
// app setting as a plain value.

param location string
param name string

@description('Days Log Analytics keeps logs.')
param retentionDays int = 30

param tags object = {}

@description('Refuse telemetry sent with the instrumentation key alone: the Function app (host and worker) ingests with its managed identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING, Monitoring Metrics Publisher role).')
param localAuthDisabled bool = true

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${name}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${name}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: localAuthDisabled
  }
}

output workspaceId string = workspace.id
output workspaceName string = workspace.name
output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
