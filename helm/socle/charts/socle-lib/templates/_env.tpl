{{/*
Environment of a service container: its settings, all under SOCLE_<SERVICE>_.
Takes a dict: root, service, and migration (true for the migration Job, which alone
receives the schema owner's URL). Every name rendered here must be a setting the service
knows: the services refuse unknown SOCLE_<SERVICE>_* variables at start-up.
*/}}
{{- define "socle-lib.env" -}}
{{- $root := .root }}
{{- $global := $root.Values.global | default dict }}
{{- $prefix := include "socle-lib.envPrefix" . }}
- name: {{ $prefix }}ENVIRONMENT
  value: {{ $global.environment | default "production" | quote }}
- name: {{ $prefix }}OIDC_ISSUER
  value: {{ dig "oidc" "issuer" "" $global | quote }}
- name: {{ $prefix }}OIDC_AUDIENCE
  value: {{ dig "oidc" "audience" "socle-api" $global | quote }}
- name: {{ $prefix }}LOG_LEVEL
  value: {{ $root.Values.config.logLevel | quote }}
- name: {{ $prefix }}LOG_JSON
  value: {{ $root.Values.config.logJson | toString | quote }}
{{- with $root.Values.config.corsOrigins }}
- name: {{ $prefix }}CORS_ORIGINS
  value: {{ toJson . | quote }}
{{- end }}
{{- with $root.Values.config.publicUrl }}
- name: {{ $prefix }}PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- if hasKey $root.Values.config "serviceUrls" }}
- name: {{ $prefix }}SERVICE_URLS
  value: {{ include "socle-lib.serviceUrls" . | quote }}
{{- end }}
{{- if hasKey $root.Values.config "billingUrl" }}
- name: {{ $prefix }}BILLING_URL
  value: {{ include "socle-lib.billingUrl" . | quote }}
{{- end }}
{{- if hasKey $root.Values "database" }}
{{- $secret := include "socle-lib.databaseSecret" $root }}
- name: {{ $prefix }}DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.database.urlKey }}
{{- if .migration }}
- name: {{ $prefix }}MIGRATION_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $root.Values.database.migrationUrlKey }}
{{- end }}
- name: {{ $prefix }}DB_POOL_SIZE
  value: {{ $root.Values.database.poolSize | toString | quote }}
- name: {{ $prefix }}DB_MAX_OVERFLOW
  value: {{ $root.Values.database.maxOverflow | toString | quote }}
- name: {{ $prefix }}DB_STATEMENT_TIMEOUT_MS
  value: {{ $root.Values.database.statementTimeoutMs | toString | quote }}
{{- end }}
{{- range $root.Values.secretEnv }}
- name: {{ $prefix }}{{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | default $global.existingSecret }}
      key: {{ .key }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
JSON map of the other services' in-cluster base URLs, for a service that calls them (the
console): config.serviceUrls, else http://<release>-<service>:8000 for each API service.
Takes the dict (root, service).
*/}}
{{- define "socle-lib.serviceUrls" -}}
{{- $root := .root }}
{{- $urls := $root.Values.config.serviceUrls | default dict }}
{{- if not $urls }}
{{- range $service := list "tenancy" "identity" "ingestion" "timeseries" "billing" }}
{{- $name := include "socle-lib.fullnameFor" (dict "release" $root.Release "chart" $service "values" dict) }}
{{- $_ := set $urls $service (printf "http://%s:8000" $name) }}
{{- end }}
{{- end }}
{{- toJson $urls }}
{{- end }}

{{/*
Base URL of the billing service, for tenancy's onboarding: config.billingUrl, else
http://<release>-billing:8000. Takes the dict (root, service).
*/}}
{{- define "socle-lib.billingUrl" -}}
{{- $root := .root }}
{{- $default := include "socle-lib.fullnameFor" (dict "release" $root.Release "chart" "billing" "values" dict) }}
{{- $root.Values.config.billingUrl | default (printf "http://%s:8000" $default) }}
{{- end }}
