// Data-plane roles, one commented assignment each. Role ids are built-in and the same in every tenant.
param storageAccountName string
param keyVaultName string
param appInsightsName string
param appPrincipalId string
param userPrincipalId string
@description('Object id of the application identity that sends jobs (empty: none). It may only enqueue and read job rows.')
param appSenderPrincipalId string
@allowed(['ServicePrincipal', 'User', 'Group'])
param appSenderPrincipalType string
@description('BC_TABLE_PREFIX: the jobs table is `{prefix}jobs`.')
param tablePrefix string

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // host: timer singleton locks, keys, deployment package
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // job queue trigger, re-enqueue, poison queue
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // job rows, refresh lease, throttle permits
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // the refresh timer writes the token set
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Entra-only App Insights ingestion
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a' // app sender: put jobs on bc-jobs, nothing else
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6' // app sender: read job rows (state, result, error)
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var storageRoles = [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]

resource appStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in storageRoles: {
    name: guid(storage.id, appPrincipalId, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: appPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource appVaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appMetricsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The deploying developer gets the same data access for local debugging against the cloud resources.
var userStorageRoles = empty(userPrincipalId) ? [] : storageRoles

resource userStorageAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in userStorageRoles: {
    name: guid(storage.id, userPrincipalId, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: userPrincipalId
      principalType: 'User'
    }
  }
]

resource userVaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(vault.id, userPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: userPrincipalId
    principalType: 'User'
  }
}

// The application that sends jobs (bcjobs client, any queue SDK): Message Sender on the bc-jobs queue only and Table
// Data Reader on the jobs table only (bcjobs/README.md). Scoped to those two resources, not the account: it cannot
// read other queues, peek or delete messages, or read the audit, auth and throttle tables.
resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource jobsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: 'bc-jobs'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource jobsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: '${tablePrefix}jobs'
}

resource senderQueueRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(appSenderPrincipalId)) {
  name: guid(jobsQueue.id, appSenderPrincipalId, roles.storageQueueDataMessageSender)
  scope: jobsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: appSenderPrincipalId
    principalType: appSenderPrincipalType
  }
}

resource senderTableRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(appSenderPrincipalId)) {
  name: guid(jobsTable.id, appSenderPrincipalId, roles.storageTableDataReader)
  scope: jobsTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataReader)
    principalId: appSenderPrincipalId
    principalType: appSenderPrincipalType
  }
}
