// Log Analytics + Application Insights (Entra-only ingestion), the alerts ops act on, their action group and the
// operations workbook. Every alert has a runbook entry in docs/operations.md (same name). Queries read the app's
// OpenTelemetry metrics (customMetrics; names in shared/telemetry/instruments.py), its structured logs (traces,
// customDimensions.event) and the host's request telemetry (requests).
param workspaceName string
param appInsightsName string
param location string
param tags object

@description('Email that receives alerts. Empty for none.')
param alertEmail string

@secure()
@description('Webhook (e.g. a Teams or on-call tool URL) that receives alerts in the common alert schema. Empty for none.')
param alertWebhookUrl string

@description('Alert when more than this percentage of the jobs that ended in 15 minutes failed (at least 5 jobs).')
param jobFailureRatePercent int

@description('Alert when BC answered 429 more often than this in each of three consecutive 5-minute windows.')
param throttledRequestsPer5Minutes int

@description('Alert when the access token expires within this many minutes and no refresh succeeded for 75 minutes.')
param tokenExpiryWarningMinutes int

@description('Alert when the oldest visible message of bc-jobs is older than this many minutes.')
param queueAgeAlertMinutes int

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

var notify = !empty(alertEmail) || !empty(alertWebhookUrl)

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (notify) {
  name: 'ag-${appInsightsName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'bc-ops'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      { name: 'ops-email', emailAddress: alertEmail, useCommonAlertSchema: true }
    ]
    webhookReceivers: empty(alertWebhookUrl) ? [] : [
      { name: 'ops-webhook', serviceUri: alertWebhookUrl, useCommonAlertSchema: true }
    ]
  }
}

var failedStates = '"failed", "dead_lettered", "expired"'

// name, severity, what it means (the runbook has what to do), query, evaluation, and how the query result counts:
// `measure` empty: the number of rows (> 0 fires); else the named column summed per window (> threshold fires).
// `dimensions`: query columns the alert is split by (one alert per value, which its payload names). Alerts about
// one BC connection split by `connection` (the custom dimension shared/auth logs and every job metric carries), so
// one connection's trouble fires its own alert, named in the payload, and does not hide another's.
var alerts = [
  {
    name: 'bc-admin-needed'
    severity: 1
    description: 'A BC connection (named by the alert) needs an admin: re-authorization required (sign in again) or the app credentials were rejected.'
    // shared/auth/health.py (HealthRecorder) logs this once per incident, at error level, with these custom dimensions.
    query: 'traces | where severityLevel >= 3 and tostring(customDimensions.event) == "auth.admin_needed" | project timestamp, connection = tostring(customDimensions.connection)'
    frequency: 'PT5M'
    window: 'PT15M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: [
      { name: 'connection', operator: 'Include', values: ['*'] }
    ]
  }
  {
    name: 'bc-identity-out'
    severity: 2
    description: 'An identity of a BC connection pool (both named by the alert) left the pool: its credentials were refused or its consent revoked. Its jobs go to the other identities of the pool; it rejoins once it gets a token again.'
    // shared/jobs/pool.py (IdentityPool) logs this at error level, with connection and identity, in each process
    // where the identity leaves (issue 23; reference bc-webhooks-connections-identities.md, (c) C2 point 6).
    query: 'traces | where severityLevel >= 3 and tostring(customDimensions.event) == "jobs.identity_left" | project timestamp, connection = tostring(customDimensions.connection), identity = tostring(customDimensions.identity)'
    frequency: 'PT5M'
    window: 'PT15M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: [
      { name: 'connection', operator: 'Include', values: ['*'] }
      { name: 'identity', operator: 'Include', values: ['*'] }
    ]
  }
  {
    name: 'bc-jobs-poisoned'
    severity: 2
    description: 'A job message reached bc-jobs-poison: the host gave up after 5 failed deliveries; the job is dead-lettered.'
    query: 'union (traces | where tostring(customDimensions.event) == "jobs.dead_lettered"), (traces | where message has "Moving message to queue" and message has "-poison"), (customMetrics | where name == "bc.queue.depth" and tostring(customDimensions.queue) == "bc-jobs-poison" and value > 0)'
    frequency: 'PT5M'
    window: 'PT15M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: []
  }
  {
    name: 'bc-dead-letter-failed'
    severity: 1
    description: 'A job reached bc-jobs-poison but could not be recorded as dead-lettered on the last delivery the host gives it (bc-jobs-poison has no poison queue): the alert names the job; redriven=True means a copy retries later, False that the message waits on bc-jobs-poison until its TTL.'
    // shared/jobs/deadletter.py (PoisonHandler) logs this at error level with job_id, message_id and redriven.
    query: 'traces | where severityLevel >= 3 and tostring(customDimensions.event) == "jobs.dead_letter_failed" | project timestamp, job_id = tostring(customDimensions.job_id), redriven = tostring(customDimensions.redriven)'
    frequency: 'PT5M'
    window: 'PT15M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: [
      { name: 'job_id', operator: 'Include', values: ['*'] }
    ]
  }
  {
    name: 'bc-watch-unsubscribed'
    severity: 2
    description: 'A watch of the change feed has no live BC webhook subscription after the subscription manager ran (BC refused to create or renew it): only reconciliation sees its changes, up to an interval late.'
    // shared/triggers/change_timers.py logs this at error level with connection and watch (issue 22).
    query: 'traces | where severityLevel >= 3 and tostring(customDimensions.event) == "changes.watch_unsubscribed" | project timestamp, connection = tostring(customDimensions.connection), watch = tostring(customDimensions.watch)'
    frequency: 'PT15M'
    window: 'PT30M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: [
      { name: 'connection', operator: 'Include', values: ['*'] }
    ]
  }
  {
    name: 'bc-reconcile-behind'
    severity: 2
    description: 'A watch of the change feed was reconciled after more than an hour without a completed reconciliation: gaps the webhooks left were healed late (see changes.reconcile_failed for why the runs failed).'
    // shared/triggers/change_timers.py logs this at error level with connection and watch (issue 22).
    query: 'traces | where severityLevel >= 3 and tostring(customDimensions.event) in ("changes.reconcile_behind", "changes.reconcile_failed") | project timestamp, connection = tostring(customDimensions.connection), watch = tostring(customDimensions.watch)'
    frequency: 'PT15M'
    window: 'PT30M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: [
      { name: 'connection', operator: 'Include', values: ['*'] }
    ]
  }
  {
    name: 'bc-subscriptions-near-limit'
    severity: 2
    description: 'A BC environment holds 180 or more of its 200 webhook subscriptions (ours and every other subscriber): new watches will soon get none.'
    // bc.subscriptions.environment: noted by the subscription manager each run (shared/changes/upkeep.py).
    query: 'customMetrics | where name == "bc.subscriptions.environment" | summarize used = max(value) by connection = tostring(customDimensions.connection) | where used >= 180'
    frequency: 'PT15M'
    window: 'PT30M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: [
      { name: 'connection', operator: 'Include', values: ['*'] }
    ]
  }
  {
    name: 'bc-notifications-waiting'
    severity: 2
    description: 'The oldest BC notification not yet expanded waited more than 15 minutes on bc-notifications: change events are late (reconciliation will also publish them).'
    query: 'customMetrics | where name == "bc.queue.oldest_age" and tostring(customDimensions.queue) == "bc-notifications" | summarize oldest = max(value) | where oldest > 900'
    frequency: 'PT5M'
    window: 'PT10M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: []
  }
  {
    name: 'bc-job-failure-rate'
    severity: 2
    description: 'More than ${jobFailureRatePercent}% of the jobs of one connection (named by the alert) that ended in the last 15 minutes failed, were dead-lettered or expired.'
    query: 'customMetrics | where name == "bc.jobs.finished" | extend state = tostring(customDimensions.state), connection = tostring(customDimensions.connection) | summarize total = sum(valueSum), failed = sumif(valueSum, state in (${failedStates})) by connection | where total >= 5 and 100.0 * failed / total > ${jobFailureRatePercent}'
    frequency: 'PT5M'
    window: 'PT15M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: [
      { name: 'connection', operator: 'Include', values: ['*'] }
    ]
  }
  {
    name: 'bc-sustained-429'
    severity: 3
    description: 'BC answered the requests of one connection (named by the alert) with 429 more than ${throttledRequestsPer5Minutes} times in each of three consecutive 5-minute windows: the budget is shared with another client or the limits are set too high.'
    query: 'customMetrics | where name == "bc.requests.throttled" | project timestamp, throttled = valueSum, connection = tostring(customDimensions.connection)'
    frequency: 'PT5M'
    window: 'PT5M'
    measure: 'throttled'
    threshold: throttledRequestsPer5Minutes
    periods: 3
    dimensions: [
      { name: 'connection', operator: 'Include', values: ['*'] }
    ]
  }
  {
    name: 'bc-token-expiring'
    severity: 1
    description: 'The access token of a BC connection (named by the alert) expires within ${tokenExpiryWarningMinutes} minutes and no refresh succeeded for 75 minutes: jobs will stop once it expires.'
    query: 'let refreshed = customMetrics | where timestamp > ago(75m) and name == "bc.token.refreshes" and tostring(customDimensions.outcome) == "refreshed" | summarize by connection = tostring(customDimensions.connection); customMetrics | where timestamp > ago(10m) and name == "bc.token.expiry" | summarize seconds_left = min(value) by connection = tostring(customDimensions.connection) | where seconds_left < ${tokenExpiryWarningMinutes * 60} | join kind=leftanti refreshed on connection'
    frequency: 'PT5M'
    window: 'PT2H'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: [
      { name: 'connection', operator: 'Include', values: ['*'] }
    ]
  }
  {
    name: 'bc-queue-age'
    severity: 2
    description: 'The oldest visible message of bc-jobs waited more than ${queueAgeAlertMinutes} minutes: jobs are not being picked up fast enough.'
    query: 'customMetrics | where name == "bc.queue.oldest_age" and tostring(customDimensions.queue) == "bc-jobs" | summarize oldest = max(value) | where oldest > ${queueAgeAlertMinutes * 60}'
    frequency: 'PT5M'
    window: 'PT10M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: []
  }
  {
    name: 'bc-function-failures'
    severity: 3
    description: 'Function invocations failed (an unhandled error: storage down, a bug); the host redelivers queue messages.'
    query: 'requests | where success == false'
    frequency: 'PT5M'
    window: 'PT15M'
    measure: ''
    threshold: 0
    periods: 1
    dimensions: []
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
      evaluationFrequency: alert.frequency
      windowSize: alert.window
      scopes: [appInsights.id]
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: empty(alert.measure) ? 'Count' : 'Total'
            metricMeasureColumn: empty(alert.measure) ? null : alert.measure
            dimensions: alert.dimensions
            operator: 'GreaterThan'
            threshold: alert.threshold
            failingPeriods: { numberOfEvaluationPeriods: alert.periods, minFailingPeriodsToAlert: alert.periods }
          }
        ]
      }
      autoMitigate: true
      actions: { actionGroups: notify ? [actionGroup.id] : [] }
    }
  }
]

// The operations workbook (Azure portal > Application Insights > Workbooks): token health, jobs by outcome, BC
// latency and 429s, throttle waits, queue depth, top BC error codes, latest failed jobs with BC's request ids.
resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsName, 'bc-operations-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'BC integration: operations'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: loadTextContent('workbook.json')
  }
}

output appInsightsName string = appInsights.name
output connectionString string = appInsights.properties.ConnectionString
output workbookId string = workbook.id
