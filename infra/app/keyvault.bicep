// Key Vault holding the BC token set (written hourly by the refresh timer) and static secrets
// such as the BC client secret (referenced from app settings). RBAC only, soft delete + purge protection.
param name string
param location string
param tags object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: no VNet in this template: the Flex Consumption app is not a trusted service and reaches the vault over its public endpoint, authorized by Entra RBAC only (no access policies). Add VNet integration and a private endpoint to put a firewall in front.
  // checkov:skip=CKV_AZURE_189: public network access stays enabled for the same reason.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
