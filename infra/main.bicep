// Orchestration only: one resource group and one module per concern (infra/app/*.bicep).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; used in resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Azure region for every resource.')
param location string

@description('Object id of the deploying user; gets data-plane roles for local debugging. Empty to skip.')
param principalId string = ''

@description('Email that receives alerts (re-authorization required, poison jobs, failures). Empty for none.')
param alertEmail string = ''

@description('Entra tenant of the Business Central environment.')
param bcTenantId string = ''

@description('Client id of the Entra app registration used for Business Central.')
param bcClientId string = ''

@description('Business Central environment name, e.g. production or sandbox.')
param bcEnvironment string = 'production'

@allowed(['client_credentials', 'delegated'])
@description('client_credentials (S2S, recommended for unattended integrations) or delegated (admin signs in once).')
param bcAuthMode string = 'client_credentials'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: { name: 'id-${resourceToken}', location: location, tags: tags }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: { name: 'st${resourceToken}', location: location, tags: tags, tablePrefix: 'bc', resultsQueueName: 'bc-results' }
}

module vault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: { name: 'kv-${resourceToken}', location: location, tags: tags }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    alertEmail: alertEmail
  }
}

module function 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    keyVaultUri: vault.outputs.uri
    keyVaultName: vault.outputs.name
    appInsightsConnectionString: monitoring.outputs.connectionString
    bcTenantId: bcTenantId
    bcClientId: bcClientId
    bcEnvironment: bcEnvironment
    bcAuthMode: bcAuthMode
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: vault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
  }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = function.outputs.name
output KEY_VAULT_URL string = vault.outputs.uri
output JobsStorage__queueServiceUri string = storage.outputs.queueEndpoint
output JobsStorage__tableServiceUri string = storage.outputs.tableEndpoint
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
