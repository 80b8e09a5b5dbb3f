// Log Analytics + Application Insights (Entra-only ingestion) and the alerts ops act on.
param workspaceName string
param appInsightsName string
param location string
param tags object
param alertEmail string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${appInsightsName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'bc-ops'
    enabled: true
    emailReceivers: [
      { name: 'ops', emailAddress: alertEmail, useCommonAlertSchema: true }
    ]
  }
}

var alerts = [
  {
    name: 'bc-admin-needed'
    severity: 1
    description: 'The BC connection needs an admin: re-authorization required (sign in again at /api/auth/login) or the app credentials were rejected.'
    // shared/auth/states.py logs this once per incident, at error level, with these custom dimensions.
    query: 'traces | where severityLevel >= 3 and tostring(customDimensions.event) == "auth.admin_needed"'
  }
  {
    name: 'bc-jobs-poisoned'
    severity: 2
    description: 'Jobs reached the poison queue; see the job status endpoint for the recorded reason.'
    query: 'traces | where message has "Moving message to queue" and message has "-poison"'
  }
  {
    name: 'bc-function-failures'
    severity: 3
    description: 'Function invocations are failing.'
    query: 'requests | where success == false'
  }
]

resource logAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for alert in alerts: {
    name: '${alert.name}-${appInsightsName}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: alert.name
      description: alert.description
      severity: alert.severity
      enabled: true
      evaluationFrequency: 'PT5M'
      windowSize: 'PT15M'
      scopes: [appInsights.id]
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: 0
            failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
          }
        ]
      }
      autoMitigate: true
      actions: { actionGroups: empty(alertEmail) ? [] : [actionGroup.id] }
    }
  }
]

output appInsightsName string = appInsights.name
output connectionString string = appInsights.properties.ConnectionString
