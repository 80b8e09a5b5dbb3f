// Flex Consumption Function app running function_app.py with the user-assigned identity.
// App setting names are exactly the ones shared/settings/model.py reads (tests/unit/infra checks both ways).
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

@allowed(['secret', 'federated'])
@description('BC_CREDENTIAL: secret (Key Vault secret bc-client-secret) or federated (no secret: the identity above is a federated credential of the BC app registration; docs/operations.md).')
param bcCredential string
param bcCompanyName string
param tablePrefix string
param resultsQueueName string

@minValue(1)
@maxValue(5)
@description('BC_MAX_IN_FLIGHT: concurrent BC requests of the identity across all instances (BC allows 5).')
param bcMaxInFlight int

@minValue(1)
@maxValue(1000)
@description('Flex Consumption maximumInstanceCount, per function group (see the comment above the site).')
param maximumInstanceCount int

@secure()
@description('BC_REAUTH_WEBHOOK_URL: POSTed once when an admin must sign in again. Empty for none.')
param bcReauthWebhookUrl string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption keeps two always-ready instances per function group when zone redundant (billed around the clock); this queue-driven app scales from zero. Set zoneRedundant: true where the region supports it and the cost is wanted.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

// maximumInstanceCount is Flex Consumption's cap on on-demand instances PER FUNCTION GROUP: jobs_process,
// jobs_poison, each timer and the HTTP group each scale to it on their own (Azure/azure-rest-api-specs PR #45083,
// "per function group"; learn.microsoft.com/azure/azure-functions/flex-consumption-plan, "Per-function scaling").
// The docs' lowest allowed maximum is 40 and the highest 1000 (same page, "Considerations"); values under 40 work
// only in a few regions, in preview (Azure/azure-functions-host#10523; MicrosoftDocs/azure-docs PR #128255), so
// the default is 40 and the cap is its own parameter, not BC_MAX_IN_FLIGHT. BC's limits never rest on the instance
// count: the throttle (shared/bc/throttle) is coordinated through one Table row, and an instance beyond the 5 BC
// slots holds its deliveries instead of bouncing them (docs/architecture.md, "More instances than BC slots").
// Within an instance host.json lets up to 24 jobs run at once (batchSize 16 + newBatchThreshold 8); they wait
// in-process for the instance's slots and its share of the rate (6000 per 5 minutes less the margin: 19
// requests/s for all instances together).
resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: public by design: the status page, the sign-in start and the job front door are called with function keys, and Entra's sign-in redirect reaches /api/auth/callback through the admin's browser. Put Front Door/APIM or private endpoints in front where the network requires it.
  // checkov:skip=CKV_AZURE_17: callers authenticate with function keys; the sign-in callback is opened by a browser redirect from Entra, which cannot present a client certificate.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero on queue length; always-ready instances would bill around the clock for an integration that is idle most of the day. Retries are queue redeliveries, not instance failover.
  // checkov:skip=CKV_AZURE_213: the App Service health check (instance eviction) is not available on Flex Consumption; liveness is GET /api/health and failures raise the bc-function-failures alert.
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
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.11' }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // This is the `appsettings` config resource, not the site's web config: checkov applies its siteConfig checks to
  // every Microsoft.Web/sites/config. The real ones are met on the site (httpsOnly, TLS 1.2, FTPS off, HTTP/2).
  // checkov:skip=CKV_AZURE_13: App Service Authentication is a web-config property; the functions use function keys (and the callback a one-time sign-in state).
  // checkov:skip=CKV_AZURE_63: HTTP logging is a web-config property; requests and failures go to Application Insights.
  // checkov:skip=CKV_AZURE_65: detailed error pages are a web-config property and would only show errors to callers.
  // checkov:skip=CKV_AZURE_66: failed request tracing is a web-config property (IIS, Windows); this is a Linux Flex Consumption app.
  // checkov:skip=CKV_AZURE_80: .NET Framework version does not apply: the app runs Python 3.11.
  // checkov:skip=CKV_AZURE_88: Azure Files content shares are not used by Flex Consumption (the package is in a blob container).
  // checkov:skip=CKV_AZURE_222: public network access is a site property; see the site above.
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
    // Telemetry: shared/telemetry configures Azure Monitor at cold start; Entra-only ingestion as this identity.
    // Not PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: the worker would configure it a second time.
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // Token lifecycle.
    KEY_VAULT_URL: keyVaultUri
    KEY_VAULT_CREDENTIAL: 'managed_identity'
    KEY_VAULT_VERIFY_CHALLENGE_RESOURCE: 'true'
    BC_AUTH_MODE: bcAuthMode
    BC_CONNECTION_NAME: 'default'
    BC_TENANT_ID: bcTenantId
    BC_CLIENT_ID: bcClientId
    // secret: a Key Vault reference (re-read every 24 h). federated: the app's user-assigned identity (JobsStorage__clientId;
    // BC_MANAGED_IDENTITY_CLIENT_ID falls back to it) presents its token for api://AzureADTokenExchange as the client
    // assertion, and there is no secret anywhere: the empty value counts as unset (shared/settings/model.py).
    BC_CREDENTIAL: bcCredential
    BC_CLIENT_SECRET: (bcCredential == 'federated') ? '' : '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=bc-client-secret)'
    BC_REDIRECT_URI: 'https://${site.properties.defaultHostName}/api/auth/callback'
    BC_TOKEN_REFRESH_SCHEDULE: '0 0 * * * *'
    BC_REAUTH_WEBHOOK_URL: bcReauthWebhookUrl
    // Business Central and the throttle (BC's per-identity limits; shared/settings/model.py has the same defaults). The
    // public cloud's BC_API_BASE_URL, BC_AUTHORITY_HOST and BC_SCOPE are the code's defaults.
    BC_ENVIRONMENT: bcEnvironment
    BC_COMPANY_NAME: bcCompanyName
    BC_RATE_LIMIT_REQUESTS: '6000'
    BC_RATE_LIMIT_WINDOW_SECONDS: '300'
    BC_RATE_SAFETY_MARGIN: '0.05'
    BC_MAX_IN_FLIGHT: string(bcMaxInFlight)
    BC_REQUEST_TIMEOUT_SECONDS: '60'
    // The job pipeline.
    BC_TABLE_PREFIX: tablePrefix
    BC_RESULTS_QUEUE: resultsQueueName
    BC_JOB_MAX_ATTEMPTS: '8'
    BC_JOB_BACKOFF_BASE_SECONDS: '5'
    BC_JOB_BACKOFF_CAP_SECONDS: '900'
    BC_JOB_AUTHORIZATION_RECHECK_SECONDS: '300'
    BC_JOB_DEFAULT_DEADLINE_HOURS: '24'
    BC_JOB_CLAIM_LEASE_SECONDS: '660'
    // One run's time budget (a long batch continues in a new delivery); with BC_REQUEST_TIMEOUT_SECONDS well under
    // host.json's functionTimeout, which restarts the whole worker (shared/settings/checks.py checks the two together).
    BC_JOB_TIME_BUDGET_SECONDS: '300'
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
