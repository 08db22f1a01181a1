{{/*
Names and labels shared by every Socle service chart.

Templates that only need the chart's own context take the root context (`.`); the
resource templates take a dict with `root` (the chart's root context) and `service`
(the service's short name, e.g. "tenancy"), so that the environment-variable prefix and
the Python module never depend on a value an operator could change.
*/}}

{{/*
Name of the chart, overridable with nameOverride.
*/}}
{{- define "socle-lib.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name of one service's resources, computed from a release and that
service's values. Takes a dict: release (.Release), chart (the chart name), values (the
service's values). Shared by "socle-lib.fullname" and by the umbrella chart, which needs
the services' names for its test Pod.
*/}}
{{- define "socle-lib.fullnameFor" -}}
{{- if .values.fullnameOverride }}
{{- .values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .chart .values.nameOverride }}
{{- if contains $name .release.Name }}
{{- .release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Fully qualified name of the chart's resources (release name + chart name).
*/}}
{{- define "socle-lib.fullname" -}}
{{- include "socle-lib.fullnameFor" (dict "release" .Release "chart" .Chart.Name "values" .Values) }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "socle-lib.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of a release, never add a changing value here.
*/}}
{{- define "socle-lib.selectorLabels" -}}
app.kubernetes.io/name: {{ include "socle-lib.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Selector of the service's own pods (Deployment, Service, PodDisruptionBudget): the selector
labels plus the component, so that the migration Job's pods, which carry
app.kubernetes.io/component=migrations, never receive traffic or count as replicas.
Takes the dict (root, service).
*/}}
{{- define "socle-lib.workloadSelectorLabels" -}}
{{ include "socle-lib.selectorLabels" .root }}
app.kubernetes.io/component: {{ .service }}
{{- end }}

{{/*
Common labels of every resource.
*/}}
{{- define "socle-lib.labels" -}}
helm.sh/chart: {{ include "socle-lib.chart" . }}
{{ include "socle-lib.selectorLabels" . }}
app.kubernetes.io/version: {{ include "socle-lib.imageTag" . | quote }}
app.kubernetes.io/part-of: socle
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Name of the ServiceAccount the service's pods run as.
*/}}
{{- define "socle-lib.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "socle-lib.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Prefix of the service's settings in the environment, e.g. SOCLE_TENANCY_.
Takes the dict (root, service).
*/}}
{{- define "socle-lib.envPrefix" -}}
{{- printf "SOCLE_%s_" (.service | upper | replace "-" "_") }}
{{- end }}

{{/*
The Secret holding the database URLs: the service's own or the global one.
*/}}
{{- define "socle-lib.databaseSecret" -}}
{{- .Values.database.existingSecret | default (.Values.global.existingSecret | default "") }}
{{- end }}
