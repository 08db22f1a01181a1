{{/*
The image tag of the service: its own image.tag, else global.image.tag. Refuses an empty
tag and `latest`: a release must name the exact build it runs.
*/}}
{{- define "socle-lib.imageTag" -}}
{{- $global := .Values.global.image | default dict }}
{{- $tag := .Values.image.tag | default ($global.tag | default "") | toString }}
{{- if not $tag }}
{{- fail (printf "%s: no image tag. Set global.image.tag (or %s.image.tag) to the version to run, e.g. %q; images are never deployed untagged." .Chart.Name .Chart.Name .Chart.AppVersion) }}
{{- end }}
{{- if eq (lower $tag) "latest" }}
{{- fail (printf "%s: image tag %q is refused. Pin the version to run, e.g. %q, so that every pod of a release runs the same build." .Chart.Name $tag .Chart.AppVersion) }}
{{- end }}
{{- $tag }}
{{- end }}

{{/*
Full image reference: [registry/]repository:tag[@digest].
*/}}
{{- define "socle-lib.image" -}}
{{- $global := .Values.global.image | default dict }}
{{- $registry := .Values.image.registry | default ($global.registry | default "") }}
{{- $ref := printf "%s:%s" .Values.image.repository (include "socle-lib.imageTag" .) }}
{{- if $registry }}
{{- $ref = printf "%s/%s" (trimSuffix "/" $registry) $ref }}
{{- end }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
Pull policy: the service's own, else the global one.
*/}}
{{- define "socle-lib.imagePullPolicy" -}}
{{- $global := .Values.global.image | default dict }}
{{- .Values.image.pullPolicy | default ($global.pullPolicy | default "IfNotPresent") }}
{{- end }}

{{/*
imagePullSecrets of the pod: the global list, then the service's own.
*/}}
{{- define "socle-lib.imagePullSecrets" -}}
{{- $secrets := concat (.Values.global.imagePullSecrets | default list) (.Values.imagePullSecrets | default list) | uniq }}
{{- if $secrets }}
imagePullSecrets:
{{- range $secrets }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}
