{{/*
Helpers of the umbrella chart itself. The services' helpers live in charts/socle-lib.
*/}}

{{/*
The services of the platform, in install order of the umbrella's dependencies.
*/}}
{{- define "socle.services" -}}
tenancy identity ingestion timeseries billing console
{{- end }}

{{/*
Fully qualified name of the umbrella's own resources.
*/}}
{{- define "socle.fullname" -}}
{{- include "socle-lib.fullnameFor" (dict "release" .Release "chart" .Chart.Name "values" dict) }}
{{- end }}

{{/*
Common labels of the umbrella's own resources.
*/}}
{{- define "socle.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: socle
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
In-cluster base URL (scheme, host, port) of each installed service, one per line.
*/}}
{{- define "socle.serviceURLs" -}}
{{- range $service := splitList " " (include "socle.services" $) }}
{{- $values := index $.Values $service }}
{{- if $values.enabled }}
{{- $name := include "socle-lib.fullnameFor" (dict "release" $.Release "chart" $service "values" $values) }}
{{ printf "http://%s.%s.svc:%v" $name $.Release.Namespace $values.service.port }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Reference of the test image.
*/}}
{{- define "socle.testImage" -}}
{{- $image := .Values.test.image }}
{{- if eq (lower (toString $image.tag)) "latest" }}
{{- fail "test.image.tag \"latest\" is refused: pin the test image's version, e.g. \"1.37.0\"." }}
{{- end }}
{{- $ref := printf "%s:%s" $image.repository $image.tag }}
{{- if $image.registry }}
{{- $ref = printf "%s/%s" (trimSuffix "/" $image.registry) $ref }}
{{- end }}
{{- if $image.digest }}
{{- $ref = printf "%s@%s" $ref $image.digest }}
{{- end }}
{{- $ref }}
{{- end }}
