// Flex Consumption Function app running function_app.py with the user-assigned identity.
// App setting names are exactly the ones shared/settings.py reads.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param keyVaultUri string
param keyVaultName string
param appInsightsConnectionString string
param bcTenantId string
param bcClientId string
param bcEnvironment string
param bcAuthMode string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // Host storage and the app's own queues/tables, both through the managed identity (no keys).
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    JobsStorage__credential: 'managedidentity'
    JobsStorage__clientId: identityClientId
    JobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    JobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    KEY_VAULT_URL: keyVaultUri
    BC_AUTH_MODE: bcAuthMode
    BC_TENANT_ID: bcTenantId
    BC_CLIENT_ID: bcClientId
    // Static secret: an app-setting reference is fine (re-read every 24 h). The token set is read at runtime.
    BC_CLIENT_SECRET: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=bc-client-secret)'
    BC_REDIRECT_URI: 'https://${site.properties.defaultHostName}/api/auth/callback'
    BC_ENVIRONMENT: bcEnvironment
    BC_TOKEN_REFRESH_SCHEDULE: '0 0 * * * *'
    // The job pipeline (defaults in shared/settings.py, spelled out so ops see them in the portal).
    BC_TABLE_PREFIX: 'bc'
    BC_RESULTS_QUEUE: 'bc-results'
    BC_JOB_MAX_ATTEMPTS: '8'
    BC_JOB_DEFAULT_DEADLINE_HOURS: '24'
  }
}

output name string = site.name
