{{/*
Migration Job of a service with a database: `python -m socle_<service>.db.migrate` as the
schema owner, run by Helm before the release's resources are installed or upgraded, so
that new pods only start on the schema they expect. Its ServiceAccount is a hook too: on
first install the release's own ServiceAccount does not exist yet when pre-install hooks
run. Helm runs hook Jobs one after another by weight, waiting for each: tenancy's comes
first, since the others' row-level security policies call functions of its schema. Takes
the dict (root, service).
*/}}
{{- define "socle-lib.migrations" -}}
{{- $root := .root }}
{{- if and (hasKey $root.Values "database") $root.Values.migrations.enabled }}
{{- $name := printf "%s-migrations" (include "socle-lib.fullname" $root) | trunc 63 | trimSuffix "-" }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "socle-lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: migrations
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
automountServiceAccountToken: false
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "socle-lib.labels" $root | nindent 4 }}
    app.kubernetes.io/component: migrations
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    {{- /* tenancy's schema holds the audit log and the grants other services' policies call: first */}}
    helm.sh/hook-weight: {{ ternary "-1" "0" (eq .service "tenancy") | quote }}
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: {{ $root.Values.migrations.backoffLimit }}
  activeDeadlineSeconds: {{ $root.Values.migrations.activeDeadlineSeconds }}
  template:
    metadata:
      labels:
        {{- include "socle-lib.selectorLabels" $root | nindent 8 }}
        app.kubernetes.io/component: migrations
    spec:
      restartPolicy: Never
      serviceAccountName: {{ $name }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with include "socle-lib.imagePullSecrets" $root | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: migrations
          image: {{ include "socle-lib.image" $root | quote }}
          imagePullPolicy: {{ include "socle-lib.imagePullPolicy" $root }}
          command:
            - python
            - -m
            - {{ printf "socle_%s.db.migrate" (.service | replace "-" "_") }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          env:
            {{- include "socle-lib.env" (dict "root" $root "service" .service "migration" true) | trim | nindent 12 }}
          resources:
            {{- toYaml $root.Values.migrations.resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
{{- end }}
