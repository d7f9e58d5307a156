{{/*
Expand the name of the chart.
*/}}
{{- define "rapport.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name (63 characters at most, the DNS label limit).
If the release name contains the chart name it is used as the full name.
*/}}
{{- define "rapport.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "rapport.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "rapport.labels" -}}
helm.sh/chart: {{ include "rapport.chart" . }}
{{ include "rapport.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rapport
{{- end }}

{{/*
Selector labels shared by every pod of the release.
*/}}
{{- define "rapport.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rapport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Selector labels of the server pods only: the component label keeps the migration
Job's pod out of the Service, the PodDisruptionBudget and the NetworkPolicy.
*/}}
{{- define "rapport.serverSelectorLabels" -}}
{{ include "rapport.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{/*
Name of the service account the server pods use.
*/}}
{{- define "rapport.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rapport.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Service account of the migration Job. A pre-install hook runs before the chart's
ordinary resources exist, so it must not use a ServiceAccount the chart creates.
*/}}
{{- define "rapport.migrationServiceAccountName" -}}
{{- if .Values.migrations.serviceAccountName }}
{{- .Values.migrations.serviceAccountName }}
{{- else if not .Values.serviceAccount.create }}
{{- include "rapport.serviceAccountName" . }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{/*
The container image reference.
*/}}
{{- define "rapport.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
True ("true") when the chart creates the database Secret itself.
*/}}
{{- define "rapport.createDatabaseSecret" -}}
{{- if and (not .Values.demo.enabled) .Values.database.url (not .Values.database.existingSecret) }}true{{ end }}
{{- end }}

{{/*
Name of the Secret holding the database URL.
*/}}
{{- define "rapport.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "rapport.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
Key of the database URL inside that Secret.
*/}}
{{- define "rapport.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey }}
{{- else }}
{{- "DATABASE_URL" }}
{{- end }}
{{- end }}

{{/*
True ("true") when migrations run in the hook Job; otherwise the server migrates on start.
*/}}
{{- define "rapport.migrationJob" -}}
{{- if and .Values.migrations.enabled (not .Values.demo.enabled) }}true{{ end }}
{{- end }}

{{/*
The DATABASE_URL environment entry.
*/}}
{{- define "rapport.databaseEnv" -}}
- name: DATABASE_URL
{{- if .Values.demo.enabled }}
  value: "sqlite:///data/rapport.db?mode=rwc"
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ include "rapport.databaseSecretName" . }}
      key: {{ include "rapport.databaseSecretKey" . }}
{{- end }}
{{- end }}

{{/*
The keys that seal stored secrets, the operator token and the Redis URL, from Secrets the operator manages.
*/}}
{{- define "rapport.secretEnv" -}}
{{- with .Values.secretKeys.existingSecret }}
- name: RAPPORT_SECRET_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.secretKeys.existingSecretKey }}
{{- end }}
{{- with .Values.operatorToken.existingSecret }}
- name: RAPPORT_OPERATOR_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.operatorToken.existingSecretKey }}
{{- end }}
{{- with .Values.redis.existingSecret }}
- name: RAPPORT_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.redis.existingSecretKey }}
{{- end }}
{{- end }}

{{/*
Checks on the values that the schema cannot express; rendering fails with a clear message.
*/}}
{{- define "rapport.validateValues" -}}
{{- $db := .Values.database }}
{{- if .Values.demo.enabled }}
{{- if or $db.url $db.existingSecret }}
{{- fail "rapport: demo.enabled runs on SQLite; unset database.url and database.existingSecret, or turn demo.enabled off to use PostgreSQL" }}
{{- end }}
{{- else }}
{{- if and (not $db.url) (not $db.existingSecret) }}
{{- fail "rapport: a PostgreSQL database is required: set database.url (the chart stores it in a Secret) or database.existingSecret (a Secret you manage, key database.existingSecretKey); or set demo.enabled=true for a single-replica SQLite demo" }}
{{- end }}
{{- if and $db.url $db.existingSecret }}
{{- fail "rapport: set only one of database.url and database.existingSecret" }}
{{- end }}
{{- if and $db.url (not (regexMatch "^postgres(ql)?://" $db.url)) }}
{{- fail "rapport: database.url must be a PostgreSQL URL (postgres://...); SQLite is only for demo.enabled (one replica)" }}
{{- end }}
{{- if not .Values.secretKeys.existingSecret }}
{{- fail "rapport: secretKeys.existingSecret is required with PostgreSQL: a Secret holding RAPPORT_SECRET_KEYS (id:base64 keys, newest first; `rapport secrets new-key` makes one) that seal the stored webhook and identity-verification secrets" }}
{{- end }}
{{- end }}
{{- if and .Values.redis.url .Values.redis.existingSecret }}
{{- fail "rapport: set only one of redis.url and redis.existingSecret" }}
{{- end }}
{{- $budget := add .Values.preStopSleepSeconds .Values.config.shutdownGraceSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $budget) }}
{{- fail (printf "rapport: terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + config.shutdownGraceSeconds (%d), or in-flight calls are cut off on shutdown" (int .Values.terminationGracePeriodSeconds) (int $budget)) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "rapport: autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (kindIs "invalid" .Values.podDisruptionBudget.minAvailable) (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable) }}
{{- fail "rapport: podDisruptionBudget needs minAvailable or maxUnavailable" }}
{{- end }}
{{- end }}
