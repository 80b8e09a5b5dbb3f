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

@description('Email that receives every alert (docs/operations.md lists them). Empty for none.')
param alertEmail string = ''

@secure()
@description('Webhook that receives every alert in the common alert schema (Teams, on-call tool). Empty for none.')
param alertWebhookUrl string = ''

@description('Object id of the application identity that sends jobs: Message Sender on bc-jobs and Table Data Reader on the jobs table only. Empty to skip.')
param appSenderPrincipalId string = ''

@allowed(['ServicePrincipal', 'User', 'Group'])
@description('What appSenderPrincipalId is (a managed identity or app registration is a ServicePrincipal).')
param appSenderPrincipalType string = 'ServicePrincipal'

@description('Entra tenant of the Business Central environment.')
param bcTenantId string = ''

@description('Client id of the Entra app registration used for Business Central.')
param bcClientId string = ''

@description('Business Central environment name, e.g. production or sandbox.')
param bcEnvironment string = 'production'

@allowed(['client_credentials', 'delegated'])
@description('client_credentials (S2S, recommended for unattended integrations) or delegated (admin signs in once).')
param bcAuthMode string = 'client_credentials'

@allowed(['secret', 'federated'])
@description('BC_CREDENTIAL: secret (a client secret in Key Vault, bc-client-secret) or federated (the app\'s user-assigned identity as a federated credential of the app registration: no secret; create the credential with the command in docs/operations.md).')
param bcCredential string = 'secret'

@description('BC_COMPANY_NAME: the company jobs work in when they name none. Empty: the environment\'s only company.')
param bcCompanyName string = ''

@minValue(1)
@maxValue(5)
@description('BC_MAX_IN_FLIGHT: BC requests in flight across all instances (BC allows 5 per identity).')
param bcMaxInFlight int = 5

@minValue(1)
@maxValue(1000)
@description('Flex Consumption maximumInstanceCount, per function group (1000 at most). 40 is allowed in every region; values under 40 only in some regions, in preview (docs/operations.md).')
param maximumInstanceCount int = 40

@secure()
@description('BC_REAUTH_WEBHOOK_URL: POSTed once when an admin must sign in again. Empty for none.')
param bcReauthWebhookUrl string = ''

@minValue(1)
@maxValue(100)
@description('Alert bc-job-failure-rate: percentage of failed jobs among those that ended in 15 minutes.')
param jobFailureRatePercent int = 10

@minValue(1)
@description('Alert bc-sustained-429: 429 answers per 5 minutes, in three consecutive windows.')
param throttledRequestsPer5Minutes int = 20

@minValue(1)
@maxValue(60)
@description('Alert bc-token-expiring: minutes left on the access token with no successful refresh for 75 minutes.')
param tokenExpiryWarningMinutes int = 10

@minValue(5)
@description('Alert bc-queue-age: minutes the oldest visible bc-jobs message may wait.')
param queueAgeAlertMinutes int = 30

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
// BC_TABLE_PREFIX and BC_RESULTS_QUEUE (shared/settings/model.py defaults): the tables and queue storage creates, the
// settings the app reads and the sender's table role all use these.
var tablePrefix = 'bc'
var resultsQueueName = 'bc-results'

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
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    tablePrefix: tablePrefix
    resultsQueueName: resultsQueueName
  }
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
    alertWebhookUrl: alertWebhookUrl
    jobFailureRatePercent: jobFailureRatePercent
    throttledRequestsPer5Minutes: throttledRequestsPer5Minutes
    tokenExpiryWarningMinutes: tokenExpiryWarningMinutes
    queueAgeAlertMinutes: queueAgeAlertMinutes
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
    bcCredential: bcCredential
    bcCompanyName: bcCompanyName
    bcMaxInFlight: bcMaxInFlight
    maximumInstanceCount: maximumInstanceCount
    bcReauthWebhookUrl: bcReauthWebhookUrl
    tablePrefix: tablePrefix
    resultsQueueName: resultsQueueName
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
    appSenderPrincipalId: appSenderPrincipalId
    appSenderPrincipalType: appSenderPrincipalType
    tablePrefix: tablePrefix
  }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = function.outputs.name
output AZURE_FUNCTION_APP_HOST string = function.outputs.defaultHostName
output KEY_VAULT_NAME string = vault.outputs.name
output KEY_VAULT_URL string = vault.outputs.uri
output JobsStorage__queueServiceUri string = storage.outputs.queueEndpoint
output JobsStorage__tableServiceUri string = storage.outputs.tableEndpoint
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
output BC_STATUS_PAGE string = 'https://${function.outputs.defaultHostName}/api/status'
// Delegated mode: the redirect URI to register on the app registration (Authentication → Web); it exists only now.
output BC_REDIRECT_URI string = 'https://${function.outputs.defaultHostName}/api/auth/callback'
// BC_CREDENTIAL=federated: the federated credential to create on the BC app registration (docs/operations.md, federation):
// issuer = the identity's tenant's v2.0 issuer, subject = the identity's principal (object) id.
output BC_FEDERATED_CREDENTIAL_ISSUER string = '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
output BC_FEDERATED_CREDENTIAL_SUBJECT string = identity.outputs.principalId
output BC_WORKBOOK_ID string = monitoring.outputs.workbookId
