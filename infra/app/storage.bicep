// Storage for the host (timer locks, deployment package) and the app (job queue, job/lease/throttle tables).
// Shared-key access is off: the app reaches it with its managed identity only.
param name string
param location string
param tags object
@description('BC_TABLE_PREFIX: the first letters of every table the app uses.')
param tablePrefix string = 'bc'
@description('BC_RESULTS_QUEUE: where job reports go.')
param resultsQueueName string = 'bc-results'
@description('Replication: zone-redundant by default (job rows, leases and the throttle row survive a zone outage).')
@allowed(['Standard_ZRS', 'Standard_GZRS', 'Standard_RAGZRS', 'Standard_GRS', 'Standard_RAGRS'])
param skuName string = 'Standard_ZRS'

var deploymentContainerName = 'app-package-${take(name, 32)}'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: no VNet in this template: the Flex Consumption app reaches its queues and tables over the public endpoint, authenticated with Entra only (shared keys off). Add VNet integration and private endpoints to deny by default.
  // checkov:skip=CKV_AZURE_206: zone-redundant (Standard_ZRS) by default; geo-replication would copy job rows to a region where no instance of this single-region app runs. Pass skuName Standard_GZRS for a cross-region recovery design.
  // checkov:skip=CKV_AZURE_59: public network access stays enabled for the same reason (no private endpoints); anonymous blob access and shared keys are off.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: skuName }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// The job contract's queues (bcjobs/__init__.py): jobs in, poison, results out. The poison queue is created here
// too so alerts and the poison handler work before the first failure.
resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in ['bc-jobs', 'bc-jobs-poison', resultsQueueName]: {
    parent: queueService
    name: queueName
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// `{BC_TABLE_PREFIX}` + jobs (one row per job), jobaudit (BC interactions), jobitems (a large batch's outcome per
// operation), auth (leases, sign-ins, connection records), throttle (the shared BC budget). The app also creates
// them on first use.
resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for suffix in ['jobs', 'jobaudit', 'jobitems', 'auth', 'throttle']: {
    parent: tableService
    name: '${tablePrefix}${suffix}'
  }
]

output name string = account.name
output deploymentContainerName string = deploymentContainerName
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
