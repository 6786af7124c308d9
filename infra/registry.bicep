// The container registry shared by dev and prod, deployed once into its own resource group (see
// docs/deploy.md). The pipeline builds each scoring image once, pushes it here, and deploys the same tag to
// dev and then prod. No admin user: pushes use the pipeline's service connection, pulls use AcrPull.

param location string = resourceGroup().location

@description('Registry name, 5-50 letters and digits, globally unique.')
@minLength(5)
@maxLength(50)
param name string

@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param sku string = 'Standard'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: location
  sku: {
    name: sku
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

output loginServer string = registry.properties.loginServer
