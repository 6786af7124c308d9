// Virtual network of one environment.
//
// Why a network at all: the scoring service is reachable only inside it (internal Container Apps
// environment), and the Function app joins it (Flex Consumption VNet integration) to call the scoring
// service. Outbound internet traffic (SendGrid, EarthRanger, CMORE) leaves through a NAT gateway: new
// subnets get no default outbound access.

@description('Azure region.')
param location string

@description('Name prefix of the network resources.')
param name string

@description('Address space of the virtual network.')
param addressPrefix string = '10.40.0.0/16'

@description('Subnet of the Function app (Flex Consumption VNet integration).')
param functionsSubnetPrefix string = '10.40.0.0/24'

@description('Subnet of the Container Apps environment (workload profiles need /27 or larger).')
param containerAppsSubnetPrefix string = '10.40.2.0/23'

param tags object = {}

resource natIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: 'pip-${name}-nat'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
  }
}

resource nat 'Microsoft.Network/natGateways@2024-05-01' = {
  name: 'ng-${name}'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [
      {
        id: natIp.id
      }
    ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: 'vnet-${name}'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'snet-functions'
        properties: {
          addressPrefix: functionsSubnetPrefix
          defaultOutboundAccess: false
          natGateway: {
            id: nat.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                // Flex Consumption VNet integration uses this delegation (not Microsoft.Web/serverFarms).
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'snet-containerapps'
        properties: {
          addressPrefix: containerAppsSubnetPrefix
          defaultOutboundAccess: false
          natGateway: {
            id: nat.id
          }
          delegations: [
            {
              name: 'container-apps'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
    ]
  }
}

output vnetId string = vnet.id
output functionsSubnetId string = vnet.properties.subnets[0].id
output containerAppsSubnetId string = vnet.properties.subnets[1].id
output outboundIp string = natIp.properties.ipAddress
